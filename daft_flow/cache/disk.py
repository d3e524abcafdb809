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

Layout: database ``v`` maps key -> 12-byte header (last access in minutes, expiry) + value; ``m``
holds the size of the entries as the store lays them out (``entry_cost``: whole pages for large
values, leaf nodes with B-tree slack for small ones). Lookups stay read-only: a hit whose access
time is older than 10 minutes has it rewritten by the writer thread (so LRU order is exact to
within 10 minutes). When the size passes ``max_size`` the writer evicts the least recently used
entries down to 90% of it. LMDB reuses the pages evictions free, but its file never shrinks and
holds copies of pages a write replaces until the write commits: measured on the file, see
``docs/architecture.md``.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any

from daft_flow.cache.base import Cache, CacheError, check_ttl
from daft_flow.units import parse_bytes

# Eviction starts when the pages in use pass EVICT_AT of max_size and goes down by a tenth: the
# rest of the bound is room for the pages a transaction copies and LMDB's list of free pages.
EVICT_AT, EVICT_TO = 0.8, 0.9
_TXN_ITEMS = 2000  # writes and evictions per transaction
TOUCH_AFTER_S = 600  # an entry's access time is rewritten when a hit finds it older than this
_HEADER = struct.Struct("<Id")  # last access (Unix minutes), expiry (Unix time, 0: never)
_SIZE_KEY = b"size"
_TOUCH, _DELETE = None, False  # writer items (key, _TOUCH | _DELETE) besides (key, value)
# LMDB stores a value up to about this size in its B-tree leaf, larger ones on pages of their own.
_INLINE_MAX = 1950
_PAGE = 4096


def entry_cost(key: bytes, stored: int) -> int:
    """The bytes an entry (``stored``: its value with the header) takes in the store, as the cap
    counts them: a value on overflow pages takes whole pages; one in a leaf takes its node, with
    the slack of a B-tree's half-filled pages (about 1.5x)."""
    if stored > _INLINE_MAX:
        return -(-(stored + 16) // _PAGE) * _PAGE + len(key) + 16
    return (len(key) + stored + 16) * 3 // 2


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
        self.env = lmdb.open(path, map_size=map_size, subdir=True, max_dbs=2, metasync=False, sync=sync,
                             readahead=False, max_readers=512, lock=True)
        self.values = self.env.open_db(b"v")
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


class DiskCache(Cache):
    """Results in an LMDB store under ``path`` (default: the user's cache directory), shared by
    every process on this machine. ``max_size`` (bytes or ``"10GB"``) caps the entries as the store
    lays them out (``entry_cost``), evicting the least recently used down to 90% of it; ``ttl``
    (seconds or a ``timedelta``) makes entries expire. Writes are stored by a background thread;
    lookups never wait for them."""

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
        # The map bounds the file for good: it can never grow past max_size + 10%.
        map_size = max(int(self.max_size * 1.1), 1 << 20)
        try:
            os.makedirs(self.path, exist_ok=True)
            opened = _open_env(self.path, map_size, getattr(self, "_durable", True))
        except Exception as e:  # lmdb.Error, PermissionError, ...
            raise CacheError(f"DiskCache at {self.path!r} cannot be opened: {type(e).__name__}: {e}") from e
        self._h_env = (os.getpid(), opened)
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
        with e.env.begin(db=e.values, buffers=False) as txn:
            get = txn.get
            stored = [get(k) for k in keys]
        now = time.time()
        stale = int(now // 60) - TOUCH_AFTER_S // 60
        unpack = _HEADER.unpack_from
        out: list[bytes | None] = []
        expired, touch = [], []
        for k, v in zip(keys, stored):
            if v is None:
                out.append(None)
                continue
            atime, expires = unpack(v)
            if expires and expires <= now:
                expired.append((k, _DELETE))
                out.append(None)
                continue
            if atime < stale:
                touch.append((k, _TOUCH))
            out.append(v[_HEADER.size:])
        if expired:
            self._count(expired=len(expired))
        if expired or touch:
            self._get_writer().put(expired + touch)
        return out

    # -- writes (writer thread) -------------------------------------------------------------------
    def _write(self, items: list[tuple[bytes, Any]]) -> None:
        import lmdb

        e = self._env()
        for group in self._groups(items):
            try:
                size = self._apply(e, group)
            except lmdb.MapFullError:  # the file reached its hard bound: make room, then try once more
                try:
                    self._evict(e, _read_size_now(e) // 2)
                    size = self._apply(e, group)
                except lmdb.MapFullError:
                    self._count(dropped=len(group))  # a cache may forget; it must not outgrow its bound
                    continue
            in_use = self._in_use(e)
            if in_use > self.max_size * EVICT_AT:
                # Entries' sizes are estimates of their pages: scale the target by what the pages are.
                self._evict(e, int(size * EVICT_TO * self.max_size / in_use))

    def _groups(self, items: list[tuple[bytes, Any]]) -> Any:
        """Transactions of at most ``_TXN_ITEMS`` items and ~max_size/20 bytes: a transaction copies
        the pages it changes, and those copies must fit beside the entries under the bound."""
        cap = max(self.max_size // 20, _PAGE)
        group: list[tuple[bytes, Any]] = []
        nbytes = 0
        for item in items:
            cost = entry_cost(item[0], len(item[1]) if isinstance(item[1], bytes) else 0) + _PAGE // 4
            if group and (len(group) >= _TXN_ITEMS or nbytes + cost > cap):
                yield group
                group, nbytes = [], 0
            group.append(item)
            nbytes += cost
        if group:
            yield group

    @staticmethod
    def _in_use(e: _Env) -> int:
        """Bytes of the pages the store's trees use now (free pages excluded)."""
        with e.env.begin() as txn:
            stats = [txn.stat(e.values), txn.stat(e.meta), e.env.stat()]
        return sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in stats) * _PAGE

    def _apply(self, e: _Env, items: list[tuple[bytes, Any]]) -> int:
        now = time.time()
        minute = int(now // 60)
        header = _HEADER.pack(minute, now + self.ttl if self.ttl else 0.0)
        limit = self.max_size // 20  # a value this large (a transaction's share) is not stored
        with e.env.begin(write=True, db=e.values) as txn:
            size = _read_size(txn, e)
            cur = txn.cursor()
            for k, v in items:
                old = cur.get(k)
                if v is _TOUCH:  # a new access time, the same expiry and value
                    if old is not None:
                        cur.put(k, _HEADER.pack(minute, _HEADER.unpack_from(old)[1]) + old[_HEADER.size:])
                    continue
                if old is not None:
                    size -= entry_cost(k, len(old))
                    if v is _DELETE:
                        cur.delete()
                        continue
                elif v is _DELETE:
                    continue
                cost = entry_cost(k, len(v) + _HEADER.size)
                if cost > limit:
                    if old is not None:
                        cur.delete()
                    continue
                cur.put(k, header + v)
                size += cost
            txn.put(_SIZE_KEY, struct.pack("<q", max(size, 0)), db=e.meta)
        return size

    def _evict(self, e: _Env, target: int) -> None:
        """Removes expired entries, then the least recently used, until the size is at most
        ``target``; in transactions of ``_TXN_ITEMS`` deletions, so none copies most of the tree."""
        import numpy as np

        with e.env.begin(db=e.values, buffers=True) as txn:
            size = _read_size(txn, e)
            keys: list[bytes] = []
            atimes: list[int] = []
            expiries: list[float] = []
            costs: list[int] = []
            for k, v in txn.cursor():
                a, x = _HEADER.unpack_from(v)
                keys.append(bytes(k))
                atimes.append(a)
                expiries.append(x)
                costs.append(entry_cost(k, len(v)))
        exp = np.asarray(expiries, dtype=np.float64)
        is_expired = (exp > 0) & (exp <= time.time())
        doomed = np.flatnonzero(is_expired).tolist()
        n_expired = len(doomed)
        size -= sum(costs[i] for i in doomed)
        for i in np.argsort(np.asarray(atimes, dtype=np.int64), kind="stable").tolist():
            if size <= target:
                break
            if not is_expired[i]:
                doomed.append(i)
                size -= costs[i]
        for start in range(0, len(doomed), _TXN_ITEMS):
            with e.env.begin(write=True, db=e.values) as txn:
                current = _read_size(txn, e)
                cur = txn.cursor()
                for i in doomed[start:start + _TXN_ITEMS]:
                    v = cur.get(keys[i])
                    if v is not None:  # (another process may have removed it since the scan)
                        current -= entry_cost(keys[i], len(v))
                        cur.delete()
                txn.put(_SIZE_KEY, struct.pack("<q", max(current, 0)), db=e.meta)
        self._count(evictions=len(doomed) - n_expired, expired=n_expired)

    # -- maintenance ------------------------------------------------------------------------------
    def _delete_prefix(self, prefix: bytes) -> int:
        e = self._env()
        n = 0
        with e.env.begin(write=True, db=e.values) as txn:
            size = _read_size(txn, e)
            cur = txn.cursor()
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    size -= entry_cost(cur.key(), len(cur.value()))
                    n += 1
                    if not cur.delete():  # moves to the next entry; False at the end
                        break
            txn.put(_SIZE_KEY, struct.pack("<q", max(size, 0)), db=e.meta)
        return n

    def _clear(self) -> int:
        e = self._env()
        with e.env.begin(write=True) as txn:
            n = txn.stat(e.values)["entries"]
            txn.drop(e.values, delete=False)
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


def _read_size_now(e: _Env) -> int:
    with e.env.begin() as txn:
        return _read_size(txn, e)


def _read_size(txn: Any, e: _Env) -> int:
    raw = txn.get(_SIZE_KEY, None, e.meta)
    return struct.unpack("<q", raw)[0] if raw else 0
