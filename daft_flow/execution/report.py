"""What a run did: ``dflow.last_run()`` / ``flow.last_run()`` return a ``RunReport``.

A report has a section per op (``report.ops``: wall and busy time, rows in/out/failed, failures by
error type, retries, cache hits, and for LLM ops requests, tokens, cost and the latency
distribution of their requests), a section per flow (``report.flows``: rows, succeeded, failed,
skipped; ``report.accounting`` is the same as plain dicts), the throughput over time, the budget
when the run had ``max_cost_usd``, and ``to_json()`` / ``to_html(path)`` / ``_repr_html_``.

Every count is a plain counter (a histogram is a counter per bucket), so reports of runs, or of
the parts of one run done by several processes, merge by adding them up.

Where the numbers come from: the runtime counts rows and time per stage (``_core.Run.stats()``,
atomics updated once per batch); the consumer counts each finished batch's rows and failures per
flow; LLM ops record requests and tokens (``OpUsage``) and each request's latency. Ops add other
counts through ``OpCounters`` (``retries``, ``cache_hits``): a runner with a ``counters``
attribute gets its op's counters when the run is built.
"""
from __future__ import annotations

import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BUCKETS_PER_DOUBLING = 4  # latency histogram resolution: buckets 19% apart
_BASE_S = 1e-3


class LatencyHistogram:
    """Request latencies in log-spaced buckets (bucket ``i`` holds [1 ms * 2**(i/4), 1 ms *
    2**((i+1)/4))), with count, sum, min and max. Mergeable: counts add up."""

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.sum_s = 0.0
        self.min_s = math.inf
        self.max_s = 0.0

    def record(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        i = math.floor(BUCKETS_PER_DOUBLING * math.log2(max(seconds, 1e-9) / _BASE_S))
        self.buckets[i] += 1
        self.count += 1
        self.sum_s += seconds
        self.min_s = min(self.min_s, seconds)
        self.max_s = max(self.max_s, seconds)

    def merge(self, other: "LatencyHistogram") -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.sum_s += other.sum_s
        self.min_s = min(self.min_s, other.min_s)
        self.max_s = max(self.max_s, other.max_s)

    @staticmethod
    def bounds(i: int) -> tuple[float, float]:
        return _BASE_S * 2 ** (i / BUCKETS_PER_DOUBLING), _BASE_S * 2 ** ((i + 1) / BUCKETS_PER_DOUBLING)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), to within a bucket (the bucket's geometric middle, clamped
        to the observed min and max)."""
        if not self.count:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if seen > rank:
                lo, hi = self.bounds(i)
                return min(self.max_s, max(self.min_s, math.sqrt(lo * hi)))
        return self.max_s

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum_s": self.sum_s, "min_s": self.min_s if self.count else None,
                "max_s": self.max_s if self.count else None, "p50_s": self.quantile(0.5),
                "p90_s": self.quantile(0.9), "p99_s": self.quantile(0.99),
                "buckets_per_doubling": BUCKETS_PER_DOUBLING,
                "buckets": {str(i): n for i, n in sorted(self.buckets.items())}}


class OpCounters:
    """Counts an op's runner adds while the run goes on (any thread): retries, cache hits and
    misses, bytes read from and written to the op's cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_bytes_read = 0
        self.cache_bytes_written = 0

    def add(self, *, retries: int = 0, cache_hits: int = 0, cache_misses: int = 0, cache_bytes_read: int = 0,
            cache_bytes_written: int = 0) -> None:
        with self._lock:
            self.retries += retries
            self.cache_hits += cache_hits
            self.cache_misses += cache_misses
            self.cache_bytes_read += cache_bytes_read
            self.cache_bytes_written += cache_bytes_written


@dataclass
class OpReport:
    """One op (one pipeline stage) of a run."""

    key: str                 # how the report names it: the field, or "field#node" when two ops share a name
    op: str                  # "run_python(parse)", "prompt", "chunk_text", "read", ...
    field: str
    flow: str
    node: int
    start_s: float | None = None  # when its first batch started, seconds after the run started
    wall_s: float = 0.0      # from its first batch's start to its last batch's end
    busy_s: float = 0.0      # time working on batches, summed over its workers
    batches: int = 0
    rows_in: int = 0
    rows_out: int = 0
    rows_failed: int = 0
    failures_by_type: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    cache_hits: int = 0      # rows answered by the op's cache (cache=, or a checkpoint's journal)
    cache_misses: int = 0    # rows looked up and computed
    cache_bytes_read: int = 0
    cache_bytes_written: int = 0
    # LLM ops
    model: str | None = None
    requests: int = 0        # HTTP requests, retries included
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency: LatencyHistogram | None = None

    @property
    def is_llm(self) -> bool:
        return self.model is not None

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["latency"] = self.latency.as_dict() if self.latency is not None else None
        return d


@dataclass
class FlowReport:
    """Rows of one flow (one level of the plan): ``rows == succeeded + failed + filtered``;
    ``skipped`` rows (not run because a parent row failed) are among the failed, and so are
    ``budget_exceeded`` rows (not run because the run's budget was spent) and ``dead_lettered``
    rows (failed, and written to the flow's dead-letter sink). ``filtered`` rows were dropped by a
    ``filter()`` (or are children of such rows): not failures, no output. ``retries``: attempts
    its policy's ``retry`` added (a row retried twice counts 2; each row is counted once in
    ``rows``, with its last attempt's outcome)."""

    flow: str
    level: int
    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    filtered: int = 0
    budget_exceeded: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ThroughputSeries:
    """Cumulative counts sampled while the run went on: ``t`` (seconds since start),
    ``inputs_done`` (root rows finished), per op key its rows out (counted when a batch leaves
    the op), and per LLM op its requests answered (counted as each answer arrives)."""

    t: list[float] = field(default_factory=list)
    inputs_done: list[int] = field(default_factory=list)
    ops: dict[str, list[int]] = field(default_factory=dict)
    requests: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "inputs_done": self.inputs_done, "ops": self.ops, "requests": self.requests}


class RunReport:
    """What one run did; see the module docstring."""

    def __init__(self, *, flow: str, status: str, started_at: float, wall_s: float, inputs: int,
                 ops: dict[str, OpReport], flows: dict[str, FlowReport], throughput: ThroughputSeries,
                 source: dict[str, Any], memory: dict[str, int], budget: dict[str, Any] | None = None,
                 usage: Any = None, error: str | None = None, plan_fingerprint: str | None = None) -> None:
        self.flow = flow
        self.status = status          # "completed", "stopped" (a stream left early) or "error"
        self.started_at = started_at  # Unix time
        self.wall_s = wall_s
        self.inputs = inputs          # root rows the run finished
        self.ops = ops
        self.flows = flows
        self.throughput = throughput
        self.source = source          # time pulling inputs and waiting for the memory budget
        self.memory = memory          # the budget and its peak
        self.budget = budget          # max_cost_usd, spent_usd, requests granted/refused; None without one
        self.usage = usage            # the run's llm.usage.UsageReport (None without LLM ops)
        self.error = error
        self.plan_fingerprint = plan_fingerprint

    # -- totals ------------------------------------------------------------------------------------
    @property
    def cost_usd(self) -> float | None:
        """The LLM cost of the run (None when some model has no price)."""
        costs = [op.cost_usd for op in self.ops.values() if op.is_llm]
        if any(c is None for c in costs):
            return None
        return sum(c for c in costs if c is not None)

    @property
    def accounting(self) -> dict[str, dict[str, int]]:
        """Per flow: ``{"rows", "succeeded", "failed", "dead_lettered", "skipped", "filtered"}`` with
        ``rows == succeeded + failed + filtered``."""
        return {name: {"rows": f.rows, "succeeded": f.succeeded, "failed": f.failed,
                       "dead_lettered": f.dead_lettered, "skipped": f.skipped, "filtered": f.filtered}
                for name, f in self.flows.items()}

    def total(self, name: str) -> Any:
        """One counter summed over the ops (``report.total("input_tokens")``)."""
        return sum(getattr(op, name) or 0 for op in self.ops.values())

    # -- output --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow, "status": self.status, "started_at": self.started_at, "wall_s": self.wall_s,
            "inputs": self.inputs, "cost_usd": self.cost_usd, "error": self.error,
            "plan_fingerprint": self.plan_fingerprint,
            "ops": {k: op.as_dict() for k, op in self.ops.items()},
            "flows": {k: f.as_dict() for k, f in self.flows.items()},
            "throughput": self.throughput.as_dict(), "source": self.source, "memory": self.memory,
            "budget": self.budget,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (``json.loads`` gives ``to_dict()``)."""
        return json.dumps(self.to_dict(), indent=indent, default=_json_default, allow_nan=False)

    def to_html(self, path: "str | Path") -> Path:
        """Writes one self-contained HTML file (tables and inline SVG plots, nothing fetched from
        the network) and returns its path."""
        from daft_flow.execution.report_html import render_page

        path = Path(path)
        path.write_text(render_page(self), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        from daft_flow.execution.report_html import render_fragment

        return render_fragment(self)

    def summary(self) -> str:
        """A plain-text table of the ops."""
        cost = self.cost_usd
        head = (f"run of flow {self.flow!r}: {self.status}, {self.inputs:,} inputs in {self.wall_s:.2f} s"
                + (f", ${cost:.6f}" if cost else ""))
        lines = [head, f"  {'op':<28} {'flow':<12} {'in':>9} {'out':>9} {'failed':>7} {'busy s':>8} {'wall s':>8}"]
        for op in self.ops.values():
            lines.append(f"  {op.key[:28]:<28} {op.flow[:12]:<12} {op.rows_in:>9,} {op.rows_out:>9,} "
                         f"{op.rows_failed:>7,} {op.busy_s:>8.3f} {op.wall_s:>8.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RunReport(\n{self.summary()}\n)"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_last: RunReport | None = None


def set_last(report: RunReport) -> None:
    global _last
    _last = report


def last_run() -> RunReport | None:
    """The report of the most recent run in this process (any flow, sink or Multisink)."""
    return _last


class RunEnding:
    """How a run ended, for its report: wraps the loop that hands out its batches.

    ``completed`` when the loop ran out, ``error`` (with ``error``) when it raised, and ``stopped``
    when the caller left early (a generator closed: ``GeneratorExit`` is not a failure)."""

    def __init__(self) -> None:
        self.status, self.error = "stopped", None

    def __enter__(self) -> "RunEnding":
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        if kind is None:
            self.status = "completed"
        elif not issubclass(kind, GeneratorExit):
            self.status, self.error = "error", error
        return False
