"""Per-row caching of op results: ``prompt(..., cache=True)``, ``run_python(fn, cache=...)``,
``embed_text``, ``read``.

A row's key is its op's identity (the node's ``op_fingerprint``: function logic, template, model,
parameters, result type; never the cache or concurrency) plus a 128-bit hash of the row's input
values; its value is the row's result in a compact typed encoding (``codec.py``). Rows that fail
are never stored. Backends: ``MemoryCache`` (this process), ``DiskCache`` (LMDB, every process
of a machine; the default), ``RedisCache`` (every process and machine that reaches the server).
"""
from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

from daft_flow.cache.base import Cache, CacheError, CacheStats
from daft_flow.cache.disk import DiskCache, default_cache_dir
from daft_flow.cache.memory import MemoryCache
from daft_flow.cache.redis import RedisCache

if TYPE_CHECKING:
    from daft_flow.plan import flow_pb2 as ir

__all__ = ["Cache", "CacheError", "CacheStats", "MemoryCache", "DiskCache", "RedisCache", "set_cache", "get_cache",
           "clear_cache", "default_cache_dir"]

KEY_VERSION = 1
# SipHash key of the value hashes: a constant, so keys agree across processes and machines (the
# op prefix, not the key, separates ops).
HASH_KEY = b"daft_flow.cache1"

_default: Cache | None = None
_default_set = False
_lock = threading.Lock()


def set_cache(cache: "Cache | None") -> None:
    """Makes ``cache`` the cache of ops built with ``cache=True`` in this process (None: back to
    the default, a ``DiskCache`` under the user's cache directory)."""
    global _default, _default_set
    if cache is not None and not isinstance(cache, Cache):
        raise TypeError(f"set_cache() needs a dflow cache (dflow.MemoryCache(), dflow.DiskCache(path), "
                        f"dflow.RedisCache(url)) or None, got {type(cache).__name__}")
    with _lock:
        _default, _default_set = cache, cache is not None


def get_cache() -> Cache:
    """The cache ``cache=True`` uses in this process: the one given to ``dflow.set_cache``, else a
    ``DiskCache`` at ``$DFLOW_CACHE_DIR`` or the user's cache directory (10 GB, no TTL)."""
    global _default
    with _lock:
        if _default is None:
            _default = DiskCache()
        return _default


def check_cache_arg(cache: Any, op: str) -> Any:
    """``cache=`` of an op: None/False (no cache), True (the default cache) or a cache object."""
    if cache is None or cache is False:
        return None
    if cache is True or isinstance(cache, Cache):
        return cache
    raise TypeError(f"{op}: cache must be True, False or a dflow cache (dflow.MemoryCache(), dflow.DiskCache(path), "
                    f"dflow.RedisCache(url)), got {type(cache).__name__}")


def op_prefix(plan: "ir.Plan", node: "ir.Node") -> bytes:
    """The 16 bytes every key of ``node``'s rows starts with: its op's identity and the types of
    the values it reads (the plan must be fingerprinted)."""
    if not node.op_fingerprint:
        raise ValueError("op_prefix needs a fingerprinted plan")
    from daft_flow.cache.codec import VERSION as CODEC_VERSION
    from daft_flow.plan.trace import dtype_from_ir

    args = [str(dtype_from_ir(plan.nodes[i].type)) for i in node.inputs]
    data = json.dumps([KEY_VERSION, CODEC_VERSION, node.op_fingerprint, args], separators=(",", ":"))
    return hashlib.blake2b(data.encode(), digest_size=16).digest()


class ReadOnly(Cache):
    """A cache's lookups without its writes (cost estimates: cached rows cost nothing, and the
    placeholder answers an estimate makes up are never stored)."""

    def __init__(self, cache: Cache) -> None:
        super().__init__()
        self.cache = cache

    def __repr__(self) -> str:
        return f"ReadOnly({self.cache!r})"

    def check(self) -> None:
        self.cache.check()

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self.cache.get_many(keys)

    def put_many(self, items: list[tuple[bytes, bytes]], *, wait: bool = False) -> None:
        pass

    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        pass

    def _delete_prefix(self, prefix: bytes) -> int:
        return 0

    def _clear(self) -> int:
        return 0


def resolve(ref: int, objects: list[Any]) -> Cache:
    """The cache of a node's CacheSpec: the plan's object, or the process default for -1."""
    return get_cache() if ref < 0 else objects[ref]


def clear_cache(flow: Any = None) -> int:
    """Removes cached rows and returns how many: with ``flow`` (a Flow, SinkFlow or Multisink),
    the rows of its ops that have ``cache=`` (from their own caches or the default); without, every
    entry of the default cache (``dflow.set_cache``'s, or the default ``DiskCache``)."""
    if flow is None:
        return get_cache().clear()
    if not hasattr(flow, "to_ir"):
        raise TypeError(f"clear_cache() takes a Flow, SinkFlow or Multisink (or nothing), got {type(flow).__name__}")
    from daft_flow.plan.fingerprint import fingerprint_plan

    traced = flow._traced() if hasattr(flow, "_traced") else _trace(flow)
    plan = fingerprint_plan(traced)
    removed = 0
    for node in plan.nodes:
        if node.HasField("cache"):
            removed += resolve(node.cache.cache_ref, traced.objects).delete_prefix(op_prefix(plan, node))
    return removed


def _trace(flow: Any) -> Any:
    from daft_flow.plan.trace import trace

    return trace(flow)
