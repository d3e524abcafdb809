"""One ``RunReport`` for a run done by many morsels on many workers: each morsel's report
(``RunReport.to_dict()``, sent back with its results) is added up here. Counts add; an op's
start and wall time span its first batch on any worker to its last (worker clocks are taken as
they are); peaks take the largest; the throughput series is the client's (inputs handed back
over time)."""
from __future__ import annotations

import time
from typing import Any

from daft_flow.execution.report import FlowReport, LatencyHistogram, OpReport, RunReport, ThroughputSeries

_OP_COUNTS = ("busy_s", "batches", "rows_in", "rows_out", "rows_failed", "retries", "cache_hits", "requests",
              "input_tokens", "output_tokens", "cached_tokens")
_FLOW_COUNTS = ("rows", "succeeded", "failed", "skipped", "filtered", "budget_exceeded", "dead_lettered")


def morsel_report(report: RunReport | None) -> dict[str, Any] | None:
    """What a worker sends of a morsel's report (its throughput series stays there)."""
    if report is None:
        return None
    d = report.to_dict()
    d["throughput"] = None
    return d


def _histogram(d: dict[str, Any] | None) -> LatencyHistogram | None:
    if not d:
        return None
    h = LatencyHistogram()
    h.buckets.update({int(i): n for i, n in d["buckets"].items()})
    h.count, h.sum_s = d["count"], d["sum_s"]
    if d["count"]:
        h.min_s, h.max_s = d["min_s"], d["max_s"]
    return h


class ReportMerger:
    """Adds up morsel reports as they come back; ``report()`` makes the run's ``RunReport``."""

    def __init__(self, flow: str, root_flow: str, fingerprint: str | None) -> None:
        self.flow, self.root_flow, self.fingerprint = flow, root_flow, fingerprint
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.ops: dict[str, OpReport] = {}
        self.spans: dict[str, tuple[float, float]] = {}
        self.flows: dict[str, FlowReport] = {}
        self.inputs = 0
        self.source: dict[str, float] = {}
        self.memory: dict[str, int] = {}
        self.series = ThroughputSeries()

    def add(self, part: dict[str, Any] | None, inputs: int) -> None:
        """A morsel's report (None: the client settled the morsel itself, its ``inputs`` failed)."""
        if part is None:
            flow = self.flows.setdefault(self.root_flow, FlowReport(self.root_flow, 0))
            flow.rows += inputs
            flow.failed += inputs
            self.inputs += inputs
        else:
            self._add(part)
        self.series.t.append(round(time.monotonic() - self.started_mono, 4))
        self.series.inputs_done.append(self.inputs)

    def _add(self, part: dict[str, Any]) -> None:
        self.inputs += part["inputs"]
        for key, o in part["ops"].items():
            op = self.ops.get(key)
            if op is None:
                op = self.ops[key] = OpReport(key=key, op=o["op"], field=o["field"], flow=o["flow"], node=o["node"],
                                              model=o["model"], cost_usd=0.0 if o["model"] is not None else None)
            for name in _OP_COUNTS:
                setattr(op, name, getattr(op, name) + (o[name] or 0))
            for kind, n in o["failures_by_type"].items():
                op.failures_by_type[kind] = op.failures_by_type.get(kind, 0) + n
            if o["model"] is not None:
                op.cost_usd = None if op.cost_usd is None or o["cost_usd"] is None else op.cost_usd + o["cost_usd"]
            latency = _histogram(o["latency"])
            if latency is not None:
                op.latency = op.latency or LatencyHistogram()
                op.latency.merge(latency)
            if o["start_s"] is not None:
                start = part["started_at"] + o["start_s"]
                first, last = self.spans.get(key, (start, start + o["wall_s"]))
                self.spans[key] = (min(first, start), max(last, start + o["wall_s"]))
        for key, f in part["flows"].items():
            flow = self.flows.setdefault(key, FlowReport(f["flow"], f["level"]))
            for name in _FLOW_COUNTS:
                setattr(flow, name, getattr(flow, name) + f.get(name, 0))
        for name, value in part["source"].items():
            self.source[name] = self.source.get(name, 0) + value
        for name, value in part["memory"].items():
            self.memory[name] = max(self.memory.get(name, 0), value)

    def report(self, status: str, error: BaseException | None, usage: Any) -> RunReport:
        for key, (first, last) in self.spans.items():
            self.ops[key].start_s = max(0.0, first - self.started_at)
            self.ops[key].wall_s = last - first
        return RunReport(flow=self.flow, status=status, started_at=self.started_at,
                         wall_s=time.monotonic() - self.started_mono, inputs=self.inputs, ops=self.ops,
                         flows=self.flows, throughput=self.series, source=self.source, memory=self.memory,
                         usage=usage, error=f"{type(error).__name__}: {error}" if error is not None else None,
                         plan_fingerprint=self.fingerprint)
