"""Where a file lives: checking paths and URLs, and getting their bytes (local, file://, and every
fsspec protocol: http(s), s3, gs, hf, ...).

Remote reads go through fsspec's async filesystems on the runtime's event loop: one filesystem (so
one aiohttp session / one S3 client, with its connection pool) per protocol and loop, shared by all
concurrent reads. Credentials and endpoints come from the standard environment and config files
(``AWS_ENDPOINT_URL`` alone points s3:// at MinIO, R2 or moto; ``STORAGE_EMULATOR_HOST`` points
gs:// at a GCS emulator).

Every read is bounded (``daft_flow.io.limits``): connect, idle-read and total time limits and a
maximum document size, so a hung or hostile server fails its row with an error naming the URL
instead of holding the run. URLs in errors are redacted (``daft_flow.secrets``).
"""
from __future__ import annotations

import asyncio
import atexit
import os
import re
import threading
from time import monotonic as _monotonic
from typing import Any, TypeVar
from urllib.parse import urlsplit

from daft_flow.forksafe import ForkSafeLock
from daft_flow.io.limits import DEFAULT_LIMITS, ReadLimits, Timeout
from daft_flow.retry import Backoff, parse_retry_after
from daft_flow.secrets import redact_text, redact_url, url_secrets

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LOCAL = ("", "file", "local")
_NETWORK = ("http", "https")


def split_url(url: Any) -> tuple[str, str]:
    """(protocol, url) for a path or URL; protocol is "" for local paths. Raises ValueError for
    values that are not a path or a well-formed URL, naming the value."""
    if not isinstance(url, str):
        raise TypeError(f"a file location must be a str path or URL, got {type(url).__name__} "
                        f"{redact_text(repr(url))}")
    if not url or url.strip() != url or "\x00" in url or "\n" in url:
        raise ValueError(f"invalid path or URL {redact_url(url)!r}")
    m = _SCHEME.match(url)
    if m is None:
        if "://" in url:
            raise ValueError(f"invalid URL {redact_url(url)!r}: malformed scheme")
        return "", url
    protocol = m.group(1).lower()
    if protocol in _NETWORK:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as e:
            raise ValueError(f"invalid URL {redact_url(url)!r}: {redact_text(str(e), url_secrets(url))}") from None
        if not parts.hostname:
            raise ValueError(f"invalid URL {redact_url(url)!r}: no host")
    elif not url[m.end():]:
        raise ValueError(f"invalid URL {redact_url(url)!r}: nothing after the scheme")
    return protocol, url


def check_protocol(protocol: str, url: str) -> None:
    """Raises ValueError if no installed fsspec backend serves ``protocol`` (naming the URL)."""
    if protocol in _LOCAL:
        return
    try:
        from fsspec.registry import get_filesystem_class
    except ImportError:  # pragma: no cover - fsspec is a dependency of the files extra
        raise ImportError(f"reading {redact_url(url)!r} needs fsspec: pip install 'daft-flow[files]'") from None
    try:
        get_filesystem_class(protocol)
    except ValueError:
        raise ValueError(f"unsupported scheme {protocol!r} in {redact_url(url)!r}") from None
    except ImportError as e:
        raise ImportError(f"reading {redact_url(url)!r} needs a package that is not installed: {e}") from None


def local_path(url: str) -> str:
    if url.startswith("file://"):
        return url[len("file://"):]
    if url.startswith("local://"):
        return url[len("local://"):]
    return url


def check_local(path: str) -> None:
    """Raises the OSError a read would raise (missing, a directory, not readable), naming the path.
    Only regular files are read: a device (/dev/zero never ends) or a FIFO (blocks until a writer
    comes) would hang or exhaust memory, so they fail the row instead."""
    st = os.stat(path)  # FileNotFoundError / PermissionError carry the path
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path}: not a regular file (a device, FIFO or socket); only regular files are read")
    if not os.access(path, os.R_OK):
        raise PermissionError(13, "Permission denied", path)


# (protocol, owner, endpoints, options from the URL) -> filesystem. The owner is the event loop an
# async filesystem's sessions belong to, or for blocking ones (ftp, sftp, hf) the thread using it:
# their clients are not safe to share between threads (the default executor bounds how many).
_filesystems: dict[tuple[str, int, str, str], Any] = {}
# Filesystems inherited from the parent process (after fork): their sessions and sockets are the
# parent's. Kept referenced so that no destructor closes or reports them here; never used again.
_inherited: list[Any] = []


_fs_loops: dict[tuple[str, int, str, str], Any] = {}  # the loop each async filesystem was made on

# Environment variables that point a protocol at another endpoint (MinIO/R2/moto, a GCS emulator,
# a Hub mirror): a filesystem made before one changed must not be reused after.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST", "HF_ENDPOINT")


def _endpoints() -> str:
    return "\0".join(os.environ.get(v, "") for v in _ENDPOINT_VARIABLES)


def _timeout_options(protocol: str, timeout: Timeout) -> dict[str, Any]:
    """Constructor options that put ``timeout``'s connect and idle-read limits on a backend's own
    connections (so requests fsspec makes by itself, and blocking reads, are bounded too)."""
    if protocol in _NETWORK:
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect,
                                                                   sock_read=timeout.read)}}
    if protocol in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": timeout.connect, "read_timeout": timeout.read}}
    if protocol == "ftp":
        return {"timeout": timeout.read}
    return {}


# Connections one HTTP session (one per event loop, shared by every read of the process) may hold.
# Each read op bounds its own concurrency (read(max_in_flight=...)), so the pool must not be the
# tighter limit: aiohttp's default of 100 would queue the reads of a second op, or of one op with a
# higher cap, behind each other.
HTTP_CONNECTIONS = 1024


async def _http_client(**kwargs: Any) -> Any:
    """The aiohttp session of the HTTP filesystem (fsspec's ``get_client``), with a larger pool."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS), **kwargs)


def _filesystem(protocol: str, url: str, loop: "asyncio.AbstractEventLoop | None" = None,
                timeout: Timeout | None = None, shared: bool = True) -> Any:
    """The shared filesystem for ``url``: async on ``loop`` when the protocol has an async
    implementation and a loop is given, else a blocking one for the calling thread. Options the
    URL carries (an FTP host and port, say) and the connect/read limits of ``timeout`` are passed
    to it. ``shared=False``: a new one, kept by nobody (for a short-lived thread)."""
    import fsspec

    cls = fsspec.get_filesystem_class(protocol)
    try:
        options = cls._get_kwargs_from_urls(url)
    except Exception:  # pragma: no cover - a backend that cannot parse its own URLs
        options = {}
    is_async = loop is not None and getattr(cls, "async_impl", False)
    if not (is_async and protocol in _NETWORK):  # async HTTP reads set their limits per request
        options.update(_timeout_options(protocol, timeout or _default_timeout()))
    elif "get_client" not in options:
        options["get_client"] = _http_client
    if not shared:
        return cls(skip_instance_cache=True, **options)
    owner = id(loop) if is_async else threading.get_ident()
    key = (protocol, owner, _endpoints(), repr(sorted(options.items())))
    fs = _filesystems.get(key)
    # An id can be reused by a new loop after the old one closed (a fork, a restarted loop): a
    # filesystem whose sessions belong to a closed loop is never handed out again.
    if fs is not None and is_async and _fs_loops.get(key) is not loop:
        fs = None
    if fs is None:
        if is_async:
            fs = cls(asynchronous=True, loop=loop, skip_instance_cache=True, **options)
            _fs_loops[key] = loop
            _register_exit_hook()
        else:
            fs = cls(skip_instance_cache=True, **options)
        _filesystems[key] = fs
    return fs


def _default_timeout() -> Timeout:
    from daft_flow.io.limits import process_limits

    return process_limits().timeout


def call_with_deadline(fn: Any, seconds: float, message: str) -> Any:
    """``fn()`` on a daemon thread, waited for at most ``seconds`` (then ``TimeoutError(message)``;
    the thread finishes its blocking call in the background). For blocking backends with no
    overall time limit of their own."""
    import queue

    done: "queue.SimpleQueue[tuple[bool, Any]]" = queue.SimpleQueue()

    def run() -> None:
        try:
            done.put((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            done.put((False, e))

    threading.Thread(target=run, name="daft_flow-blocking-io", daemon=True).start()
    try:
        ok, value = done.get(timeout=seconds)
    except queue.Empty:
        raise _own(TimeoutError(message)) from None
    if not ok:
        raise value
    return value


def _cat_blocking(protocol: str, url: str, limits: ReadLimits, op: str) -> Any:
    fs = _filesystem(protocol, url, timeout=limits.timeout)
    try:
        size = fs.size(url)
    except Exception:  # not every backend knows sizes; the bytes are checked below
        size = None
    if size is not None and size > limits.max_bytes:
        raise _too_large(op, url, limits.max_bytes, size)
    data = fs.cat_file(url)
    if len(data) > limits.max_bytes:
        raise _too_large(op, url, limits.max_bytes, len(data))
    return data


async def _close_filesystems(filesystems: list[Any]) -> None:
    for fs in filesystems:
        try:
            session = getattr(fs, "_session", None)  # fsspec HTTP: an aiohttp ClientSession
            if session is not None and not session.closed:
                await session.close()
            creator = getattr(fs, "_s3creator", None)  # s3fs: an aiobotocore client context
            if creator is not None and getattr(fs, "_s3", None) is not None:
                await creator.__aexit__(None, None, None)
                fs._s3 = None
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _close_at_exit() -> None:
    """Closes the async filesystems' sessions on the loops they were made on, while those loops
    still run. Registered with atexit when the first async filesystem is made: the loop it runs
    on exists then, so the loop's own exit hook was registered earlier and runs later (atexit is
    LIFO)."""
    by_loop: dict[int, tuple[Any, list[Any]]] = {}
    for key, fs in _filesystems.items():
        loop = _fs_loops.get(key)
        if loop is not None:
            by_loop.setdefault(id(loop), (loop, []))[1].append(fs)
    _filesystems.clear()
    _fs_loops.clear()
    for loop, owned in by_loop.values():
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(_close_filesystems(owned), loop).result(timeout=5)
            except Exception:  # pragma: no cover
                pass


_exit_hook = ForkSafeLock()
_exit_hook_registered = False


def _forget_filesystems_after_fork() -> None:
    _inherited.extend(_filesystems.values())
    _filesystems.clear()
    _fs_loops.clear()


os.register_at_fork(after_in_child=_forget_filesystems_after_fork)


def _register_exit_hook() -> None:
    global _exit_hook_registered
    with _exit_hook:
        if not _exit_hook_registered:
            atexit.register(_close_at_exit)
            _exit_hook_registered = True


_E = TypeVar("_E", bound=BaseException)


def _own(err: _E) -> _E:
    """Marks an error made here (it names the op and the redacted URL already: passed on as is)."""
    err._daft_flow_read = True  # type: ignore[attr-defined]
    return err


def _too_large(op: str, url: str, limit: int, size: "int | None" = None) -> ValueError:
    got = f"{size} bytes" if size is not None else "more bytes arrived (the server sent no length)"
    err = ValueError(f"{op}: {redact_url(url)} is larger than the {limit}-byte limit ({got}); raise it with "
                     f"read(max_bytes=...) or dflow.set_options(read_max_bytes=...)")
    return _own(err)


def _is_timeout(e: BaseException) -> bool:
    """A time limit ran out (asyncio/socket timeouts, aiohttp's and botocore's timeout errors)."""
    return isinstance(e, TimeoutError) or any("Timeout" in c.__name__ for c in type(e).__mro__
                                              if c.__module__.split(".")[0] in ("aiohttp", "botocore", "urllib3"))


def _timeout_error(e: BaseException, url: str, op: str, timeout: Timeout) -> TimeoutError:
    names = {c.__name__ for c in type(e).__mro__}
    if names & {"ConnectionTimeoutError", "ConnectTimeoutError", "ConnectTimeout"}:
        what = f"could not connect within {timeout.connect:g} s (connect limit)"
    else:
        what = f"no bytes for {timeout.read:g} s (read limit)"
    detail = redact_text(str(e), url_secrets(url))
    how = "read(timeout=dflow.Timeout(...)) or " if op.startswith("read") else ""
    err = TimeoutError(f"{op}: {redact_url(url)}: {what}{f'; {detail}' if detail else ''}; raise it with "
                       f"{how}dflow.set_options(read_timeout=...)")
    return _own(err)


def _with_url(e: BaseException, url: str, op: str = "", timeout: Timeout | None = None) -> BaseException:
    """``e`` as the row's error: naming the op and the URL (redacted), never showing credentials."""
    if getattr(e, "_daft_flow_read", False):
        return e
    if timeout is not None:
        # A backend may report a timeout as something else (fsspec's HTTP info() turns any failure
        # into FileNotFoundError): the timeout in the chain is what happened.
        cause: BaseException | None = e
        for _ in range(4):
            if cause is None:
                break
            if _is_timeout(cause):
                return _timeout_error(cause, url, op, timeout)
            cause = cause.__cause__ or cause.__context__
    cause = e.__cause__
    if isinstance(e, FileNotFoundError) and getattr(cause, "status", None) not in (None, 404):
        e = cause  # fsspec's HTTP info() reports any failed request (a 500, a 403) as "not found"
    shown = redact_url(url)
    prefix = f"{op}: {shown}" if op else shown
    message = redact_text(str(e), url_secrets(url))
    status = getattr(e, "status", None)
    if status in (401, 403):
        err: BaseException = PermissionError(f"{prefix}: HTTP {status} {getattr(e, 'message', '')}".rstrip())
    elif status == 404 or (isinstance(e, FileNotFoundError) and str(e) in (url, repr(url))):
        http = status == 404 or urlsplit(url).scheme.lower() in _NETWORK
        err = FileNotFoundError(f"{prefix}: HTTP 404 Not Found" if http else f"{prefix}: not found")
    elif isinstance(status, int) and status >= 400:  # after retries, if it was 429 or 5xx
        err = OSError(f"{prefix}: HTTP {status} {getattr(e, 'message', '') or ''}".rstrip())
    elif type(e).__name__ == "TooManyRedirects":
        err = OSError(f"{prefix}: too many redirects (the server redirects in a loop)")
    elif "WRONG_VERSION_NUMBER" in message:
        err = OSError(f"{prefix}: the server does not speak TLS (is it an http:// URL?): {message}")
    elif shown in message and message == str(e):
        return e  # names the URL already, and there was nothing to redact
    else:
        text = message if shown in message else f"{prefix}: {message}"
        try:
            err = type(e)(text)
        except Exception:
            err = OSError(f"{prefix}: {type(e).__name__}: {message}")
        if str(err) != text:  # a type whose message is not its first argument
            err = OSError(f"{prefix}: {type(e).__name__}: {message}")
    return err


LARGE_BYTES = 1 << 20  # from this size, files are read into a runtime-owned buffer (no copies)


def read_local(path: str, max_bytes: int = DEFAULT_LIMITS.max_bytes, op: str = "read()") -> Any:
    """A file's bytes: ``bytes``, or for large files a ``HostBuffer`` read into in place."""
    check_local(path)  # again: the path may have been replaced since open_file() looked at it
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise _too_large(op, path, max_bytes, size)
        if size < LARGE_BYTES:
            data = f.read(max_bytes + 1)
            if len(data) > max_bytes:  # the file grew while we read it
                raise _too_large(op, path, max_bytes)
            return data
        from daft_flow import _core

        buf = _core.HostBuffer(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        view.release()
        if got < size:
            buf.truncate(got)  # the file shrank while we read it
        rest = f.read(max_bytes - got + 1)
        if got + len(rest) > max_bytes:
            raise _too_large(op, path, max_bytes)
        if rest:  # the file grew while we read it
            return bytes(memoryview(buf)) + rest
        return buf


async def _read_unsized(content: Any, url: str, max_bytes: int, op: str) -> Any:
    """A body of unknown length (no Content-Length, or compressed) streamed into one growing
    buffer, failing as soon as it passes ``max_bytes``: held once, never joined from chunks."""
    from daft_flow import _core

    builder = _core.HostBufferBuilder()
    async for chunk in content.iter_any():
        if len(builder) + len(chunk) > max_bytes:
            raise _too_large(op, url, max_bytes)
        builder.append(chunk)
    buf = builder.finish()
    return bytes(memoryview(buf)) if len(buf) < LARGE_BYTES else buf


async def _http_get(fs: Any, url: str, limits: ReadLimits = DEFAULT_LIMITS, op: str = "read()") -> Any:
    """GET through fsspec's HTTP session, under ``limits``; a large body of known length is read
    into a HostBuffer chunk by chunk instead of being joined (and so copied) in memory."""
    import aiohttp

    session = await fs.set_session()
    t = limits.timeout
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, sock_read=t.read)
    async with session.get(fs.encode_url(url), timeout=timeout, **fs.kwargs) as r:
        fs._raise_not_found_for_status(r, url)
        n = r.content_length
        if n is None or r.headers.get("Content-Encoding", "identity") != "identity":
            return await _read_unsized(r.content, url, limits.max_bytes, op)
        if n > limits.max_bytes:
            raise _too_large(op, url, limits.max_bytes, n)
        if n < LARGE_BYTES:
            return await r.read()
        from daft_flow import _core

        buf = _core.HostBuffer(n)
        view = memoryview(buf)
        got = 0
        try:
            async for chunk in r.content.iter_chunked(1 << 20):
                if got + len(chunk) > n:
                    raise OSError(f"{op}: {redact_url(url)}: server sent more than its Content-Length ({n} bytes)")
                view[got:got + len(chunk)] = chunk
                got += len(chunk)
        finally:
            view.release()
        if got != n:
            raise aiohttp.ClientPayloadError(f"{redact_url(url)}: got {got} of {n} bytes")
        return buf


RANGE_BYTES = 8 << 20  # large object-store files are fetched as ranges of this size...
RANGE_CONCURRENCY = 4  # ...this many at once per file


def _range_not_satisfiable(e: BaseException) -> bool:
    return getattr(e, "code", None) == 416 or getattr(e, "status", None) == 416 or (
        isinstance(e, OSError) and "range" in str(e).lower())


async def _ranged_get(fs: Any, url: str, max_bytes: int = DEFAULT_LIMITS.max_bytes, op: str = "read()") -> Any:
    """An object-store file (s3fs, gcsfs, any async fsspec filesystem) in one request when it is
    small, else into a HostBuffer of its size, filled by concurrent range requests: a large object
    is never joined from chunks (held twice), and big files come down over several connections."""
    try:
        head = await fs._cat_file(url, start=0, end=LARGE_BYTES)
    except Exception as e:
        if not _range_not_satisfiable(e):
            raise
        return await fs._cat_file(url)  # an empty object has no byte 0 to ask for
    if len(head) > max_bytes:
        raise _too_large(op, url, max_bytes)
    if len(head) < LARGE_BYTES:
        return head
    size = (await fs._info(url))["size"]
    if size > max_bytes:
        raise _too_large(op, url, max_bytes, size)
    if size <= len(head):
        return head
    from daft_flow import _core

    buf = _core.HostBuffer(size)
    view = memoryview(buf)
    view[:len(head)] = head
    del head
    short = [size]  # the file shrank since its size was read: where it ends now
    slots = asyncio.Semaphore(RANGE_CONCURRENCY)

    async def fill(start: int) -> None:
        end = min(size, start + RANGE_BYTES)
        async with slots:
            part = await fs._cat_file(url, start=start, end=end)
        view[start:start + len(part)] = part
        if len(part) < end - start:
            short[0] = min(short[0], start + len(part))

    # Every range finishes (or fails) before the view is released, also when the read is
    # cancelled (its time ran out): the ranges are cancelled and awaited first.
    tasks = [asyncio.ensure_future(fill(start)) for start in range(LARGE_BYTES, size, RANGE_BYTES)]
    try:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        view.release()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    if short[0] < size:
        buf.truncate(short[0])
    return buf


RETRIES = 3  # extra attempts for transient remote errors (HTTP 429/5xx, dropped connections)
_BACKOFF = Backoff(initial=0.1, maximum=10.0, max_retry_after=10.0)


def _retry_delay(e: BaseException, attempt: int) -> "float | None":
    """Seconds to wait before retrying after ``e``, or None if ``e`` is not transient. A timeout
    is final: the server had its time (see ``daft_flow.io.limits``)."""
    if getattr(e, "_daft_flow_read", False) or _is_timeout(e):
        return None
    status = getattr(e, "status", None)
    transient = status == 429 or (isinstance(status, int) and status >= 500)
    if status is None:
        try:
            import aiohttp

            transient = isinstance(e, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)) and \
                not isinstance(e, aiohttp.ClientSSLError)  # a TLS mismatch does not go away
        except ImportError:  # pragma: no cover
            transient = False
        transient = transient or isinstance(e, ConnectionError)
    if not transient:
        return None
    return _BACKOFF.delay(attempt, parse_retry_after(getattr(e, "headers", None)))


async def fetch_bytes(url: str, limits: ReadLimits = DEFAULT_LIMITS, op: str = "read()") -> Any:
    """All bytes of a path or URL (``bytes``, or a ``_core.HostBuffer`` for large local, HTTP and
    object-store files), read without blocking the event loop, under ``limits`` (time and size;
    see ``daft_flow.io.limits``). Transient remote errors (HTTP 429 and 5xx, dropped connections)
    are retried with exponential backoff and jitter, honouring ``Retry-After``. Errors name ``op``
    and the URL, redacted."""
    protocol, url = split_url(url)
    total = limits.timeout.total
    if protocol in _NETWORK and _curl_enabled():
        # libcurl keeps the total limit itself (each attempt gets what is left of it): no asyncio
        # timer per read on the event loop.
        return await _fetch(protocol, url, limits, op, _monotonic() + total)
    try:
        async with asyncio.timeout(total) as deadline:
            return await _fetch(protocol, url, limits, op)
    except TimeoutError as e:
        if not deadline.expired() or getattr(e, "_daft_flow_read", False):
            raise
        raise _total_timeout(op, url, total) from None


def _total_timeout(op: str, url: str, total: float) -> TimeoutError:
    return _own(TimeoutError(f"{op}: {redact_url(url)}: not read within {total:g} s (the total limit of one row's "
                             f"read); raise it with read(timeout=...) or dflow.set_options(read_timeout=...)"))


async def _fetch(protocol: str, url: str, limits: ReadLimits, op: str, deadline: "float | None" = None) -> Any:
    """``fetch_bytes`` once the protocol is known, with its retries; ``deadline`` (monotonic
    seconds) is the end of the total limit when libcurl reads (else the caller's timer keeps it)."""
    if protocol in _LOCAL:
        try:
            return await asyncio.to_thread(read_local, local_path(url), limits.max_bytes, op)
        except Exception as e:
            err = _row_error(e, url, op, limits)
            if err is e:
                raise
            raise err from e
    use_curl = deadline is not None
    if not use_curl:
        check_protocol(protocol, url)
    attempt = 0
    while True:
        try:
            if use_curl:
                return await _curl_get(url, limits, op, deadline)
            fs = _filesystem(protocol, url, asyncio.get_running_loop(), limits.timeout)
            if protocol in _NETWORK and hasattr(fs, "encode_url") and hasattr(fs, "set_session"):
                return await _http_get(fs, url, limits, op)
            if getattr(fs, "async_impl", False):
                return await _ranged_get(fs, url, limits.max_bytes, op)
            # A blocking filesystem (ftp, sftp, hf): made and used on a worker thread, since even
            # its constructor may connect.
            return await asyncio.to_thread(_cat_blocking, protocol, url, limits, op)
        except Exception as e:
            delay = _retry_delay(e, attempt) if attempt < RETRIES else None
            if delay is None:
                err = _row_error(e, url, op, limits)
                if err is e:
                    raise
                if url_secrets(url):  # the original may quote the URL: do not chain it
                    raise err from None
                raise err from e
            attempt += 1
            if deadline is not None and _monotonic() + delay >= deadline:
                raise _total_timeout(op, url, limits.timeout.total) from None  # no time left to retry
            await asyncio.sleep(delay)


_curl: Any = None  # daft_flow.io.curl when http(s) reads go through libcurl, else False; None: not decided yet


def _curl_enabled() -> bool:
    """Whether http(s) reads go through libcurl (``daft_flow.io.curl``): pycurl installed and not
    turned off with ``DAFT_FLOW_HTTP_CLIENT=aiohttp``. Decided once per process."""
    global _curl
    if _curl is None:
        from daft_flow.io import curl

        _curl = curl if curl.available() else False
    return _curl is not False


# URLs made of these only are sent as they are (RFC 3986's unreserved and reserved characters, and
# %XX escapes); others (spaces, non-ASCII, a lone "%") are percent-encoded first.
_PLAIN_URL = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


def _encoded(url: str) -> str:
    """``url`` with what must be percent-encoded encoded (spaces, non-ASCII), as aiohttp sends it."""
    if _PLAIN_URL.fullmatch(url):
        return url
    try:
        import yarl
    except ImportError:  # pragma: no cover - yarl comes with aiohttp
        return url
    return str(yarl.URL(url))


async def _curl_get(url: str, limits: ReadLimits, op: str, deadline: float) -> Any:
    curl = _curl
    t = limits.timeout
    left = deadline - _monotonic()
    if left <= 0:
        raise _total_timeout(op, url, t.total)
    try:
        return await curl.get(_encoded(url), limits.max_bytes, t.connect, t.read, left)
    except TimeoutError as e:
        # The total limit, or a connect limit cut short by it.
        if isinstance(e, curl.TotalTimeout) or _monotonic() >= deadline - 0.005:
            raise _total_timeout(op, url, t.total) from None
        raise
    except curl.TooLarge as e:
        raise _too_large(op, url, limits.max_bytes, e.size) from None
    except curl.TLSError as e:
        if "wrong version number" in str(e).lower():
            message = redact_text(str(e), url_secrets(url))
            raise _own(OSError(f"{op}: {redact_url(url)}: the server does not speak TLS (is it an http:// URL?): "
                               f"{message}")) from None
        raise


def _row_error(e: BaseException, url: str, op: str, limits: ReadLimits) -> BaseException:
    return _with_url(e, url, op, limits.timeout)


def open_sync(url: str) -> Any:
    """A binary file object for a path or URL (what ``dflow.File`` reads through); remote ones
    under the process-wide connect/read limits (``dflow.set_options(read_timeout=...)``)."""
    protocol, url = split_url(url)
    if protocol in _LOCAL:
        check_local(local_path(url))
        return open(local_path(url), "rb")
    check_protocol(protocol, url)
    try:
        return _filesystem(protocol, url).open(url, "rb")
    except Exception as e:
        err = _with_url(e, url, "File", _default_timeout())
        if err is e:
            raise
        if url_secrets(url):
            raise err from None
        raise err from e
