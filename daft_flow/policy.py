"""Failure policies: what happens to a flow's rows that fail (``flow.with_policy(...)``).

A policy belongs to a flow's level (its rows) and says:

- ``failure="isolate"`` (the default): a failed row fails alone; its parent and siblings go on.
- ``failure="fail_parent"``: a failed row fails its parent row with a ``dflow.ChildFlowError``
  carrying the children's failures, and the parent's policy applies (its retries recompute its
  whole subtree, its dead-letter sink records it), up the tree. None of the failed parent's other
  descendants reach any sink.
- ``retry=dflow.Retry(...)``: a failed row (with its subtree) is run again after an exponential
  backoff with jitter, up to ``max_attempts`` attempts, for errors that are instances of ``on``.
  A row waiting for its retry holds no memory budget and blocks nothing; it is reported as
  failed only when its attempts are spent.
- ``dead_letter=sink``: each row that finally fails is also written to ``sink`` (any daft_flow
  sink) as one record naming the flow, op, field, row, its root input (enough to replay it), the
  error and the attempts (``daft_flow/execution/dead_letters.py``).
- ``timeout=seconds``: the default time limit of each call the flow's ops make to user code or a
  model (``run_python``, ``prompt``, ``embed_text``); an op's own ``timeout=`` wins.

A ``fail_parent`` flow has no retries or dead letters of its own: its failures are its parent's,
retried by recomputing the parent's subtree and recorded where the failure stops.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daft_flow.flow import Flow

ISOLATE, FAIL_PARENT = "isolate", "fail_parent"
FAILURES = (ISOLATE, FAIL_PARENT)


def _number(value: Any, name: str, *, minimum: float, inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (value < minimum if inclusive else value <= minimum):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"dflow.Retry: {name} must be a finite number {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Retry:
    """Retry a failed row (or, under ``fail_parent`` children, its subtree) up to ``max_attempts``
    attempts in all, waiting ``initial_delay * multiplier ** (attempt - 1)`` seconds (at most
    ``max_delay``) before attempt ``attempt + 1``; with ``jitter`` the wait is drawn between half
    and all of that. Only errors that are instances of ``on`` are retried."""

    max_attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"dflow.Retry: max_attempts must be an int >= 1 (1: no retry), got {self.max_attempts!r}")
        _number(self.initial_delay, "initial_delay", minimum=0)
        _number(self.max_delay, "max_delay", minimum=0)
        _number(self.multiplier, "multiplier", minimum=1)
        if not isinstance(self.jitter, bool):
            raise TypeError(f"dflow.Retry: jitter must be True or False, got {self.jitter!r}")
        on = self.on
        if isinstance(on, type):
            on = (on,)
        if not isinstance(on, (tuple, list)) or not on or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in on):
            raise TypeError(f"dflow.Retry: on must be an exception class or a non-empty tuple of them, got {self.on!r}")
        object.__setattr__(self, "on", tuple(on))

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait before the next attempt after ``failed_attempts`` (>= 1) failed."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failed_attempts - 1))
        return random.uniform(base / 2, base) if self.jitter else base

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt."""
        return isinstance(error, self.on)


@dataclass(frozen=True)
class Policy:
    """A flow's failure policy (see the module docstring); made by ``Flow.with_policy``."""

    failure: str = ISOLATE
    retry: Retry | None = None
    dead_letter: Any = None  # a daft_flow Sink
    timeout: float | None = None

    @property
    def is_default(self) -> bool:
        return self == Policy()


def check_timeout(value: Any, where: str) -> float | None:
    """A ``timeout=`` (seconds, > 0) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: timeout must be a positive number of seconds (or None), got {value!r}")
    return float(value)


def make_policy(flow: "Flow", failure: str = ISOLATE, retry: Any = None, dead_letter: Any = None,
                timeout: Any = None) -> Policy:
    """The policy ``flow.with_policy(...)`` asks for, or a clear error naming the flow."""
    from daft_flow.io.sinks import Sink

    where = f"with_policy() on flow {flow.name!r}"
    if not isinstance(failure, str) or failure not in FAILURES:
        raise ValueError(f"{where}: failure must be one of {', '.join(map(repr, FAILURES))}, got {failure!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"{where}: retry must be a dflow.Retry(...) (or None), got {type(retry).__name__}")
    if dead_letter is not None:
        if not isinstance(dead_letter, Sink):
            raise TypeError(f"{where}: dead_letter must be a sink (dflow.JSONFileSink, dflow.ParquetSink, "
                            f"dflow.S3FileSink, ...), got {type(dead_letter).__name__}")
        from daft_flow.execution.dead_letters import COLUMNS

        dead_letter.check_columns(COLUMNS)
    timeout = check_timeout(timeout, where)
    if failure == FAIL_PARENT:
        if flow._level.parent is None:
            raise ValueError(f"{where}: failure='fail_parent' needs a parent flow, but {flow.name!r} is a root flow "
                             "(its rows are the inputs); use 'isolate'")
        if retry is not None:
            raise ValueError(f"{where}: a fail_parent flow's failures fail its parent row, and the parent's retry "
                             "recomputes the whole subtree: set retry= on the parent flow instead")
        if dead_letter is not None:
            raise ValueError(f"{where}: a fail_parent flow's failed rows fail their parent row, which is what gets "
                             "dead-lettered: set dead_letter= on the parent flow (or the flow where failures stop)")
    return Policy(failure, retry, dead_letter, timeout)


def with_policy(flow: "Flow", failure: str = ISOLATE, retry: Any = None, dead_letter: Any = None,
                timeout: Any = None) -> "Flow":
    policy = make_policy(flow, failure, retry, dead_letter, timeout)
    level = flow._level.with_view_op("policy", policy)
    return flow._make(level, flow._fields, flow._current)


def level_policy(level: Any) -> Policy | None:
    """The policy a view of a level carries (its latest ``with_policy``), or None."""
    policy = None
    for kind, arg in level.view_ops:
        if kind == "policy":
            policy = arg
    return policy
