"""Applying failure policies during a run: the Python half of the runtime's policy stage.

The stage runs after every op of the plan but the sinks (``physical.build_run`` puts the sinks
last), once per batch that has failures, and decides for each failed row, deepest levels first:

1. **retry**: its flow retries it (attempts left, the error is one ``Retry.on`` names, it is not
   an input of the wrong type or a row the budget refused) -> the runtime moves it and its
   subtree into a retry batch that comes back after the backoff;
2. else, under ``fail_parent``, it fails its parent row with a ``ChildFlowError`` (one per parent,
   carrying every failed child), which is then decided at the parent's level;
3. else it is final: written to its flow's dead-letter sink if it has one.

A retry of a row whose ancestor is retried too is dropped (the ancestor's retry redoes it); a
retry of a row whose ancestor finally failed becomes final (nothing under a failed row may reach a
sink). Dead letters are written here, before the batch reaches the sinks, through each flow's
``DeadLetterWriter``. Attempts are counted per row id, so a row keeps its count across retry
batches; the results read them back (``RowFailure.attempts``).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from daft_flow.errors import NOT_DONE, ChildFlowError, RowFailure
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import TracedPlan, dtype_from_ir
from daft_flow.policy import FAIL_PARENT, Policy

_log = logging.getLogger("daft_flow")

@dataclass
class _Failure:
    level: int
    row: int
    node: int
    op: str
    field: str
    message: str
    error: BaseException
    own: bool = True  # False: a ChildFlowError this step made
    children: tuple[tuple[int, int], ...] = ()  # its failed children's (level, row), and theirs


class _Attempts:
    __slots__ = ("count", "first", "last")

    def __init__(self, now: float) -> None:
        self.count, self.first, self.last = 0, now, now


def level_policies(traced: TracedPlan) -> list[Policy | None]:
    """Each level's policy (None where it has none), restored from the plan."""
    from daft_flow.plan.restore import restore_policy

    return [restore_policy(level.policy, traced.objects) if level.HasField("policy") else None
            for level in traced.plan.levels]


class PolicyResolver:
    """Called by the runtime's policy stage (one thread) with each batch that has failures; see
    the module docstring. Also the run's record of attempts, retries and dead letters."""

    def __init__(self, traced: TracedPlan, policies: list[Policy | None]) -> None:
        from daft_flow.execution.dead_letters import DeadLetterWriter, dead_letter_keys

        plan = traced.plan
        self.traced = traced
        self.policies = policies
        self.parents = [level.parent for level in plan.levels]
        self.flows = [level.flow for level in plan.levels]
        self.root_node = plan.levels[0].element_node
        self.root_type = dtype_from_ir(plan.root_type)
        self.attempts: dict[tuple[int, int], _Attempts] = {}
        self.retries = [0] * len(plan.levels)  # retry attempts scheduled, per level
        self.retries_by_node: dict[int, int] = {}
        # One writer per sink object (two flows may share a dead-letter sink).
        self.writers: dict[int, DeadLetterWriter] = {}
        self.writer_of: dict[int, DeadLetterWriter] = {}
        for level, policy in enumerate(policies):
            if policy is not None and policy.dead_letter is not None:
                sink = policy.dead_letter
                self.writer_of[level] = self.writers.setdefault(id(sink), DeadLetterWriter(sink))
        self.keys = dead_letter_keys(policies)
        self.retrying = any(p is not None and p.retry is not None for p in policies)  # rows may come back later
        self.dead_lettered = [0] * len(plan.levels)
        self.dead_letter_failed = [0] * len(plan.levels)
        self._fingerprint: str | None = None
        self._lock = threading.Lock()  # attempts are read by the results on the consumer's thread

    # -- the run's lifecycle (run_batches opens and closes it) -----------------------------------------
    def open(self, keep_existing: bool = False) -> None:
        """Starts the dead-letter sinks; ``keep_existing``: a resumed checkpoint, whose earlier
        attempts' dead letters stay (a sink in mode="overwrite" adds files, as in "append")."""
        from daft_flow.execution.dead_letters import open_writers

        open_writers(self.writers.values(), keep_existing)

    def defer_dead_letters(self, out: list[tuple[int, int, list[dict[str, Any]]]]) -> None:
        """A worker's morsel: dead-letter records go to ``out`` (key, retry tag, records) for the
        client to write (see ``dead_letters.DeferredDeadLetters``); nothing is written here."""
        from daft_flow.execution.dead_letters import DeferredDeadLetters

        deferred = {id(w): DeferredDeadLetters(w.sink, self.keys[level], out) for level, w in self.writer_of.items()}
        self.writer_of = {level: deferred[id(w)] for level, w in self.writer_of.items()}
        self.writers = {id(w.sink): w for w in deferred.values()}

    def close(self) -> None:
        from daft_flow.execution.dead_letters import close_writers

        close_writers(self.writers.values())

    def attempts_of(self, level: int, row_id: int) -> int:
        """How many attempts a failed row had (1 if it was never retried)."""
        with self._lock:
            a = self.attempts.get((level, row_id))
        return a.count if a is not None else 1

    @property
    def plan_fingerprint(self) -> str:
        if self._fingerprint is None:  # computed once, at the first dead letter (tracing for a run skips it)
            from daft_flow.plan.fingerprint import fingerprint_plan

            plan = ir.Plan()
            plan.CopyFrom(self.traced.plan)
            self._fingerprint = fingerprint_plan(TracedPlan(plan, self.traced.objects)).fingerprint
        return self._fingerprint

    # -- one batch ---------------------------------------------------------------------------------------
    def __call__(self, batch: Any, failures: list[list[tuple[Any, ...]]]) -> tuple[list[Any], list[Any], list[Any]]:
        # The batch is lent for this call only. An exception kept afterwards (a failed dead-letter
        # write's) holds this frame through its traceback: it must not hold the batch too.
        view = _BatchView(batch, self.parents, self.root_node)
        tag = batch.tag
        del batch
        try:
            return self._resolve(view, failures, tag)
        finally:
            view.batch = None

    def _resolve(self, view: "_BatchView", failures: list[list[tuple[Any, ...]]],
                 tag: int) -> tuple[list[Any], list[Any], list[Any]]:
        now = time.time()
        pending: dict[int, list[_Failure]] = {}
        for level, entries in enumerate(failures):
            for row, node, op, field, message, error in entries:
                if view.state(level, row) != 1:
                    continue
                if error is None:
                    from daft_flow.execution.results import _exception_from_message

                    error = _exception_from_message(message)
                pending.setdefault(level, []).append(_Failure(level, row, node, op, field, message, error))
        parent_failures: list[tuple[int, int, str, str, BaseException]] = []
        retry: dict[tuple[int, int], float] = {}
        final: list[_Failure] = []
        for level in range(len(self.parents) - 1, -1, -1):  # children before parents
            policy = self.policies[level] or Policy()
            children: dict[int, list[_Failure]] = {}
            for f in pending.get(level, ()):
                attempts = self._attempt(level, view.row_id(level, f.row), now)
                if self._retries(policy, f, attempts):
                    retry[(level, f.row)] = policy.retry.delay(attempts.count)  # type: ignore[union-attr]
                elif policy.failure == FAIL_PARENT and self.parents[level] >= 0:
                    final.append(f)
                    children.setdefault(view.parent_row(level, f.row), []).append(f)
                else:
                    final.append(f)
            parent = self.parents[level]
            for parent_row, kids in children.items():
                if view.state(parent, parent_row) != 0:
                    continue  # the parent failed (or went) on its own: its own outcome stands
                error = ChildFlowError.of([self._row_failure(view, k) for k in kids], self.flows[level])
                parent_failures.append((parent, parent_row, "fail_parent", self.flows[level], error))
                view.set_state(parent, parent_row, 1)
                tree = tuple(x for k in kids for x in ((k.level, k.row), *k.children))
                pending.setdefault(parent, []).append(
                    _Failure(parent, parent_row, -1, "fail_parent", self.flows[level], "", error, own=False,
                             children=tree))
        retries = self._settle(view, retry, pending, final)
        kept = {(level, row) for level, row, _ in retries}
        dead: list[tuple[int, int]] = []
        records: dict[int, tuple[Any, list[tuple[int, int, dict[str, Any]]]]] = {}
        failed_of: dict[int, list[_Failure]] = {}
        for f in final:
            if view.under_retry(f.level, f.row, kept):
                continue  # an ancestor's retry redoes it
            writer = self.writer_of.get(f.level)
            if writer is not None:
                records.setdefault(id(writer), (writer, []))[1].append((f.level, f.row, self._record(view, f)))
                failed_of.setdefault(id(writer), []).append(f)
        for writer, items in records.values():
            ok = writer.write([r for _, _, r in items], tag)
            for (level, row, _), written, f in zip(items, ok, failed_of[id(writer)]):
                if written:  # its children's failures (fail_parent) are in its record: handled too
                    dead.extend([(level, row), *f.children])
                    self.dead_lettered[level] += 1
                else:
                    self.dead_letter_failed[level] += 1
            if not all(ok):
                _log.warning("dead-letter sink %s could not write %d record(s); those rows stay failed (in the "
                             "results' failures): %s", writer.sink.describe(), len(ok) - sum(ok), writer.errors()[-1])
        return parent_failures, retries, dead

    def _attempt(self, level: int, row_id: int, now: float) -> _Attempts:
        with self._lock:
            a = self.attempts.get((level, row_id))
            if a is None:
                a = self.attempts[(level, row_id)] = _Attempts(now)
            a.count += 1
            a.last = now
        return a

    def _retries(self, policy: Policy, f: _Failure, attempts: _Attempts) -> bool:
        retry = policy.retry
        if retry is None or attempts.count >= retry.max_attempts or not retry.retries(f.error):
            return False
        if isinstance(f.error, NOT_DONE):
            return False  # the budget is spent: trying again cannot help
        return not (f.op == "input" and f.node == self.root_node)  # an input of the wrong type stays so

    def _settle(self, view: "_BatchView", retry: dict[tuple[int, int], float], pending: dict[int, list[_Failure]],
                final: list[_Failure]) -> list[tuple[int, int, float]]:
        """The retries to make, shallow levels first: not those under a retried ancestor (its
        retry redoes them: not an attempt of their own), nor those under an ancestor that finally
        failed (they become final: nothing under a failed row may reach a sink)."""
        out: list[tuple[int, int, float]] = []
        kept: set[tuple[int, int]] = set()
        for (level, row), delay in sorted(retry.items()):
            if view.under_retry(level, row, kept):
                with self._lock:
                    a = self.attempts.get((level, view.row_id(level, row)))
                    if a is not None:
                        a.count -= 1
                continue
            if view.under_failure(level, row):
                final.extend(f for f in pending.get(level, ()) if f.row == row)
                continue
            out.append((level, row, delay))
            kept.add((level, row))
            view.set_state(level, row, 4)
            self.retries[level] += 1
            node = next((f.node for f in pending.get(level, ()) if f.row == row), -1)
            self.retries_by_node[node] = self.retries_by_node.get(node, 0) + 1
        return out

    def _row_failure(self, view: "_BatchView", f: _Failure) -> RowFailure:
        row_id = view.row_id(f.level, f.row)
        return RowFailure(view.input_index(f.level, f.row), f"{row_id:016x}", self.flows[f.level], f.op, f.field,
                          f.error, attempts=self.attempts_of(f.level, row_id))

    def _record(self, view: "_BatchView", f: _Failure) -> dict[str, Any]:
        from daft_flow.execution.dead_letters import child_summary, describe_error, encode_input, timestamp

        row_id = view.row_id(f.level, f.row)
        with self._lock:
            a = self.attempts.get((f.level, row_id))
        kind, message, trace = describe_error(f.error)
        text, encoding = encode_input(view.root_value(f.level, f.row, self.root_type), self.root_type)
        parent = self.parents[f.level]
        return {
            "flow": self.flows[f.level], "op": f.op, "field": f.field, "row_id": f"{row_id:016x}",
            "input_index": view.input_index(f.level, f.row), "input": text, "input_encoding": encoding,
            "input_type": str(self.root_type),
            "parent_row_id": f"{view.row_id(parent, view.parent_row(f.level, f.row)):016x}" if parent >= 0 else None,
            "error_type": kind, "error_message": message, "traceback": trace,
            "attempts": a.count if a is not None else 1,
            "first_failed_at": timestamp(a.first if a is not None else time.time()),
            "last_failed_at": timestamp(a.last if a is not None else time.time()),
            "plan_fingerprint": self.plan_fingerprint,
            "child_failures": child_summary(f.error.failures) if isinstance(f.error, ChildFlowError) else [],
        }


class _BatchView:
    """What the resolver reads of a lent batch, fetched once per level as needed."""

    def __init__(self, batch: Any, parents: list[int], root_node: int) -> None:
        self.batch = batch
        self.parents = parents
        self.root_node = root_node
        self._states: dict[int, np.ndarray] = {}
        self._ids: dict[int, np.ndarray] = {}
        self._up: dict[int, np.ndarray] = {}
        self._root: dict[int, np.ndarray] = {}
        self._root_values: list[Any] | None = None

    def state(self, level: int, row: int) -> int:
        return int(self._states_of(level)[row])

    def set_state(self, level: int, row: int, state: int) -> None:
        self._states_of(level)[row] = state

    def _states_of(self, level: int) -> np.ndarray:
        if level not in self._states:
            mask = self.batch.failed_mask(level)
            n = self.batch.num_rows(level)
            self._states[level] = np.frombuffer(mask, dtype=np.uint8).copy() if mask else np.zeros(n, np.uint8)
        return self._states[level]

    def row_id(self, level: int, row: int) -> int:
        if level not in self._ids:
            self._ids[level] = self.batch.row_ids(level).to_numpy()
        return int(self._ids[level][row])

    def parent_row(self, level: int, row: int) -> int:
        if level not in self._up:
            self._up[level] = self.batch.ancestor_index(level, self.parents[level]).to_numpy()
        return int(self._up[level][row])

    def root_row(self, level: int, row: int) -> int:
        if level == 0:
            return row
        if level not in self._root:
            self._root[level] = self.batch.ancestor_index(level, 0).to_numpy()
        return int(self._root[level][row])

    def input_index(self, level: int, row: int) -> int:
        return int(self.batch.first_input + self.root_row(level, row))

    def root_value(self, level: int, row: int, dtype: Any) -> Any:
        if self._root_values is None:
            from daft_flow.convert import arrow_to_values

            self._root_values = arrow_to_values(self.batch.column(0, self.root_node), dtype, [])
        return self._root_values[self.root_row(level, row)]

    def ancestors(self, level: int, row: int) -> list[tuple[int, int]]:
        out = []
        while self.parents[level] >= 0:
            row, level = self.parent_row(level, row), self.parents[level]
            out.append((level, row))
        return out

    def under_retry(self, level: int, row: int, retried: Any) -> bool:
        return any(a in retried for a in self.ancestors(level, row))

    def under_failure(self, level: int, row: int) -> bool:
        return any(self.state(lvl, r) not in (0, 4) for lvl, r in self.ancestors(level, row))
