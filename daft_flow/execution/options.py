"""Execution options: defaults, and parsing of user-supplied values."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from daft_flow.io import limits
from daft_flow.io.limits import DEFAULT_MAX_BYTES, Timeout
from daft_flow.units import parse_bytes

@dataclass(frozen=True)
class ExecutionOptions:
    """How a run executes. Set per call (``flow.collect_batch(xs, memory_budget="1GB")``) or for
    the process with ``dflow.set_options(...)``."""

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

    def with_overrides(self, **kwargs: Any) -> "ExecutionOptions":
        unknown = set(kwargs) - set(self.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown execution option(s): {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(self.__dataclass_fields__)}")
        if "memory_budget" in kwargs:
            kwargs["memory_budget"] = parse_bytes(kwargs["memory_budget"])
        if "batch_bytes" in kwargs:
            kwargs["batch_bytes"] = parse_bytes(kwargs["batch_bytes"], "batch_bytes")
        if "read_timeout" in kwargs:
            kwargs["read_timeout"] = Timeout.of(kwargs["read_timeout"], "read_timeout")
        if "read_max_bytes" in kwargs:
            kwargs["read_max_bytes"] = parse_bytes(kwargs["read_max_bytes"], "read_max_bytes")
        if "progress" in kwargs:
            from daft_flow.execution.progress import check_progress_option

            kwargs["progress"] = check_progress_option(kwargs["progress"])
        if "max_cost_usd" in kwargs:
            from daft_flow.llm.budget import check_max_cost

            kwargs["max_cost_usd"] = check_max_cost(kwargs["max_cost_usd"])
        for k in ("batch_rows", "first_batch_rows", "async_concurrency"):
            if k in kwargs and (not isinstance(kwargs[k], int) or kwargs[k] <= 0):
                raise ValueError(f"{k} must be a positive int, got {kwargs[k]!r}")
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
