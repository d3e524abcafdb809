"""The file ops' functions: ``open_file`` (str -> File) and ``read`` (File -> str or bytes).

``open_file`` is a plain module-level function and ``read`` a ``ReadFile`` (its limits travel
with it), so a traced plan references them like any ``run_python`` callable; the op specs mark
them as builtins so ``explain()`` and error messages call them ``open_file`` and ``read``.
"""
from __future__ import annotations

import asyncio
from typing import Any

from daft_flow.files import File
from daft_flow.io.limits import DEFAULT_LIMITS, ReadLimits, Timeout
from daft_flow.io.locations import _LOCAL, check_local, check_protocol, fetch_bytes, local_path, split_url
from daft_flow.io.text import bytes_to_text, sniff
from daft_flow.io.warmup import warm_up_reads

_PARSE_INLINE_BYTES = 256 * 1024  # larger documents are decoded/parsed off the event loop


def open_file(location: str) -> File:
    """A ``File`` for a path or URL. Checks what can be checked without I/O on the network: the
    URL's form and scheme, and that a local file exists and is readable."""
    protocol, url = split_url(location)
    if protocol in _LOCAL:
        check_local(local_path(url))
    else:
        check_protocol(protocol, url)
    return File(url)


def _plain_utf8(buf: Any, url: str) -> bool:
    """Whether a HostBuffer holds plain UTF-8 text (no BOM, not HTML/PDF): then it is the result
    as it is, with no str made of it. Validated by Arrow without copying."""
    import struct

    import pyarrow as pa

    head = bytes(memoryview(buf)[:1024])
    if sniff(head, url) != "text" or head.startswith(b"\xef\xbb\xbf"):
        return False
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(buf)))
    array = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(buf)])
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _large_to_text(data: Any, url: str) -> Any:
    from daft_flow import _core

    if isinstance(data, _core.HostBuffer):
        if _plain_utf8(data, url):
            data.utf8 = True
            return data
        data = bytes(memoryview(data))
    return bytes_to_text(data, url)


async def read_text(file: File, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """The file's contents as text (HTML and PDF converted to text). Large plain UTF-8 files come
    back as the buffer they were read into (a ``HostBuffer`` the runtime stores as str unchanged)."""
    url = file.url if isinstance(file, File) else file
    data = await fetch_bytes(url, limits, "read()")
    if isinstance(data, bytes) and len(data) <= _PARSE_INLINE_BYTES and not data.startswith(b"%PDF-"):
        return bytes_to_text(data, url)
    return await asyncio.to_thread(_large_to_text, data, url)


async def read_bytes(file: File, limits: ReadLimits = DEFAULT_LIMITS) -> bytes:
    """The file's contents as bytes (large files: the ``HostBuffer`` they were read into)."""
    return await fetch_bytes(file.url if isinstance(file, File) else file, limits, "read(as_bytes=True)")


class ReadFile:
    """The function of a ``read()`` op: a ``File``'s contents as text (or bytes), under the op's
    time and size limits. Limits the op leaves unset come from the run's options when the plan is
    lowered (``with_defaults``), else from the process's (``dflow.set_options``)."""

    def __init__(self, as_bytes: bool = False, timeout: Timeout | None = None, max_bytes: int | None = None) -> None:
        self.as_bytes, self.timeout, self.max_bytes = as_bytes, timeout, max_bytes
        warm_up_reads()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A plan loaded in another process (a worker) warms up its reads like one built there.
        self.__dict__.update(state)
        warm_up_reads()

    def with_defaults(self, timeout: Timeout, max_bytes: int) -> "ReadFile":
        return ReadFile(self.as_bytes, self.timeout or timeout, self.max_bytes or max_bytes)

    @property
    def limits(self) -> ReadLimits:
        if self.timeout is not None and self.max_bytes is not None:
            return ReadLimits(self.timeout, self.max_bytes)
        from daft_flow.io.limits import process_limits

        process = process_limits()
        return ReadLimits(self.timeout or process.timeout, self.max_bytes or process.max_bytes)

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: what it returns, not how long it may take."""
        return {"op": "read", "as_bytes": self.as_bytes}

    def describe(self) -> str:
        """The limits the op sets itself (what ``explain()`` shows)."""
        parts = ([f"timeout=({self.timeout})"] if self.timeout else []) + \
            ([f"max_bytes={self.max_bytes}"] if self.max_bytes else [])
        return ", ".join(parts)

    async def __call__(self, file: File) -> Any:
        limits = self.limits
        return await (read_bytes(file, limits) if self.as_bytes else read_text(file, limits))

    def __repr__(self) -> str:
        return f"ReadFile(as_bytes={self.as_bytes}{', ' + self.describe() if self.describe() else ''})"
