"""The ``File`` value: a reference to a local or remote file whose bytes are read lazily."""
from __future__ import annotations

import io
from typing import IO, Any


class File(io.RawIOBase):
    """A file behind a path or URL, opened on first read.

    A ``File`` handed to a Python function behaves as a binary file object, so libraries that
    take file objects work on it directly (``pandas.read_csv(file)``). Local paths and
    ``file://`` URLs are opened with the built-in ``open``; other schemes go through fsspec
    (remote files are read in blocks, not loaded whole).
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        if not isinstance(url, str) or not url:
            raise ValueError(f"File needs a non-empty path or URL, got {url!r}")
        self.url = url
        self._handle: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            from daft_flow.io.locations import open_sync

            self._handle = open_sync(self.url)
        return self._handle

    @property
    def name(self) -> str:
        """The path or URL (libraries use a file object's ``name`` to guess formats)."""
        return self.url

    def _call(self, method: str, *args: Any) -> Any:
        """``method`` of the open handle; errors of a URL with credentials are shown redacted."""
        try:
            return getattr(self._open(), method)(*args)
        except Exception as e:
            from daft_flow.secrets import url_secrets

            if not url_secrets(self.url):
                raise
            from daft_flow.io.locations import _with_url

            err = _with_url(e, self.url, "File")
            if err is e:
                raise
            raise err from None  # the original may quote the URL

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._call("seekable"))

    def readinto(self, buffer: Any) -> int:
        data = self._call("read", len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return bytes(self._call("read", size))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._call("seek", offset, whence))

    def tell(self) -> int:
        return int(self._call("tell"))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()

    def __repr__(self) -> str:
        from daft_flow.secrets import redact_url

        return f"File({redact_url(self.url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.url == self.url

    def __hash__(self) -> int:
        return hash(("File", self.url))
