"""``dflow.DiskCache``: entries in an LMDB environment on local disk, shared by every process of
the machine, least recently used evicted first under a size cap, optional TTL.

Why LMDB (``lmdb``, the py-lmdb binding): a fully cached rerun is a stream of point lookups, and
LMDB serves them from a memory map with no query layer: measured on 100,000 keys (32 bytes, ~40
byte values, one process, warm page cache), 46 ms for a loop of ``txn.get`` (2.2 M keys/s), where
SQLite (stdlib ``sqlite3``, WAL, ``WITHOUT ROWID`` primary key) needed 250 ms for the same lookups
as batched ``IN (...)`` queries (0.4 M keys/s) and another 250 ms to record access times. Readers
never block writers or each other, across processes; one writer at a time (LMDB's own lock, taken
with the GIL released); a killed process never corrupts the file (copy-on-write B-tree; commits
are atomic).

Layout: database ``v`` maps key -> value; ``a`` maps key -> (last access, expiry) for LRU and TTL;
``m`` holds the logical size (keys + values + a per-entry overhead). Access times are recorded by
the writer thread, at most once a minute per key and process, so lookups stay read-only (LRU order
is exact to within a minute). When the size passes ``max_size`` the writer evicts the least
recently used entries down to 90% of it.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any

from daft_flow.cache.base import Cache, CacheError, check_ttl
from daft_flow.units import parse_bytes

# Per entry besides key and value: the access record (key + 16 bytes) and B-tree node headers.
ENTRY_OVERHEAD = 64
EVICT_TO = 0.9  # evict down to this fraction of max_size
TOUCH_EVERY_S = 60.0
_ACCESS = struct.Struct("<dd")  # last access (Unix s), expiry (Unix s, 0: never)
_SIZE_KEY, _TTL_KEY = b"size", b"ttl"
_TOUCH, _DELETE = None, False  # writer items (key, _TOUCH | _DELETE) besides (key, value)


def default_cache_dir() -> str:
    """``$DFLOW_CACHE_DIR``, else the user's cache directory (``~/.cache/daft_flow/results`` on
    Linux, by platformdirs) ."""
    env = os.environ.get("DFLOW_CACHE_DIR")
    if env:
        return env
    try:
        import platformdirs

        base = platformdirs.user_cache_dir("daft_flow", appauthor=False)
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "daft_flow")
    return os.path.join(base, "results")


class _Env:
    """One LMDB environment per path and process (LMDB forbids opening one twice in a process)."""

    def __init__(self, path: str, map_size: int, sync: bool) -> None:
        import lmdb

        self.path = path
        # metasync=False: one fsync per commit, not two (a machine crash may undo the last commit,
        # never corrupt). sync=False (checkpoint journals): no fsync at all; a killed process still
        # loses nothing, the kernel holds the pages.
        self.env = lmdb.open(path, map_size=map_size, subdir=True, max_dbs=4, metasync=False, sync=sync,
                             readahead=False, max_readers=512, lock=True)
        self.values = self.env.open_db(b"v")
        self.access = self.env.open_db(b"a")
        self.meta = self.env.open_db(b"m")
        self.map_size = map_size


_envs: dict[tuple[int, str], _Env] = {}
_envs_lock = threading.Lock()


def _open_env(path: str, map_size: int, sync: bool = True) -> _Env:
    key = (os.getpid(), os.path.realpath(path))
    with _envs_lock:
        env = _envs.get(key)
        if env is None:
            env = _envs[key] = _Env(path, map_size, sync)
        return env


def forget_env(path: str) -> None:
    """Closes this process's environment at ``path`` (before its directory is removed)."""
    with _envs_lock:
        env = _envs.pop((os.getpid(), os.path.realpath(path)), None)
    if env is not None:
        env.env.close()


def _cost(key: bytes, value: bytes) -> int:
    return 2 * len(key) + len(value) + ENTRY_OVERHEAD


class DiskCache(Cache):
    """Results in an LMDB store under ``path`` (default: the user's cache directory), shared by
    every process on this machine. ``max_size`` (bytes or ``"10GB"``) caps keys + values + ~96
    bytes per entry, evicting the least recently used down to 90% of it; ``ttl`` (seconds or a
    ``timedelta``) makes entries expire. Writes are stored by a background thread; lookups never
    wait for them."""

    def __init__(self, path: "str | os.PathLike[str] | None" = None, max_size: "int | str" = "10GB",
                 ttl: Any = None) -> None:
        super().__init__()
        self.path = os.path.abspath(os.fspath(path)) if path is not None else os.path.abspath(default_cache_dir())
        self.max_size = parse_bytes(max_size, "DiskCache: max_size")
        self.ttl = check_ttl(ttl, "DiskCache")

    def __repr__(self) -> str:
        ttl = f", ttl={self.ttl:g}" if self.ttl else ""
        return f"DiskCache({self.path!r}, max_size={self.max_size}{ttl})"

    # -- the environment --------------------------------------------------------------------------
    def _env(self) -> _Env:
        env = getattr(self, "_h_env", None)
        if env is not None and env[0] == os.getpid():
            return env[1]
        try:
            import lmdb  # noqa: F401
        except ImportError:
            raise CacheError("DiskCache needs the lmdb package: pip install lmdb") from None
        # The map is only address space (the file grows as it fills): room for the cap plus the
        # B-tree's own pages.
        map_size = max(2 * self.max_size, 64 << 20)
        try:
            os.makedirs(self.path, exist_ok=True)
            opened = _open_env(self.path, map_size, getattr(self, "_durable", True))
        except Exception as e:  # lmdb.Error, PermissionError, ...
            raise CacheError(f"DiskCache at {self.path!r} cannot be opened: {type(e).__name__}: {e}") from e
        self._h_env = (os.getpid(), opened)
        self._h_touched: set[bytes] = set()
        self._h_touch_minute = 0
        return opened

    def check(self) -> None:
        e = self._env()
        try:
            with e.env.begin(write=True) as txn:  # a read-only directory or file fails here, not mid-run
                txn.put(b"probe", b"", db=e.meta)
        except Exception as err:
            raise CacheError(f"DiskCache at {self.path!r} cannot be written: {type(err).__name__}: {err}") from err

    # -- reads ------------------------------------------------------------------------------------
    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        e = self._env()
        with e.env.begin(buffers=False) as txn:
            get = txn.get
            values = [get(k, None, e.values) for k in keys]
            if txn.get(_TTL_KEY, None, e.meta) is not None:  # some entry was written with a TTL
                now = time.time()
                expired = []
                for i, k in enumerate(keys):
                    if values[i] is not None:
                        rec = get(k, None, e.access)
                        if rec is not None and 0 < _ACCESS.unpack(rec)[1] <= now:
                            values[i] = None
                            expired.append(k)
                if expired:
                    self._count(expired=len(expired))
                    self._get_writer().put([(k, _DELETE) for k in expired])
        self._touch([k for k, v in zip(keys, values) if v is not None])
        return values

    def _touch(self, keys: list[bytes]) -> None:
        """Records access times (on the writer thread), once a minute per key and process."""
        minute = int(time.time() // TOUCH_EVERY_S)
        if minute != self._h_touch_minute:
            self._h_touch_minute, self._h_touched = minute, set()
        touched = self._h_touched
        fresh = [k for k in keys if k not in touched]
        if fresh:
            touched.update(fresh)
            self._get_writer().put([(k, _TOUCH) for k in fresh])

    # -- writes (writer thread) -------------------------------------------------------------------
    def put_many(self, items: list[tuple[bytes, bytes]], *, wait: bool = False) -> None:
        self._env()
        self._h_touched.update(k for k, _ in items)  # written now: no touch needed this minute
        super().put_many(items, wait=wait)

    def _write(self, items: list[tuple[bytes, Any]]) -> None:
        import lmdb

        e = self._env()
        try:
            size = self._apply(e, items)
        except lmdb.MapFullError:
            self._evict(e, target=self.max_size // 2)
            size = self._apply(e, items)
        if size > self.max_size:
            self._evict(e, target=int(self.max_size * EVICT_TO))

    def _apply(self, e: _Env, items: list[tuple[bytes, Any]]) -> int:
        now = time.time()
        expires = now + self.ttl if self.ttl else 0.0
        record = _ACCESS.pack(now, expires)
        with e.env.begin(write=True) as txn:
            size = _read_size(txn, e)
            vals, acc = txn.cursor(e.values), txn.cursor(e.access)
            for k, v in items:
                if v is _TOUCH:  # a new access time, the same expiry
                    rec = acc.get(k)
                    if rec is not None:
                        acc.put(k, _ACCESS.pack(now, _ACCESS.unpack(rec)[1]))
                    continue
                old = vals.get(k)
                if old is not None:
                    size -= _cost(k, old)
                if v is _DELETE:  # an expired entry
                    if old is not None:
                        vals.delete()
                        if acc.set_key(k):
                            acc.delete()
                    continue
                vals.put(k, v)
                acc.put(k, record)
                size += _cost(k, v)
            txn.put(_SIZE_KEY, struct.pack("<q", max(size, 0)), db=e.meta)
            if expires:
                txn.put(_TTL_KEY, b"1", db=e.meta)
        return size

    def _evict(self, e: _Env, target: int) -> None:
        """Removes expired entries, then the least recently used, until the size is at most ``target``."""
        import numpy as np

        with e.env.begin(write=True) as txn:
            size = _read_size(txn, e)
            keys: list[bytes] = []
            atimes: list[float] = []
            expiries: list[float] = []
            for k, rec in txn.cursor(e.access):
                a, x = _ACCESS.unpack(rec)
                keys.append(k)
                atimes.append(a)
                expiries.append(x)
            now = time.time()
            exp = np.asarray(expiries)
            is_expired = (exp > 0) & (exp <= now)
            order = np.argsort(np.asarray(atimes), kind="stable")
            vals, acc = txn.cursor(e.values), txn.cursor(e.access)

            def remove(k: bytes) -> None:
                nonlocal size
                v = vals.get(k)
                if v is not None:
                    size -= _cost(k, v)
                    vals.delete()
                if acc.set_key(k):
                    acc.delete()

            n_expired = int(is_expired.sum())
            for i in np.flatnonzero(is_expired).tolist():
                remove(keys[i])
            evicted = 0
            for i in order.tolist():
                if size <= target:
                    break
                if not is_expired[i]:
                    remove(keys[i])
                    evicted += 1
            txn.put(_SIZE_KEY, struct.pack("<q", max(size, 0)), db=e.meta)
        self._count(evictions=evicted, expired=n_expired)

    # -- maintenance ------------------------------------------------------------------------------
    def _delete_prefix(self, prefix: bytes) -> int:
        e = self._env()
        n = 0
        with e.env.begin(write=True) as txn:
            size = _read_size(txn, e)
            vals, acc = txn.cursor(e.values), txn.cursor(e.access)
            if vals.set_range(prefix):
                while True:
                    k = vals.key()
                    if not k.startswith(prefix):
                        break
                    size -= _cost(k, vals.value())
                    if acc.set_key(k):
                        acc.delete()
                    n += 1
                    if not vals.delete():  # moves to the next entry; False at the end
                        break
            txn.put(_SIZE_KEY, struct.pack("<q", max(size, 0)), db=e.meta)
        return n

    def _clear(self) -> int:
        e = self._env()
        with e.env.begin(write=True) as txn:
            n = txn.stat(e.values)["entries"]
            txn.drop(e.values, delete=False)
            txn.drop(e.access, delete=False)
            txn.drop(e.meta, delete=False)
        return int(n)

    @property
    def size(self) -> int:
        """The logical size now: keys, values and per-entry overhead, as the cap counts them."""
        e = self._env()
        with e.env.begin() as txn:
            return _read_size(txn, e)

    def __len__(self) -> int:
        e = self._env()
        with e.env.begin() as txn:
            return int(txn.stat(e.values)["entries"])

    def disk_usage(self) -> int:
        """Bytes of the store's file on disk (LMDB reuses freed pages; the file never shrinks)."""
        st = os.stat(os.path.join(self.path, "data.mdb"))
        return min(st.st_size, st.st_blocks * 512)


def _read_size(txn: Any, e: _Env) -> int:
    raw = txn.get(_SIZE_KEY, None, e.meta)
    return struct.unpack("<q", raw)[0] if raw else 0
