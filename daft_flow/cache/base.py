"""The interface every cache backend implements, and what they share: batched lookups, writes
handed to a background writer (so a lookup never waits behind a write and an LLM answer is saved
the moment it arrives), per-cache counters and TTL/size settings.

A cache maps keys (bytes: 16 bytes naming the op, 16 bytes hashing the row's input values) to
values (bytes: the row's result in the encoding of ``daft_flow/cache/codec.py``). Backends only
store bytes; they never see Python objects.
"""
from __future__ import annotations

import abc
import datetime
import logging
import os
import queue
import threading
from dataclasses import dataclass, fields
from typing import Any

_log = logging.getLogger("daft_flow")


class CacheError(Exception):
    """A cache cannot be used (a Redis server that does not answer, a directory that cannot be
    written). Raised before a run starts, so nothing is computed for nothing."""


@dataclass
class CacheStats:
    """What one cache object saw in this process (all runs): lookups that hit and missed, bytes
    read and written, entries evicted by the size cap or expired by the TTL."""

    hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    writes: int = 0
    evictions: int = 0
    expired: int = 0
    dropped: int = 0  # writes not stored (a DiskCache at its file's hard bound)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_ttl(ttl: Any, where: str) -> float | None:
    """``ttl``: seconds (int/float > 0), a ``datetime.timedelta``, or None (entries never expire)."""
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0 or ttl != ttl or ttl == float("inf"):
        raise ValueError(f"{where}: ttl must be a positive number of seconds or a datetime.timedelta, got {ttl!r}")
    return float(ttl)


class Cache(abc.ABC):
    """A per-row result cache. ``prompt(..., cache=True)`` uses the process's default
    (``dflow.set_cache``); ``cache=dflow.MemoryCache()`` (or any cache object) uses that one.

    Backends implement ``_get_many``, ``_write``, ``_delete_prefix``, ``_clear`` and ``check``;
    everything else is shared. Caches travel with plans as their settings (``__getstate__``), never
    with open handles or secrets.
    """

    def __init__(self) -> None:
        self._stats = CacheStats()
        self._stats_lock = threading.Lock()
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()

    # -- what backends implement --------------------------------------------------------------
    @abc.abstractmethod
    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The stored value of each key, or None (absent or expired), in one round trip."""

    @abc.abstractmethod
    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        """Stores every (key, value) (one transaction or pipeline); runs on the writer thread."""

    @abc.abstractmethod
    def _delete_prefix(self, prefix: bytes) -> int:
        """Removes every entry whose key starts with ``prefix``; returns how many."""

    @abc.abstractmethod
    def _clear(self) -> int:
        """Removes every entry this kind of cache wrote there; returns how many."""

    def check(self) -> None:  # noqa: B027 - optional hook: caches that need nothing checked keep it
        """Raises ``CacheError`` with a clear message if the cache cannot be used."""

    def describe(self) -> str:
        return repr(self)

    # -- shared ------------------------------------------------------------------------------------
    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """Looks up ``keys`` in one round trip; counts hits, misses and bytes read."""
        if not keys:
            return []
        values = self._get_many(keys)
        hits = sum(v is not None for v in values)
        nbytes = sum(len(v) for v in values if v is not None)
        with self._stats_lock:
            self._stats.hits += hits
            self._stats.misses += len(keys) - hits
            self._stats.bytes_read += nbytes
        return values

    def put_many(self, items: list[tuple[bytes, bytes]], *, wait: bool = False) -> None:
        """Stores ``items``: handed to the cache's writer thread (grouped with other writes into
        one transaction); ``wait=True`` returns once they are stored."""
        if not items:
            return
        self._get_writer().put(items)
        if wait:
            self.flush()

    def flush(self) -> None:
        """Returns once every write handed over so far is stored (raises the writer's error, if any)."""
        writer = self._writer
        if writer is not None and writer.pid == os.getpid():
            writer.flush()

    def delete_prefix(self, prefix: bytes) -> int:
        self.flush()
        return self._delete_prefix(prefix)

    def clear(self) -> int:
        """Removes every entry of this cache (for a shared Redis: every daft_flow entry under its
        prefix); returns how many."""
        self.flush()
        return self._clear()

    def stats(self) -> CacheStats:
        """Counters of this cache object in this process (a copy)."""
        with self._stats_lock:
            return CacheStats(**self._stats.as_dict())

    def _count(self, **counts: int) -> None:
        with self._stats_lock:
            for k, v in counts.items():
                setattr(self._stats, k, getattr(self._stats, k) + v)

    def _get_writer(self) -> "_Writer":
        with self._writer_lock:
            if self._writer is None or self._writer.pid != os.getpid():  # a forked child starts its own
                self._writer = _Writer(self)
                _caches_with_writes.add(self)
            return self._writer

    def close(self) -> None:
        """Stores pending writes and releases what the cache holds open in this process."""
        self.flush()

    # -- travelling: settings only ----------------------------------------------------------------
    _TRANSIENT = ("_stats", "_stats_lock", "_writer", "_writer_lock")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT and not k.startswith("_h_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Cache.__init__(self)
        self.__dict__.update(state)

    def __copy__(self) -> "Cache":
        new = type(self).__new__(type(self))
        new.__setstate__(self.__getstate__())
        return new

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Caches never change results, so they never count in node or plan fingerprints; this
        only names the object in the plan's table (no secrets)."""
        return {"cache": type(self).__name__}


class _Writer:
    """A thread per cache and process that stores what ``put_many`` hands over, grouping all
    writes waiting at that moment into one ``_write`` call; it exits after ``IDLE_S`` without
    work and starts again with the next write. A failed write is logged once and raised by the
    next ``flush`` (a cache that cannot store must not pass for one that did)."""

    MAX_GROUP = 65536
    IDLE_S = 1.0

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.pending = 0
        self.running = False
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def put(self, items: list[tuple[bytes, Any]]) -> None:
        with self.cond:
            self.pending += 1
            self.queue.put(items)
            if not self.running:
                self.running = True
                threading.Thread(target=self._loop, name=f"dflow-cache-writer-{type(self.cache).__name__}",
                                 daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self.cond:
                    if self.queue.empty():
                        self.running = False
                        self.cond.notify_all()
                        return
                continue
            groups, items = 1, list(first)
            while len(items) < self.MAX_GROUP:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                items.extend(more)
                groups += 1
            try:
                self.cache._write(items)
                stored = [v for _, v in items if isinstance(v, bytes)]  # (backends may queue other operations)
                self.cache._count(writes=len(stored), bytes_written=sum(map(len, stored)))
            except Exception as e:  # noqa: BLE001 - reported by flush()
                if self.error is None:
                    _log.warning("%s: could not store %d cache entries: %s: %s", self.cache.describe(), len(items),
                                 type(e).__name__, e)
                self.error = e
            with self.cond:
                self.pending -= groups
                self.cond.notify_all()

    def flush(self) -> None:
        with self.cond:
            while self.pending > 0:
                self.cond.wait(0.1)
        if self.error is not None:
            error, self.error = self.error, None
            raise CacheError(f"{self.cache.describe()}: could not store cache entries: {type(error).__name__}: "
                             f"{error}") from error


_caches_with_writes: "weakref.WeakSet[Cache]"


def _flush_at_exit() -> None:
    """Writes handed over before the interpreter exits are stored (a script that ends right after
    its last collect keeps its cache)."""
    for cache in list(_caches_with_writes):
        writer = cache._writer
        if writer is not None and writer.pid == os.getpid():
            try:
                writer.flush()
            except Exception:  # noqa: BLE001 - exiting anyway; the failure was logged
                pass


import atexit  # noqa: E402
import weakref  # noqa: E402

_caches_with_writes = weakref.WeakSet()
atexit.register(_flush_at_exit)
