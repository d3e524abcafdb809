"""Where a file lives: checking paths and URLs, and getting their bytes (local, file://, and every
fsspec protocol: http(s), s3, gs, hf, ...).

Remote reads go through fsspec's async filesystems on the runtime's event loop: one filesystem (so
one aiohttp session / one S3 client, with its connection pool) per protocol and loop, shared by all
concurrent reads. Credentials and endpoints come from the standard environment and config files
(``AWS_ENDPOINT_URL`` alone points s3:// at MinIO, R2 or moto; ``STORAGE_EMULATOR_HOST`` points
gs:// at a GCS emulator).
"""
from __future__ import annotations

import asyncio
import atexit
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from daft_flow.retry import Backoff, parse_retry_after

import daft_flow.execution.event_loop  # noqa: F401 - its exit hook must be registered before ours

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LOCAL = ("", "file", "local")
_NETWORK = ("http", "https")


def split_url(url: Any) -> tuple[str, str]:
    """(protocol, url) for a path or URL; protocol is "" for local paths. Raises ValueError for
    values that are not a path or a well-formed URL, naming the value."""
    if not isinstance(url, str):
        raise TypeError(f"a file location must be a str path or URL, got {type(url).__name__} {url!r}")
    if not url or url.strip() != url or "\x00" in url or "\n" in url:
        raise ValueError(f"invalid path or URL {url!r}")
    m = _SCHEME.match(url)
    if m is None:
        if "://" in url:
            raise ValueError(f"invalid URL {url!r}: malformed scheme")
        return "", url
    protocol = m.group(1).lower()
    if protocol in _NETWORK:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as e:
            raise ValueError(f"invalid URL {url!r}: {e}") from None
        if not parts.hostname:
            raise ValueError(f"invalid URL {url!r}: no host")
    elif not url[m.end():]:
        raise ValueError(f"invalid URL {url!r}: nothing after the scheme")
    return protocol, url


def check_protocol(protocol: str, url: str) -> None:
    """Raises ValueError if no installed fsspec backend serves ``protocol`` (naming the URL)."""
    if protocol in _LOCAL:
        return
    try:
        from fsspec.registry import get_filesystem_class
    except ImportError:  # pragma: no cover - fsspec is a dependency of the files extra
        raise ImportError(f"reading {url!r} needs fsspec: pip install 'daft-flow[files]'") from None
    try:
        get_filesystem_class(protocol)
    except ValueError:
        raise ValueError(f"unsupported scheme {protocol!r} in {url!r}") from None
    except ImportError as e:
        raise ImportError(f"reading {url!r} needs a package that is not installed: {e}") from None


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

# Environment variables that point a protocol at another endpoint (MinIO/R2/moto, a GCS emulator,
# a Hub mirror): a filesystem made before one changed must not be reused after.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST", "HF_ENDPOINT")


def _endpoints() -> str:
    return "\0".join(os.environ.get(v, "") for v in _ENDPOINT_VARIABLES)


def _filesystem(protocol: str, url: str, loop: "asyncio.AbstractEventLoop | None" = None) -> Any:
    """The shared filesystem for ``url``: async on ``loop`` when the protocol has an async
    implementation and a loop is given, else a blocking one for the calling thread. Options the
    URL carries (an FTP host and port, say) are passed to it."""
    import fsspec

    cls = fsspec.get_filesystem_class(protocol)
    try:
        options = cls._get_kwargs_from_urls(url)
    except Exception:  # pragma: no cover - a backend that cannot parse its own URLs
        options = {}
    is_async = loop is not None and getattr(cls, "async_impl", False)
    owner = id(loop) if is_async else threading.get_ident()
    key = (protocol, owner, _endpoints(), repr(sorted(options.items())))
    fs = _filesystems.get(key)
    if fs is None:
        if is_async:
            fs = cls(asynchronous=True, loop=loop, skip_instance_cache=True, **options)
        else:
            fs = cls(skip_instance_cache=True, **options)
        _filesystems[key] = fs
    return fs


def _cat_blocking(protocol: str, url: str) -> Any:
    return _filesystem(protocol, url).cat_file(url)


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


@atexit.register
def _close_at_exit() -> None:
    """Closes the async filesystems' sessions on the runtime loop before it stops (registered
    after the loop's own exit hook, so it runs first)."""
    from daft_flow.execution import event_loop

    loop = event_loop._loop
    owned = [fs for (_, owner, *_), fs in _filesystems.items() if loop is not None and owner == id(loop)]
    _filesystems.clear()
    if owned and loop is not None and loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(_close_filesystems(owned), loop).result(timeout=5)
        except Exception:  # pragma: no cover
            pass


def _with_url(e: BaseException, url: str) -> BaseException:
    """``e`` with the URL in its message (remote backends often leave it out)."""
    status = getattr(e, "status", None)
    if status in (401, 403):
        err: BaseException = PermissionError(f"{url}: HTTP {status} {getattr(e, 'message', '')}".rstrip())
    elif status == 404:
        err = FileNotFoundError(f"{url}: HTTP 404 Not Found")
    elif url in str(e):
        return e
    else:
        try:
            err = type(e)(f"{url}: {e}")
        except Exception:
            err = OSError(f"{url}: {type(e).__name__}: {e}")
    return err


LARGE_BYTES = 1 << 20  # from this size, files are read into a runtime-owned buffer (no copies)


def read_local(path: str) -> Any:
    """A file's bytes: ``bytes``, or for large files a ``HostBuffer`` read into in place."""
    check_local(path)  # again: the path may have been replaced since open_file() looked at it
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size < LARGE_BYTES:
            return f.read()
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
        rest = f.read()
        if rest:  # the file grew while we read it
            return bytes(memoryview(buf)) + rest
        return buf


async def _http_get(fs: Any, url: str) -> Any:
    """GET through fsspec's HTTP session; a large body of known length is read into a HostBuffer
    chunk by chunk instead of being joined (and so copied) in memory."""
    session = await fs.set_session()
    async with session.get(fs.encode_url(url), **fs.kwargs) as r:
        fs._raise_not_found_for_status(r, url)
        n = r.content_length
        if n is None or n < LARGE_BYTES or r.headers.get("Content-Encoding", "identity") != "identity":
            return await r.read()
        from daft_flow import _core

        buf = _core.HostBuffer(n)
        view = memoryview(buf)
        got = 0
        try:
            async for chunk in r.content.iter_chunked(1 << 20):
                if got + len(chunk) > n:
                    raise OSError(f"{url}: server sent more than its Content-Length ({n} bytes)")
                view[got:got + len(chunk)] = chunk
                got += len(chunk)
        finally:
            view.release()
        if got != n:
            import aiohttp

            raise aiohttp.ClientPayloadError(f"{url}: got {got} of {n} bytes")
        return buf


RANGE_BYTES = 8 << 20  # large object-store files are fetched as ranges of this size...
RANGE_CONCURRENCY = 4  # ...this many at once per file


def _range_not_satisfiable(e: BaseException) -> bool:
    return getattr(e, "code", None) == 416 or getattr(e, "status", None) == 416 or (
        isinstance(e, OSError) and "range" in str(e).lower())


async def _ranged_get(fs: Any, url: str) -> Any:
    """An object-store file (s3fs, gcsfs, any async fsspec filesystem) in one request when it is
    small, else into a HostBuffer of its size, filled by concurrent range requests: a large object
    is never joined from chunks (held twice), and big files come down over several connections."""
    try:
        head = await fs._cat_file(url, start=0, end=LARGE_BYTES)
    except Exception as e:
        if not _range_not_satisfiable(e):
            raise
        return await fs._cat_file(url)  # an empty object has no byte 0 to ask for
    if len(head) < LARGE_BYTES:
        return head
    size = (await fs._info(url))["size"]
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

    # Every range finishes (or fails) before the view is released; the first error is raised.
    outcomes = await asyncio.gather(*(fill(start) for start in range(LARGE_BYTES, size, RANGE_BYTES)),
                                    return_exceptions=True)
    view.release()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    if short[0] < size:
        buf.truncate(short[0])
    return buf


RETRIES = 3  # extra attempts for transient remote errors (HTTP 429/5xx, dropped connections, timeouts)
_BACKOFF = Backoff(initial=0.1, maximum=10.0, max_retry_after=10.0)


def _retry_delay(e: BaseException, attempt: int) -> "float | None":
    """Seconds to wait before retrying after ``e``, or None if ``e`` is not transient."""
    status = getattr(e, "status", None)
    transient = status == 429 or (isinstance(status, int) and status >= 500)
    if status is None:
        try:
            import aiohttp

            transient = isinstance(e, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError))
        except ImportError:  # pragma: no cover
            transient = False
        transient = transient or isinstance(e, (asyncio.TimeoutError, ConnectionError))
    if not transient:
        return None
    return _BACKOFF.delay(attempt, parse_retry_after(getattr(e, "headers", None)))


async def fetch_bytes(url: str) -> Any:
    """All bytes of a path or URL (``bytes``, or a ``_core.HostBuffer`` for large local, HTTP and
    object-store files), read without blocking the event loop. Transient remote errors
    (HTTP 429 and 5xx, dropped connections, timeouts) are retried with exponential backoff and
    jitter, honouring ``Retry-After``."""
    protocol, url = split_url(url)
    if protocol in _LOCAL:
        return await asyncio.to_thread(read_local, local_path(url))
    check_protocol(protocol, url)
    attempt = 0
    while True:
        try:
            fs = _filesystem(protocol, url, asyncio.get_running_loop())
            if protocol in _NETWORK and hasattr(fs, "encode_url") and hasattr(fs, "set_session"):
                return await _http_get(fs, url)
            if getattr(fs, "async_impl", False):
                return await _ranged_get(fs, url)
            # A blocking filesystem (ftp, sftp, hf): made and used on a worker thread, since even
            # its constructor may connect.
            return await asyncio.to_thread(_cat_blocking, protocol, url)
        except Exception as e:
            delay = _retry_delay(e, attempt) if attempt < RETRIES else None
            if delay is None:
                err = _with_url(e, url)
                if err is e:
                    raise
                raise err from e
            attempt += 1
            await asyncio.sleep(delay)


def open_sync(url: str) -> Any:
    """A binary file object for a path or URL (what ``dflow.File`` reads through)."""
    protocol, url = split_url(url)
    if protocol in _LOCAL:
        check_local(local_path(url))
        return open(local_path(url), "rb")
    check_protocol(protocol, url)
    try:
        return _filesystem(protocol, url).open(url, "rb")
    except Exception as e:
        err = _with_url(e, url)
        if err is e:
            raise
        raise err from e
