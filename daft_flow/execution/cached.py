"""Ops with ``cache=``: a runner around the op's own runner that answers rows from the cache and
hands only the misses on.

Per batch: the keys of the live rows are hashed natively (``_core.hash_keys``: the op's prefix +
SipHash-128 of the row's values, GIL released), looked up in one round trip, and the hits marked
as done in the mask the op's runner gets, so it computes (and an LLM op sends) only the misses.
Results of misses that did not fail are stored (failures never are); runners that report each
answer as it arrives (LLM and async ops: ``reports_answers``) store it right then, so a crash
mid-batch loses only the answers still on the wire. A cache that fails mid-run is logged and
bypassed: rows are computed, never lost.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from daft_flow import _core
from daft_flow.cache import HASH_KEY
from daft_flow.cache.base import Cache, CacheError
from daft_flow.cache.codec import decode_column, encode_column, encode_value
from daft_flow.execution.python_runners import Args, _alive, _arg_values
from daft_flow.convert import values_to_arrow
from daft_flow.types import DataType

_log = logging.getLogger("daft_flow")


class CachedRunner:
    """``inner`` (a batch runner) with per-row results in ``cache`` under keys starting with
    ``prefix``. ``inner`` is what the run monitor inspects (LLM usage, latency, budget)."""

    def __init__(self, inner: Any, cache: Cache, prefix: bytes, out: DataType, name: str) -> None:
        self.inner, self.cache, self.prefix, self.out, self.name = inner, cache, prefix, out, name
        self.counters: Any = None  # the op's report.OpCounters, set by the run monitor
        self.reports_answers = bool(getattr(inner, "reports_answers", False))
        self._warned = False
        self._warn_lock = threading.Lock()

    def _warn(self, error: BaseException, what: str) -> None:
        with self._warn_lock:
            if self._warned:
                return
            self._warned = True
        _log.warning("%s: %s %s failed (%s: %s); its rows are computed without it for the rest of the run",
                     self.name, self.cache.describe(), what, type(error).__name__, error)

    def _count(self, **counts: int) -> None:
        if self.counters is not None:
            self.counters.add(**counts)

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        keys = _core.hash_keys(self.prefix, HASH_KEY, args, mask if any(mask) else None)
        alive = [r for r in range(n) if keys[r] is not None]
        found: list[bytes | None] = [None] * len(alive)
        if alive and not self._warned:
            try:
                found = self.cache.get_many([keys[r] for r in alive])
            except (CacheError, OSError) as e:
                self._warn(e, "lookup")
        hits = {r: v for r, v in zip(alive, found) if v is not None}
        misses = [r for r in alive if r not in hits]
        self._count(cache_hits=len(hits), cache_misses=len(misses),
                    cache_bytes_read=sum(len(v) for v in hits.values()))
        usage = getattr(self.inner, "usage", None)
        if hits and usage is not None:  # an LLM op: answered from the cache, not by a request ($0)
            usage.add(cache_hits=len(hits))
        if not misses:
            return decode_column([hits.get(r) for r in range(n)], self.out), []
        todo = bytearray(mask)
        for r in hits:
            todo[r] = 1
        stored: set[int] = set()
        if self.reports_answers:
            out, failures = self.inner(args, bytes(todo), n, on_answer=self._journal(keys, stored))
        else:
            out, failures = self.inner(args, bytes(todo), n)
        failed = {r for r, _ in failures}
        ok = [r for r in misses if r not in failed]
        encoded = encode_column(out, self.out, ok) if ok else []
        self._put([(keys[r], e) for r, e in zip(ok, encoded) if r not in stored])
        if not hits:
            return out, failures
        values: list[bytes | None] = [None] * n
        for r, v in hits.items():
            values[r] = v
        for r, e in zip(ok, encoded):
            values[r] = e
        return decode_column(values, self.out), failures

    def _journal(self, keys: list[Any], stored: set[int]) -> Callable[[int, Any], None]:
        """Stores one answer the moment it arrives (called on the event loop thread)."""
        def on_answer(row: int, value: Any) -> None:
            encoded = encode_value(value, self.out)
            if encoded is not None and keys[row] is not None:
                stored.add(row)
                self._put([(keys[row], encoded)])
        return on_answer

    def _put(self, items: list[tuple[bytes, bytes]]) -> None:
        if not items or self._warned:
            return
        try:
            self.cache.put_many(items)
        except (CacheError, OSError) as e:
            self._warn(e, "write")
            return
        self._count(cache_bytes_written=sum(len(v) for _, v in items))

    def cancel(self) -> None:
        """The run stopped early: the op's runner stops; stored answers stay stored."""
        cancel = getattr(self.inner, "cancel", None)
        if cancel is not None:
            cancel()


class RowRunner:
    """A row-wise function run by a batch operator (``run_python(fn, cache=...)``): the native row
    loop cannot skip rows the cache answered, this can."""

    def __init__(self, fn: Callable[..., Any], name: str, arg_types: list[DataType], out: DataType) -> None:
        self.fn, self.name, self.arg_types, self.out = fn, name, arg_types, out

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        failures: list[tuple[int, Any]] = []
        values = _arg_values(args, self.arg_types, failures)
        results: list[Any] = [None] * n
        fn = self.fn
        for r in _alive(mask, n, failures):
            try:
                results[r] = fn(*[v[r] for v in values])
            except Exception as e:  # the row fails with the function's own exception
                failures.append((r, e))
        array, problems = values_to_arrow(results, self.out)
        failures.extend(problems)  # (the operator words them as the native row loop does)
        return array, failures
