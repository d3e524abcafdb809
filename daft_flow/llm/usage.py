"""Usage accounting per LLM op: requests, tokens, retries, errors, latency and cost."""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from dataclasses import field as dc_field
from typing import Any

# USD per 1M tokens: (input, cached input, output). Extend with ``dflow.set_price``.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.13, 0.0),
}


def set_price(model: str, *, input: float, output: float = 0.0, cached_input: float | None = None) -> None:
    """Sets the price of ``model`` in USD per 1M tokens (cached input defaults to the input price).
    Prices are finite numbers >= 0; ``model`` is the name the ops use."""
    from daft_flow.llm.checks import check_number

    if not isinstance(model, str) or not model:
        raise TypeError(f"set_price() needs a model name (a non-empty str), got {model!r}")
    p_in = check_number(input, f"set_price({model!r}): input", positive=False)
    p_out = check_number(output, f"set_price({model!r}): output", positive=False)
    p_cached = p_in if cached_input is None else check_number(cached_input, f"set_price({model!r}): cached_input",
                                                              positive=False)
    PRICES[model] = (float(p_in), float(p_cached), float(p_out))


def cost_of(model: str, input_tokens: int, cached_tokens: int, output_tokens: int) -> float | None:
    price = PRICES.get(model)
    if price is None:
        return None
    p_in, p_cached, p_out = price
    return ((input_tokens - cached_tokens) * p_in + cached_tokens * p_cached + output_tokens * p_out) / 1e6


@dataclass
class OpUsage:
    """What one op (one field computed by prompt/embed_text) used in a run."""

    op: str = ""
    field: str = ""
    flow: str = ""
    model: str = ""
    rows: int = 0            # rows answered by the provider
    cache_hits: int = 0      # rows answered from a cache (no request, no cost)
    requests: int = 0        # HTTP requests sent, retries included
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    retries: int = 0
    errors: int = 0          # rows that failed after retries
    truncated: int = 0       # answers cut at max_tokens (finish_reason "length")
    max_tokens: int = 0      # the op's max_tokens= (0: the provider's default)
    latency_s: float = 0.0   # summed over successful requests
    cost_usd: float | None = 0.0
    _lock: threading.Lock = dc_field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: Any) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def finish(self) -> None:
        self.cost_usd = cost_of(self.model, self.input_tokens, self.cached_tokens, self.output_tokens)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


# What adds up when parts of a run done elsewhere merge: every number but the settings and the cost.
_COUNTERS = tuple(f.name for f in fields(OpUsage)
                  if f.type in ("int", "float") and f.name not in ("max_tokens",))


class UsageReport:
    """Usage of every LLM op of one run, keyed by output field name (``report["summary"]``)."""

    def __init__(self) -> None:
        self.ops: dict[str, OpUsage] = {}
        self.providers: list[Any] = []  # providers used by the run, released when it ends

    def op(self, key: str, **meta: Any) -> OpUsage:
        if key not in self.ops:
            self.ops[key] = OpUsage(**meta)
        return self.ops[key]

    def merge(self, ops: dict[str, dict[str, Any]]) -> None:
        """Adds the counters of another report's ``as_dict()`` (a part of the run done elsewhere:
        a worker's morsel); costs are computed again by ``finish``."""
        for key, d in ops.items():
            u = self.op(key, op=d["op"], field=d["field"], flow=d["flow"], model=d["model"],
                        max_tokens=d.get("max_tokens", 0))
            u.add(**{k: d[k] for k in _COUNTERS if k in d})

    def finish(self) -> "UsageReport":
        from daft_flow._logging import logger

        for u in self.ops.values():
            u.finish()
            if u.truncated:  # once per op and run, not per row
                cap = f"max_tokens={u.max_tokens}" if u.max_tokens else "the provider's default max_tokens"
                logger.warning("%s computing field %r of flow %r: %d of %d answer(s) were cut at %s "
                               "(finish_reason 'length'); raise max_tokens= or ask for shorter answers",
                               u.op, u.field, u.flow, u.truncated, u.rows, cap)
        return self

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, key: str) -> OpUsage:
        return self.ops[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.ops.values())

    def total(self, name: str) -> Any:
        """Sum of one counter over all ops (``report.total("requests")``)."""
        values = [getattr(u, name) for u in self.ops.values()]
        if name == "cost_usd" and any(v is None for v in values):
            return None
        return sum(values)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {k: u.as_dict() for k, u in self.ops.items()}

    def __repr__(self) -> str:
        if not self.ops:
            return "UsageReport()"
        rows = [f"  {k}: requests={u.requests} in={u.input_tokens} out={u.output_tokens} cached={u.cached_tokens} "
                f"retries={u.retries} errors={u.errors}" + (f" truncated={u.truncated}" if u.truncated else "") +
                (f" cache_hits={u.cache_hits}" if u.cache_hits else "") +
                f" cost={u.cost_usd}" for k, u in self.ops.items()]
        return "UsageReport(\n" + "\n".join(rows) + "\n)"


_last: UsageReport | None = None


def set_last(report: UsageReport) -> None:
    global _last
    _last = report


def last_usage() -> UsageReport | None:
    """The usage report of the most recent run in this process (empty when that run had no LLM
    ops; None before the first run)."""
    return _last


class CallUsage:
    """One LLM call's view of its op's ``OpUsage``: every count goes to the op as before, and this
    call's own tokens are kept (what the call cost, for the run's budget) along with the latency of
    each request (for the run report's latency distribution). Providers see an ``OpUsage``-like
    object: ``add(**counts)`` and the op's attributes."""

    def __init__(self, op: OpUsage, latencies: Any = None) -> None:
        self.op_usage = op
        self.latencies = latencies  # a report.LatencyHistogram, or None
        self.input_tokens = self.output_tokens = self.cached_tokens = 0

    def add(self, **counts: Any) -> None:
        self.op_usage.add(**counts)
        self.input_tokens += counts.get("input_tokens", 0)
        self.output_tokens += counts.get("output_tokens", 0)
        self.cached_tokens += counts.get("cached_tokens", 0)
        if self.latencies is not None and "latency_s" in counts:
            self.latencies.record(counts["latency_s"])

    def cost(self) -> float:
        """What this call cost at the op model's prices (0 when the model has no price)."""
        return cost_of(self.op_usage.model, self.input_tokens, self.cached_tokens, self.output_tokens) or 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.op_usage, name)
