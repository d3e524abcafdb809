"""Errors raised by daft_flow.

Every input row ends in exactly one place: an output row (or its children), or a failure that names
the row id, the op and the field. User exceptions keep their type and traceback; daft_flow adds notes
(PEP 678) with the row id, op and field instead of wrapping them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FlowError", "RowFailure", "FlowRunError", "ChildFlowError", "BatchError", "BudgetExceeded", "NOT_DONE"]


class FlowError(Exception):
    """Base class for errors raised by the engine itself."""


@dataclass
class RowFailure:
    """One row that did not produce output."""

    input_index: int  # which input of collect_batch/stream it came from
    row_id: str  # stable id (16 hex digits) of the failed row
    flow: str  # name of the flow (level) the row belongs to
    op: str  # e.g. "run_python(parse)"
    field: str  # the field the op was computing
    error: BaseException  # the original exception (type, message and traceback preserved)

    def __str__(self) -> str:
        from daft_flow.user_errors import describe  # the error's own __str__ may raise

        return (f"input {self.input_index}, row {self.row_id}, flow {self.flow!r}, op {self.op}, "
                f"field {self.field!r}: {describe(self.error)}")


class FlowRunError(FlowError, ExceptionGroup):  # type: ignore[misc]
    """Raised by ``collect_batch`` when some inputs failed.

    ``results`` holds what every input produced (``None`` for inputs that failed), ``failures`` one
    :class:`RowFailure` per failed row, and ``failed_inputs`` the indices of the inputs that failed.
    It is an ``ExceptionGroup`` of the original exceptions, so ``except* ValueError`` works.
    """

    def __new__(cls, message: str, failures: list[RowFailure], results: list[Any]) -> "FlowRunError":
        self = super().__new__(cls, message, [f.error for f in failures])
        self.failures = failures
        self.results = results
        self.failed_inputs = sorted({f.input_index for f in failures})
        return self

    def __init__(self, message: str, failures: list[RowFailure], results: list[Any]) -> None:
        super().__init__(message, [f.error for f in failures])

    def derive(self, excs):  # type: ignore[no-untyped-def]
        return ExceptionGroup(self.message, excs)


class ChildFlowError(FlowError):
    """A child flow run failed and its policy propagates the failure to the parent row.

    Reserved for per-flow failure policies (the seed's "fail the parent"), which are not
    configurable yet: today a failed child row fails alone and its parent and siblings go on."""


class BatchError(FlowError):
    """A batch function failed: it affects ``batch_size`` rows; ``index`` is the offending element if known."""

    def __init__(self, message: str, batch_size: int, index: int | None = None) -> None:
        super().__init__(message)
        self.batch_size = batch_size
        self.index = index


class BudgetExceeded(FlowError):
    """The run's ``max_cost_usd`` was reached: this row's request was not sent.

    The row did not fail because of its data: it was not run. Checkpoints record such rows as not
    done (see ``NOT_DONE``), so a resumed run with a new budget runs them.
    """

    def __init__(self, message: str, max_cost_usd: float = 0.0, spent_usd: float = 0.0) -> None:
        super().__init__(message)
        self.max_cost_usd = max_cost_usd
        self.spent_usd = spent_usd


# Errors of rows that were not run (rather than run and failed): a checkpoint does not record
# such a row as finished, a resumed run runs it again.
NOT_DONE: tuple[type[BaseException], ...] = (BudgetExceeded,)
