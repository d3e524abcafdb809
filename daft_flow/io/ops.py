"""The file ops' functions: ``open_file`` (str -> File) and ``read`` (File -> str).

They are plain module-level functions, so a traced plan references them by module and qualname
like any ``run_python`` callable; the op specs mark them as builtins so ``explain()`` and error
messages call them ``open_file`` and ``read``.
"""
from __future__ import annotations

import asyncio

from daft_flow.files import File
from daft_flow.io.locations import _LOCAL, check_local, check_protocol, fetch_bytes, local_path, split_url
from daft_flow.io.text import bytes_to_text

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


async def read_text(file: File) -> str:
    """The file's contents as text (HTML and PDF converted to text)."""
    url = file.url if isinstance(file, File) else file
    data = await fetch_bytes(url)
    if len(data) <= _PARSE_INLINE_BYTES and not data.startswith(b"%PDF-"):
        return bytes_to_text(data, url)
    return await asyncio.to_thread(bytes_to_text, data, url)


async def read_bytes(file: File) -> bytes:
    """The file's contents as bytes."""
    return await fetch_bytes(file.url if isinstance(file, File) else file)
