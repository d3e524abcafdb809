"""HTTP(S) GETs through libcurl (pycurl's multi interface) on a thread of their own.

Why: aiohttp parses, buffers and schedules every response in Python on the runtime's one event
loop, about 0.3 ms of CPU per 100 KB file; reads of many small files were bound by that one thread
(see "HTTP reads through libcurl" in docs/architecture.md). libcurl does connections, TLS, HTTP
parsing, redirects and decompression in C without the GIL; Python runs only a callback per chunk of
body (size limit and idle clock) and one hand-off per response back to the event loop.

One ``CurlPool`` per process: a daemon thread driving one ``CurlMulti`` (one connection cache and
DNS cache shared by every read), fed through a queue and a wake-up pipe. ``get()`` is awaited on
the runtime's event loop; cancelling it (the read's total limit, a stopped run) aborts the transfer.

Errors keep the shapes the rest of ``daft_flow.io.locations`` reads: ``HTTPStatusError`` carries
``status`` and ``headers`` (404, 401/403, retried 429/5xx with ``Retry-After``), dropped
connections are ``ConnectionError`` (retried), an idle read is ``TimeoutError`` and a slow connect
``ConnectTimeout`` (not retried).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import selectors
import threading
import time
from typing import Any

from daft_flow.forksafe import ForkSafeLock

logger = logging.getLogger("daft_flow")

# Connections the pool may hold open (all hosts): each read op bounds its own concurrency
# (read(max_in_flight=...)), so the pool is never the tighter limit.
MAX_CONNECTIONS = 1024
MAX_REDIRECTS = 10  # as aiohttp's default
LARGE_BYTES = 1 << 20  # bodies from this size go into one runtime buffer (no joined chunks)
_TICK_S = 0.05  # how often idle transfers are looked for while some run
_HAND_OVER_S = 0.002  # results wait at most this long to go to their event loop together
_E_TOO_LARGE = 100  # CURLE_TOO_LARGE (libcurl 8.6+), headers over libcurl's limit; pycurl has no name for it
BUFFER_BYTES = 1 << 16  # receive buffer per transfer: a 100 KB body in 2 callbacks instead of 7 (libcurl: 16 KB)


class HTTPStatusError(OSError):
    """A response with status >= 400."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status} {message}".rstrip())
        self.status, self.message, self.headers = status, message, headers


class ConnectTimeout(TimeoutError):
    """No connection within the connect limit."""


class TotalTimeout(TimeoutError):
    """Not done within the total limit."""


class TooManyRedirects(OSError):
    """More than ``MAX_REDIRECTS`` redirects."""


class TLSError(OSError):
    """The TLS handshake failed (a certificate, or a server that does not speak TLS)."""


class TooLarge(Exception):
    """The body passed the size limit (the caller turns it into its own error)."""

    def __init__(self, size: "int | None") -> None:
        super().__init__(size)
        self.size = size


def available() -> bool:
    """Whether reads may go through libcurl: pycurl importable, and not turned off with
    ``DAFT_FLOW_HTTP_CLIENT=aiohttp``."""
    if os.environ.get("DAFT_FLOW_HTTP_CLIENT", "").lower() == "aiohttp":
        return False
    try:
        import pycurl  # noqa: F401
    except ImportError:
        return False
    return True


def _ca_options() -> dict[str, str]:
    """The system's trust store, as Python's ssl (and so aiohttp) uses it; a wheel's bundled
    libcurl may look elsewhere."""
    import ssl

    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return {"CAINFO": paths.cafile}
    if paths.capath and os.path.isdir(paths.capath):
        return {"CAPATH": paths.capath}
    try:
        import certifi

        return {"CAINFO": certifi.where()}
    except ImportError:
        return {}


class _Transfer:
    """One GET: its handle's callbacks fill the body and keep the idle clock; the result goes to
    ``future`` on ``loop``."""

    __slots__ = ("loop", "future", "max_bytes", "connect_s", "read_s", "total_s", "chunks", "size", "builder",
                 "headers", "last", "error", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: "asyncio.Future[Any]", max_bytes: int,
                 connect_s: float, read_s: float, total_s: float) -> None:
        self.loop, self.future, self.max_bytes = loop, future, max_bytes
        self.connect_s, self.read_s, self.total_s = connect_s, read_s, total_s
        self.chunks: list[bytes] = []
        self.size = 0
        self.builder: Any = None
        self.headers: list[bytes] = []
        self.last = time.monotonic()
        self.error: "BaseException | None" = None
        self.handle: Any = None

    def write(self, data: bytes) -> "int | None":
        self.last = time.monotonic()
        self.size += len(data)
        if self.size > self.max_bytes:
            self.error = TooLarge(None)
            return 0  # libcurl aborts the transfer (CURLE_WRITE_ERROR)
        if self.builder is not None:
            self.builder.append(data)
        elif self.size >= LARGE_BYTES:
            from daft_flow import _core

            self.builder = _core.HostBufferBuilder()
            for chunk in self.chunks:
                self.builder.append(chunk)
            self.builder.append(data)
            self.chunks = []
        else:
            self.chunks.append(data)
        return None

    def header(self, line: bytes) -> None:
        self.last = time.monotonic()
        if line.startswith(b"HTTP/"):
            self.headers = []  # a new response (after a redirect or a 100 Continue)
        self.headers.append(line)

    def body(self) -> Any:
        if self.builder is not None:
            return self.builder.finish()
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def header_map(self) -> tuple[str, dict[str, str]]:
        reason, out = "", {}
        for raw in self.headers:
            line = raw.decode("latin-1").strip()
            if line.startswith("HTTP/"):
                parts = line.split(" ", 2)
                reason = parts[2] if len(parts) > 2 else ""
            elif ":" in line:
                name, value = line.split(":", 1)
                out[name.strip().lower()] = value.strip()
        return reason, out


def _deliver_all(results: list[tuple["asyncio.Future[Any]", bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class CurlPool:
    """A ``CurlMulti`` driven by a daemon thread; ``submit`` and ``cancel`` are safe from any thread."""

    def __init__(self) -> None:
        import pycurl

        self._pycurl = pycurl
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, MAX_CONNECTIONS)
        self._multi.setopt(pycurl.M_MAXCONNECTS, MAX_CONNECTIONS)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._set_timer)
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, int] = {}
        self._deadline: "float | None" = None
        self._ca = _ca_options()
        self._queue: "collections.deque[tuple[str, Any]]" = collections.deque()
        self._idle: list[Any] = []  # handles to reuse (each keeps its TLS session cache)
        self._active: dict[Any, _Transfer] = {}
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._sleeping = False
        self.transfers = 0  # GETs started (tests check that reads came this way)
        self._ready: dict[Any, list[tuple[Any, bool, Any]]] = {}  # loop -> results to hand over
        self._hand_over_at = 0.0  # when the oldest of them came in, plus _HAND_OVER_S
        self._thread = threading.Thread(target=self._serve, name="daft_flow-http", daemon=True)
        self._thread.start()

    # -- any thread ------------------------------------------------------------------------------
    def submit(self, url: str, transfer: _Transfer) -> None:
        self._queue.append(("get", (url, transfer)))
        self._wake()

    def cancel(self, transfer: _Transfer) -> None:
        self._queue.append(("cancel", transfer))
        self._wake()

    def _wake(self) -> None:
        # Only a thread about to wait (or waiting) needs the byte: it sets ``_sleeping`` before it
        # looks at the queue a last time, so a request queued after that look always wakes it.
        if not self._sleeping:
            return
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, OSError):  # the pipe is full: the thread is awake already
            pass

    # -- the pool's thread -----------------------------------------------------------------------
    # libcurl's socket interface: it tells which sockets to watch (``_watch``) and when to call back
    # (``_set_timer``); a selector watches them with the wake-up pipe, with no limit on descriptor
    # numbers and no per-pass rebuild of the watched set.
    def _watch(self, what: int, fd: int, multi: Any, socketp: Any) -> None:
        pycurl = self._pycurl
        if what == pycurl.POLL_REMOVE:
            if self._watched.pop(fd, None) is not None:
                try:
                    self._selector.unregister(fd)
                except (KeyError, ValueError, OSError):  # closed already
                    pass
            return
        events = {pycurl.POLL_IN: selectors.EVENT_READ, pycurl.POLL_OUT: selectors.EVENT_WRITE,
                  pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE}.get(what, 0)
        if not events:
            return
        try:
            if fd in self._watched:
                self._selector.modify(fd, events)
            else:
                self._selector.register(fd, events)
        except (KeyError, ValueError, OSError):  # a descriptor number reused before its removal
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
            self._selector.register(fd, events)
        self._watched[fd] = events

    def _set_timer(self, ms: int) -> None:
        self._deadline = None if ms < 0 else time.monotonic() + ms / 1000

    def _serve(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # the thread must not die with transfers waiting on it
                logger.exception("daft_flow HTTP thread: unexpected error; failing its transfers")
                for handle in list(self._active):
                    self._finish(handle, ConnectionError("the HTTP client failed; see the log"))
                self._hand_over()

    def _step(self) -> None:
        pycurl, multi = self._pycurl, self._multi
        while self._queue:
            kind, arg = self._queue.popleft()
            if kind == "get":
                self._start(*arg)
            elif arg.handle is not None and arg.handle in self._active:
                self._finish(arg.handle, None)
        now = time.monotonic()
        wait = 1.0 if self._deadline is None else max(0.0, self._deadline - now)
        if self._active:
            wait = min(wait, _TICK_S)
        if self._ready:
            wait = min(wait, max(0.0, self._hand_over_at - now))
        self._sleeping = True
        if self._queue:
            wait = 0.0
        events = self._selector.select(wait)
        self._sleeping = False
        for key, mask in events:
            if key.fd == self._wake_read:
                try:
                    while os.read(self._wake_read, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            action = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | \
                (pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0)
            multi.socket_action(key.fd, action)
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._deadline = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        while True:
            left, ok, failed = multi.info_read()
            for handle in ok:
                self._done(handle, None, "")
            for handle, code, message in failed:
                self._done(handle, code, message)
            if not left:
                break
        if self._active:
            self._expire_idle()
        if self._ready and (time.monotonic() >= self._hand_over_at or not self._active):
            self._hand_over()

    def _hand_over(self) -> None:
        """Results go to each event loop together, a few ms' worth in one call (one wake-up of
        the loop, not one per response)."""
        ready, self._ready = self._ready, {}
        for loop, results in ready.items():
            try:
                loop.call_soon_threadsafe(_deliver_all, results)
            except RuntimeError:  # the loop closed: nobody waits any more
                pass

    def _start(self, url: str, transfer: _Transfer) -> None:
        pycurl = self._pycurl
        if transfer.future.done():  # cancelled while queued
            return
        handle = self._idle.pop() if self._idle else self._new_handle()
        self.transfers += 1
        # Every option a transfer sets differently is set again here (no reset() needed).
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(transfer.connect_s * 1000)))
        handle.setopt(pycurl.TIMEOUT_MS, max(1, int(transfer.total_s * 1000)))
        handle.setopt(pycurl.MAXFILESIZE_LARGE, transfer.max_bytes)  # a declared length over it fails unread
        handle.setopt(pycurl.WRITEFUNCTION, transfer.write)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        transfer.handle = handle
        transfer.last = time.monotonic()
        self._active[handle] = transfer
        self._multi.add_handle(handle)

    def _new_handle(self) -> Any:
        """A handle with the options every transfer shares, set once."""
        pycurl = self._pycurl
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.FOLLOWLOCATION, 1)
        handle.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
        # http(s) only, redirects included (libcurl would also follow one to ftp://).
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.ACCEPT_ENCODING, "")  # gzip/deflate/br, decoded: limits apply to what it becomes
        handle.setopt(pycurl.PROXY, "")  # like aiohttp's default (trust_env=False): no proxy from the environment
        handle.setopt(pycurl.BUFFERSIZE, BUFFER_BYTES)
        for name, value in self._ca.items():
            handle.setopt(getattr(pycurl, name), value)
        return handle

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for handle, transfer in list(self._active.items()):
            if now - transfer.last <= transfer.read_s:
                continue
            if handle.getinfo(self._pycurl.PRETRANSFER_TIME) == 0:
                continue  # still connecting (TCP, TLS): the connect limit is libcurl's
            self._finish(handle, TimeoutError())  # the caller names the limit

    def _done(self, handle: Any, code: "int | None", message: str) -> None:
        transfer = self._active.get(handle)
        if transfer is None:
            return
        if transfer.error is not None:
            self._finish(handle, transfer.error)
        elif code is not None:
            self._finish(handle, self._error(handle, transfer, code, message))
        else:
            status = handle.getinfo(self._pycurl.RESPONSE_CODE)
            if status >= 400:
                reason, headers = transfer.header_map()
                self._finish(handle, HTTPStatusError(status, reason, headers))
            else:
                self._finish(handle, None, transfer.body())

    def _error(self, handle: Any, transfer: _Transfer, code: int, message: str) -> BaseException:
        pycurl = self._pycurl
        if code == pycurl.E_OPERATION_TIMEDOUT:
            # Not connected (TCP and TLS) yet: libcurl says "Connection/Resolving timed out after ...".
            if message.startswith(("Connection timed out", "Resolving timed out")) or \
                    handle.getinfo(pycurl.PRETRANSFER_TIME) == 0:
                return ConnectTimeout(message)
            return TotalTimeout(message)  # the idle limit is this thread's (_expire_idle)
        if code == pycurl.E_TOO_MANY_REDIRECTS:
            return TooManyRedirects(message)
        if code == pycurl.E_FILESIZE_EXCEEDED:
            # Over a declared length, or (compressed, or no length) over what arrived.
            declared = transfer.header_map()[1].get("content-length", "")
            size = int(declared) if declared.isdigit() else None
            return TooLarge(size if size is not None and size > transfer.max_bytes else None)
        if code in (pycurl.E_SSL_CONNECT_ERROR, pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CERTPROBLEM,
                    pycurl.E_SSL_CACERT_BADFILE):
            return TLSError(message)
        if code == pycurl.E_URL_MALFORMAT:
            return ValueError(message or "malformed URL")
        if code == pycurl.E_UNSUPPORTED_PROTOCOL:  # an HTTP/0.9 reply, a redirect to ftp:// or file://
            return OSError(message or "unsupported protocol")
        if code == _E_TOO_LARGE:
            return OSError(message or "a response field (its headers) was larger than libcurl allows")
        return ConnectionError(message or f"libcurl error {code}")  # refused, reset, DNS, a short body: transient

    def _finish(self, handle: Any, error: "BaseException | None", value: Any = None) -> None:
        transfer = self._active.pop(handle, None)
        self._multi.remove_handle(handle)
        handle.setopt(self._pycurl.WRITEFUNCTION, _discard)  # drop the references to the transfer
        handle.setopt(self._pycurl.HEADERFUNCTION, _discard)
        self._idle.append(handle)
        if transfer is None:
            return
        transfer.handle = None
        if not transfer.future.done():
            if not self._ready:
                self._hand_over_at = time.monotonic() + _HAND_OVER_S
            self._ready.setdefault(transfer.loop, []).append(
                (transfer.future, error is None, value if error is None else error))


def _discard(_: bytes) -> None:
    return None


_lock = ForkSafeLock()
_pool: CurlPool | None = None
_inherited: list[Any] = []  # pools of a parent process (after fork): never used, never destroyed here


def _forget_after_fork() -> None:
    global _pool
    if _pool is not None:
        _inherited.append(_pool)
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def pool() -> CurlPool:
    global _pool
    with _lock:
        if _pool is None or not _pool._thread.is_alive():
            _pool = CurlPool()
        return _pool


async def get(url: str, max_bytes: int, connect_s: float, read_s: float, total_s: float) -> Any:
    """The body of ``url`` (``bytes``, or a ``_core.HostBuffer`` from ``LARGE_BYTES``), at most
    ``max_bytes`` (else ``TooLarge``), within libcurl's connect limit (``ConnectTimeout``) and
    total limit (``TotalTimeout``) and an idle limit of ``read_s`` seconds without bytes
    (``TimeoutError``). Redirects are followed; compressed bodies decoded."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[Any]" = loop.create_future()
    transfer = _Transfer(loop, future, max_bytes, connect_s, read_s, total_s)
    curl = pool()
    curl.submit(url, transfer)
    try:
        return await future
    except asyncio.CancelledError:
        curl.cancel(transfer)
        raise
