"""Where a checkpoint lives: a local directory or any fsspec URL (``s3://bucket/run-1``).

Every write of a file is atomic for readers and for a process killed mid-write: locally a file is
written under a temporary name and renamed over the target; object stores replace an object in
one PUT. (A machine that loses power may lose the last few commits: nothing is fsynced.)
"""
from __future__ import annotations

import os
import uuid
from typing import Any


class CheckpointStorage:
    """Files of one checkpoint, by name relative to its location."""

    def __init__(self, location: "str | os.PathLike[str]") -> None:
        location = os.fspath(location)
        if not isinstance(location, str) or not location:
            raise TypeError(f"checkpoint= needs a directory or a URL such as 's3://bucket/run', got {location!r}")
        self.location = location.rstrip("/") or "/"
        self.local = "://" not in location or location.startswith("file://")
        if self.local:
            self.root = os.path.abspath(location[len("file://"):] if location.startswith("file://") else location)
            self._fs: Any = None
        else:
            from daft_flow.io.locations import check_protocol, split_url

            protocol, _ = split_url(location)
            check_protocol(protocol, location)
            import fsspec

            self._fs = fsspec.get_filesystem_class(protocol)(skip_instance_cache=True)
            self.root = self._fs._strip_protocol(location).rstrip("/")

    def __repr__(self) -> str:
        from daft_flow.secrets import redact_url

        return redact_url(self.location)

    def path(self, name: str) -> str:
        """The full path (local) or URL-less path (fsspec) of ``name``."""
        return os.path.join(self.root, name) if self.local else f"{self.root}/{name}"

    def url(self, name: str) -> str:
        return self.path(name) if self.local else f"{self.location}/{name}"

    # -- reading -----------------------------------------------------------------------------------
    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        try:
            if self.local:
                with open(self.path(name), "rb") as f:
                    return f.read()
            return bytes(self._fs.cat_file(self.path(name)))
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        if self.local:
            return os.path.exists(self.path(name))
        return bool(self._fs.exists(self.path(name)))

    def list(self, prefix: str) -> list[str]:
        """Names (relative) of the files directly under directory ``prefix``."""
        if self.local:
            try:
                return sorted(f"{prefix}/{n}" for n in os.listdir(self.path(prefix)))
            except FileNotFoundError:
                return []
        try:
            listed = self._fs.ls(self.path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(f"{prefix}/{p.rstrip('/').rsplit('/', 1)[-1]}" for p in listed)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, name: str, data: bytes, atomic: bool = True) -> None:
        """Writes ``name`` atomically (readers see the old file or the new one, never a part).
        ``atomic=False`` for files nothing reads before a later atomic write counts them (commit
        records, results): one rename less per commit."""
        if self.local and not atomic:
            path = self.path(name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        elif self.local:
            path = self.path(name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        else:
            self._fs.pipe_file(self.path(name), data)

    def delete(self, names: list[str]) -> None:
        for name in names:
            try:
                if self.local:
                    os.unlink(self.path(name))
                else:
                    self._fs.rm_file(self.path(name))
            except FileNotFoundError:
                pass

    def delete_tree(self, prefix: str) -> None:
        if self.local:
            import shutil

            shutil.rmtree(self.path(prefix), ignore_errors=True)
        else:
            try:
                self._fs.rm(self.path(prefix), recursive=True)
            except FileNotFoundError:
                pass

    def check_writable(self) -> None:
        """Writes and removes a probe file: a read-only location fails here, before any work."""
        probe = f".probe-{uuid.uuid4().hex}"
        self.write(probe, b"")
        self.delete([probe])
