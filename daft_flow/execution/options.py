"""Execution options: defaults, and parsing of user-supplied values."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import Any

from daft_flow.io import limits
from daft_flow.io.limits import DEFAULT_MAX_BYTES, Timeout
from daft_flow.units import parse_bytes

# Rows are counted in 32-bit offsets in places (Arrow lists of a batch's children): larger batch
# sizes are held at this.
MAX_ROWS = 2**31 - 1
# Each batch an async op works on at once is a thread waiting on the event loop.
MAX_ASYNC_CONCURRENCY = 256


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be a positive int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ExecutionOptions:
    """How a run executes. Set per call (``flow.collect_batch(xs, memory_budget="1GB")``) or for
    the process with ``dflow.set_options(...)``. Values are checked when set: a wrong type or a
    non-positive size is a ``TypeError``/``ValueError`` naming the option."""

    memory_budget: int = 256 * 2**20  # bytes of batches in flight; the source waits beyond it
    batch_rows: int = 65536  # most root rows per batch
    batch_bytes: int = 4 * 2**20  # a batch closes early once its input values reach this size
    first_batch_rows: int = 64  # small first batches so stream() shows rows early; doubles up to batch_rows
    async_concurrency: int = 4  # batches an async op works on at once
    # Live progress: None shows it on a terminal (stderr) or in a notebook only; True shows it on
    # stderr whatever it is; False never; a rich Console: on that console (see execution/progress.py).
    progress: Any = None
    max_cost_usd: float | None = None  # a hard budget for the run's LLM requests (see llm/budget.py)
    read_timeout: Timeout = Timeout()  # read()'s limits unless the op sets its own (see daft_flow.io.limits)
    read_max_bytes: int = DEFAULT_MAX_BYTES  # the largest document read() reads

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "memory_budget", parse_bytes(self.memory_budget))
        set_(self, "batch_bytes", parse_bytes(self.batch_bytes, "batch_bytes"))
        set_(self, "batch_rows", min(_positive_int(self.batch_rows, "batch_rows"), MAX_ROWS))
        set_(self, "first_batch_rows", min(_positive_int(self.first_batch_rows, "first_batch_rows"), MAX_ROWS))
        concurrency = _positive_int(self.async_concurrency, "async_concurrency")
        if concurrency > MAX_ASYNC_CONCURRENCY:
            raise ValueError(f"async_concurrency must be at most {MAX_ASYNC_CONCURRENCY} (each batch an async op "
                             f"works on at once is a thread; max_in_flight bounds requests), got {concurrency}")
        set_(self, "async_concurrency", concurrency)
        from daft_flow.execution.progress import check_progress_option
        from daft_flow.llm.budget import check_max_cost

        set_(self, "progress", check_progress_option(self.progress))
        set_(self, "max_cost_usd", check_max_cost(self.max_cost_usd))
        set_(self, "read_timeout", Timeout.of(self.read_timeout, "read_timeout"))
        set_(self, "read_max_bytes", parse_bytes(self.read_max_bytes, "read_max_bytes"))

    def with_overrides(self, **kwargs: Any) -> "ExecutionOptions":
        known = [f.name for f in fields(self)]
        unknown = set(kwargs) - set(known)
        if unknown:
            raise TypeError(f"unknown execution option(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        return replace(self, **kwargs)


_defaults = ExecutionOptions()


def set_options(**kwargs: Any) -> None:
    """Sets process-wide execution defaults (``memory_budget``, ``batch_rows``, ...)."""
    global _defaults
    _defaults = _defaults.with_overrides(**kwargs)
    # Reads that run outside a run (a File opened by a function, from_glob) use the process's
    # read limits too; io keeps its copy (io never imports execution).
    limits.set_process_limits(limits.ReadLimits(_defaults.read_timeout, _defaults.read_max_bytes))


def get_options(**overrides: Any) -> ExecutionOptions:
    return _defaults.with_overrides(**overrides) if overrides else _defaults
