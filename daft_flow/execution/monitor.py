"""Watching a run while it goes on: which op each stage runs, the counts of finished batches, a
throughput series, the live progress display, and at the end the ``RunReport``.

One sampler thread per process wakes every ``TICK_S`` while runs are live: it reads each run's
counters (``_core.Run.stats()``: a few atomics, GIL held for microseconds), appends to the run's
throughput series and refreshes its progress display; it exits soon after the last live run ends.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from daft_flow.execution.report import (FlowReport, LatencyHistogram, OpCounters, OpReport, RunReport,
                                        ThroughputSeries, set_last)

_log = logging.getLogger("daft_flow")

TICK_S = 0.25
IDLE_EXIT_S = 0.5  # the sampler thread exits after this long without a live run
MAX_SAMPLES = 512  # the series keeps at most this many points (every other one is dropped, and the interval doubles)


@dataclass
class StageInfo:
    """What one pipeline stage runs."""

    node: int
    op: str
    field: str
    flow: str
    level: int
    runner: Any = None
    counters: OpCounters | None = None
    latency: LatencyHistogram | None = None
    key: str = ""


class RecordingRun:
    """A ``_core.Run`` that notes which node and op each stage it is given runs (stages are
    numbered in the order they are added, like the runtime's counters)."""

    def __init__(self, run: Any, monitor: "RunMonitor") -> None:
        self._run = run
        self._monitor = monitor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def add_python_row(self, info: Any, *args: Any, **kwargs: Any) -> Any:
        self._monitor.stage(info.node, info.op, info.field, info.flow, info.level)
        return self._run.add_python_row(info, *args, **kwargs)

    def add_python_batch(self, info: Any, runner: Any, *args: Any, **kwargs: Any) -> Any:
        self._monitor.stage(info.node, info.op, info.field, info.flow, info.level, runner)
        return self._run.add_python_batch(info, runner, *args, **kwargs)

    def add_explode(self, parent: int, level: int, source_node: int, element_node: int, one_to_one: bool) -> Any:
        self._monitor.plan_stage(element_node, "chain" if one_to_one else "flat_map")
        return self._run.add_explode(parent=parent, level=level, source_node=source_node, element_node=element_node,
                                     one_to_one=one_to_one)

    def add_chunk_text(self, parent: int, level: int, source_node: int, chunk_node: int, *args: Any) -> Any:
        self._monitor.plan_stage(chunk_node, "chunk_text")
        return self._run.add_chunk_text(parent, level, source_node, chunk_node, *args)

    def add_tokenize(self, level: int, source_node: int, source_level: int, out_node: int, *args: Any) -> Any:
        self._monitor.plan_stage(out_node, "tokenize")
        return self._run.add_tokenize(level, source_node, source_level, out_node, *args)

    def add_render_template(self, level: int, out_node: int, *args: Any) -> Any:
        self._monitor.plan_stage(out_node, "template")
        return self._run.add_render_template(level, out_node, *args)

    def add_expressions(self, program: Any, name: str, node: int) -> Any:
        self._monitor.plan_stage(node, "expressions")
        return self._run.add_expressions(program, name, node)


class RunMonitor:
    """The live state of one run, from ``build_run`` to its ``RunReport``."""

    def __init__(self, plan: Any, *, budget: Any = None, total_inputs: int | None = None,
                 progress: Any = None, plan_fingerprint: str | None = None) -> None:
        self.plan = plan
        self.budget = budget
        self.total_inputs = total_inputs
        self.plan_fingerprint = plan_fingerprint
        self.stages: list[StageInfo] = []
        self.run: Any = None
        self.usage: Any = None
        self.started_mono = time.monotonic()
        self.started_at = time.time()
        self.inputs_done = 0
        n = len(plan.levels)
        self.level_rows = [0] * n
        self.level_failed = [0] * n
        self.level_skipped = [0] * n
        self.level_filtered = [0] * n
        self.level_budget = [0] * n
        self.failures_by_node: dict[int, Counter[str]] = {}
        self.series = ThroughputSeries()
        self._interval = TICK_S
        self._next_sample = 0.0
        self._lock = threading.Lock()  # series and display: the sampler thread and the finishing thread
        self._finished = False
        self.progress = progress  # a progress.ProgressDisplay, or None

    # -- building ----------------------------------------------------------------------------------
    def wrap(self, run: Any) -> RecordingRun:
        self.run = RecordingRun(run, self)
        return self.run

    def plan_stage(self, node: int, op: str) -> None:
        n = self.plan.nodes[node]
        name = n.name
        if not name:  # a template: named after the op that sends it
            user = next((m for m in self.plan.nodes if node in m.inputs and m.name), None)
            name = f"{user.name}:{op}" if user is not None else op
        self.stage(node, op, name, self.plan.levels[n.level].flow, n.level)

    def stage(self, node: int, op: str, field: str, flow: str, level: int, runner: Any = None) -> None:
        info = StageInfo(node, op, field, flow, level, runner, OpCounters())
        if runner is not None:
            if hasattr(runner, "counters"):
                runner.counters = info.counters
            runner = getattr(runner, "inner", runner)  # an op with cache=: its own runner
            if hasattr(runner, "latency"):  # LLM ops: each request's latency
                info.latency = runner.latency = LatencyHistogram()
            if self.budget is not None and hasattr(runner, "budget"):
                from daft_flow.llm.budget import CostBudget

                spec = runner.spec
                CostBudget.check_op(runner.name, field, flow, runner.model, spec.max_tokens, spec.kind != "prompt")
                runner.budget = self.budget
        self.stages.append(info)

    def _keys(self) -> None:
        names = Counter(s.field for s in self.stages)
        for s in self.stages:
            s.key = s.field if names[s.field] == 1 else f"{s.field}#{s.node}"

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._keys()
        self.started_mono = time.monotonic()
        self.started_at = time.time()
        _sampler.add(self)

    def batch_done(self, batch: Any) -> None:
        """Counts a finished batch's rows and failures, per flow and per op. A row fails when its
        op failed it; it is skipped when a parent row failed (before or after the row was made); it
        is filtered when a filter() dropped it or its parent row (never a failure)."""
        self.inputs_done += batch.num_rows(0)
        dead: list[Any] = [None] * len(self.level_rows)  # per level: rows that did not survive, if any
        gone: list[Any] = [None] * len(self.level_rows)  # per level: rows filtered out (or of filtered parents)
        for level, info in enumerate(self.plan.levels):  # parents come before their children
            try:
                rows = batch.num_rows(level)
            except IndexError:  # the level was never made in this batch (its maker's input failed)
                continue
            self.level_rows[level] += rows
            mask = batch.failed_mask(level)
            inherited = inherited_gone = None
            if info.parent >= 0 and dead[info.parent] is not None and rows:
                up = batch.ancestor_index(level, info.parent).to_numpy()
                inherited = dead[info.parent][up]
                inherited_gone = gone[info.parent][up]
            if not mask and inherited is None:
                continue
            own = np.frombuffer(mask, dtype=np.uint8) if mask else np.zeros(rows, dtype=np.uint8)
            failed = int(np.count_nonzero(own == 1))
            gone[level] = own == 3 if inherited_gone is None else (own == 3) | (inherited_gone & (own != 1))
            dead[level] = own != 0 if inherited is None else (own != 0) | inherited
            filtered = int(np.count_nonzero(gone[level]))
            self.level_failed[level] += failed
            self.level_filtered[level] += filtered
            self.level_skipped[level] += int(np.count_nonzero(dead[level])) - failed - filtered
            if failed:
                for _row, node, _op, _field, message, _handle in batch.failures(level):
                    kind = _error_type(message)
                    self.failures_by_node.setdefault(node, Counter())[kind] += 1
                    if kind == "BudgetExceeded":
                        self.level_budget[level] += 1

    def tick(self, now: float) -> None:
        """Called by the sampler thread."""
        with self._lock:
            if self._finished or self.run is None:
                return
            stats = self.run.stats()
            if not stats:
                return
            t = now - self.started_mono
            if t >= self._next_sample:
                self._sample(t, stats)
                self._next_sample = t + self._interval
            if self.progress is not None:
                self.progress.update(self, stats, t)

    def _sample(self, t: float, stats: dict[str, Any]) -> None:
        s = self.series
        s.t.append(round(t, 4))
        s.inputs_done.append(self.inputs_done)
        for info, st in zip(self.stages, stats.get("stages", ())):
            s.ops.setdefault(info.key, []).append(st["rows_out"])
            if info.latency is not None:
                s.requests.setdefault(info.key, []).append(info.latency.count)
        if len(s.t) > MAX_SAMPLES:
            s.t, s.inputs_done = s.t[::2], s.inputs_done[::2]
            s.ops = {k: v[::2] for k, v in s.ops.items()}
            s.requests = {k: v[::2] for k, v in s.requests.items()}
            self._interval *= 2

    def discard(self) -> None:
        """The run never started (building it failed)."""
        _sampler.remove(self)
        self._finished = True

    def finish(self, status: str, error: BaseException | None = None, usage: Any = None,
               record: bool = True) -> RunReport:
        """Ends the live display and sampling, and makes the run's report (``dflow.last_run()``
        unless ``record`` is False)."""
        _sampler.remove(self)
        with self._lock:
            self._finished = True
            t = time.monotonic() - self.started_mono
            stats = self.run.stats() if self.run is not None else {}
            if stats:
                self._sample(t, stats)
            if self.progress is not None:
                self.progress.close(self, stats, t)
        report = self._report(status, error, usage, stats, t)
        if record:
            set_last(report)
            _log_report(report)
            from daft_flow.execution.otel import emit_spans

            emit_spans(report)
        return report

    def _report(self, status: str, error: BaseException | None, usage: Any, stats: dict[str, Any],
                wall: float) -> RunReport:
        llm = {id(u): u for u in (usage.ops.values() if usage is not None else ())}
        ops: dict[str, OpReport] = {}
        for info, st in zip(self.stages, stats.get("stages", [{}] * len(self.stages))):
            op = OpReport(key=info.key, op=info.op, field=info.field, flow=info.flow, node=info.node)
            if st:
                op.batches, op.rows_in, op.rows_out = st["batches"], st["rows_in"], st["rows_out"]
                op.rows_failed, op.busy_s = st["rows_failed"], st["busy_ns"] / 1e9
                if st["first_start_ns"] >= 0:
                    op.start_s = st["first_start_ns"] / 1e9
                    op.wall_s = (st["last_end_ns"] - st["first_start_ns"]) / 1e9
            op.failures_by_type = dict(self.failures_by_node.get(info.node, {}))
            if info.counters is not None:
                c = info.counters
                op.retries, op.cache_hits, op.cache_misses = c.retries, c.cache_hits, c.cache_misses
                op.cache_bytes_read, op.cache_bytes_written = c.cache_bytes_read, c.cache_bytes_written
            u = getattr(getattr(info.runner, "inner", info.runner), "usage", None)
            if u is not None and id(u) in llm:
                u.finish()
                op.model, op.requests, op.input_tokens = u.model, u.requests, u.input_tokens
                op.output_tokens, op.cached_tokens, op.cost_usd = u.output_tokens, u.cached_tokens, u.cost_usd
                op.retries += u.retries
                op.latency = info.latency or LatencyHistogram()
            ops[info.key] = op
        input_failures = self.failures_by_node.get(self.plan.levels[0].element_node)
        if input_failures:  # inputs of the wrong type fail at the source, before any op
            ops["input"] = OpReport(key="input", op="input", field=self.plan.root_field, flow=self.plan.levels[0].flow,
                                    node=self.plan.levels[0].element_node, rows_failed=sum(input_failures.values()),
                                    failures_by_type=dict(input_failures))
        names = Counter(level.flow for level in self.plan.levels)
        flows: dict[str, FlowReport] = {}
        for i, level in enumerate(self.plan.levels):
            key = level.flow if names[level.flow] == 1 else f"{level.flow}#{i}"
            failed = self.level_failed[i] + self.level_skipped[i]
            flows[key] = FlowReport(level.flow, i, rows=self.level_rows[i],
                                    succeeded=self.level_rows[i] - failed - self.level_filtered[i], failed=failed,
                                    skipped=self.level_skipped[i], filtered=self.level_filtered[i],
                                    budget_exceeded=self.level_budget[i])
        source = stats.get("source", {})
        return RunReport(
            flow=self.plan.levels[self.plan.output_level].flow, status=status, started_at=self.started_at,
            wall_s=wall, inputs=self.inputs_done, ops=ops, flows=flows, throughput=self.series,
            source={"rows": source.get("rows", 0), "busy_s": source.get("busy_ns", 0) / 1e9,
                    "budget_wait_s": source.get("budget_wait_ns", 0) / 1e9},
            memory={"peak_budget_bytes": stats.get("peak_budget_bytes", 0)},
            budget=self.budget.as_dict() if self.budget is not None else None, usage=usage,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
            plan_fingerprint=self.plan_fingerprint)


def _error_type(message: str) -> str:
    """The exception type a runtime failure message starts with ("ValueError: ...")."""
    head, sep, _ = message.partition(": ")
    return head if sep and head.replace(".", "").replace("_", "").isalnum() else "Error"


def _log_report(report: RunReport) -> None:
    if not _log.isEnabledFor(logging.DEBUG):
        return
    failed = sum(f.failed for f in report.flows.values())
    cost = report.cost_usd
    _log.debug("run of flow %r %s: %d inputs, %d failed rows, %.3f s%s", report.flow, report.status, report.inputs,
               failed, report.wall_s, f", ${cost:.6f}" if cost else "")


class _Sampler:
    """The one thread that samples every live run (see the module docstring); it starts with the
    first live run and exits once none has been live for ``IDLE_EXIT_S``."""

    def __init__(self) -> None:
        self._monitors: set[RunMonitor] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, monitor: RunMonitor) -> None:
        with self._cond:
            self._monitors.add(monitor)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="daft_flow-monitor", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, monitor: RunMonitor) -> None:
        with self._cond:
            self._monitors.discard(monitor)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._monitors:
                    # Idle: linger a little (runs called in a loop reuse the thread), then exit so no
                    # thread outlives the runs that needed it.
                    if not self._cond.wait(IDLE_EXIT_S) and not self._monitors:
                        self._thread = None
                        return
                monitors = list(self._monitors)
            now = time.monotonic()
            for m in monitors:
                try:
                    m.tick(now)
                except Exception:  # a display that cannot draw must never break a run
                    _log.debug("progress update failed", exc_info=True)
            time.sleep(TICK_S)


_sampler = _Sampler()
