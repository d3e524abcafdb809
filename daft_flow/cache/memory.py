"""``dflow.MemoryCache``: entries in this process's memory, least recently used evicted first."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from daft_flow.cache.base import Cache, check_ttl
from daft_flow.units import parse_bytes

# What an entry costs besides its key and value bytes (the dict slot, the tuple, two bytes objects).
ENTRY_OVERHEAD = 160


class MemoryCache(Cache):
    """Results kept in this process's memory (gone when it exits): ``max_size`` (bytes, or a size
    like ``"1GB"``) bounds keys + values + a per-entry overhead, evicting the least recently used
    entries; ``ttl`` (seconds or a ``timedelta``) makes entries expire. A plan sent to another
    process carries an empty MemoryCache of the same settings."""

    def __init__(self, max_size: "int | str" = "1GB", ttl: Any = None) -> None:
        super().__init__()
        self.max_size = parse_bytes(max_size, "MemoryCache: max_size")
        self.ttl = check_ttl(ttl, "MemoryCache")
        self._h_init()

    def _h_init(self) -> None:
        self._h_entries: "OrderedDict[bytes, tuple[bytes, float]]" = OrderedDict()
        self._h_size = 0
        self._h_lock = threading.Lock()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._h_init()

    def __repr__(self) -> str:
        ttl = f", ttl={self.ttl:g}" if self.ttl else ""
        return f"MemoryCache(max_size={self.max_size}{ttl})"

    @property
    def size(self) -> int:
        """Bytes held now (keys, values and per-entry overhead)."""
        return self._h_size

    def __len__(self) -> int:
        return len(self._h_entries)

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        out: list[bytes | None] = []
        now = time.time() if self.ttl else 0.0
        expired = 0
        with self._h_lock:
            entries = self._h_entries
            for k in keys:
                e = entries.get(k)
                if e is None:
                    out.append(None)
                elif e[1] and e[1] <= now:
                    self._remove(k)
                    expired += 1
                    out.append(None)
                else:
                    entries.move_to_end(k)
                    out.append(e[0])
        if expired:
            self._count(expired=expired)
        return out

    def put_many(self, items: list[tuple[bytes, bytes]], *, wait: bool = False) -> None:
        # Memory needs no writer thread: store now.
        if items:
            self._write(items)
            self._count(writes=len(items), bytes_written=sum(len(v) for _, v in items))

    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        expires = time.time() + self.ttl if self.ttl else 0.0
        evicted = 0
        with self._h_lock:
            entries = self._h_entries
            for k, v in items:
                if k in entries:
                    self._remove(k)
                cost = len(k) + len(v) + ENTRY_OVERHEAD
                if cost > self.max_size:
                    continue  # larger than the whole cache: never kept
                entries[k] = (v, expires)
                self._h_size += cost
            while self._h_size > self.max_size and entries:
                k, _ = next(iter(entries.items()))
                self._remove(k)
                evicted += 1
        if evicted:
            self._count(evictions=evicted)

    def _remove(self, key: bytes) -> None:
        v, _ = self._h_entries.pop(key)
        self._h_size -= len(key) + len(v) + ENTRY_OVERHEAD

    def _delete_prefix(self, prefix: bytes) -> int:
        with self._h_lock:
            doomed = [k for k in self._h_entries if k.startswith(prefix)]
            for k in doomed:
                self._remove(k)
        return len(doomed)

    def _clear(self) -> int:
        with self._h_lock:
            n = len(self._h_entries)
            self._h_entries.clear()
            self._h_size = 0
        return n
