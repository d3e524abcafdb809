"""OpenTelemetry spans for runs (the ``otel`` extra): one span per run, a child span per op.

Spans are made when a run ends, from its ``RunReport``, with the times the run and each op really
started and ended (an op's span covers its first batch's start to its last batch's end), so they
cost nothing while the run goes on. The run's span is a child of the span current where the run
was called. Nothing happens unless ``opentelemetry`` has been imported (an application that
configured a tracer provider has): daft_flow never imports it itself.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

_log = logging.getLogger("daft_flow")


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return {f"daft_flow.{k}": v for k, v in values.items() if isinstance(v, (str, bool, int, float))}


def emit_spans(report: Any) -> None:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return
    try:
        _emit(trace, report)
    except Exception:  # tracing must never fail a run
        _log.debug("could not emit OpenTelemetry spans", exc_info=True)


def _emit(trace: Any, report: Any) -> None:
    from daft_flow import __version__

    tracer = trace.get_tracer("daft_flow", __version__)
    start = int(report.started_at * 1e9)
    end = start + int(report.wall_s * 1e9)
    run = tracer.start_span(f"daft_flow run {report.flow}", start_time=start, attributes=_attributes({
        "flow": report.flow, "status": report.status, "inputs": report.inputs, "wall_s": report.wall_s,
        "cost_usd": report.cost_usd, "plan_fingerprint": report.plan_fingerprint,
        "failed_rows": sum(f.failed for f in report.flows.values())}))
    context = trace.set_span_in_context(run)
    for op in report.ops.values():
        op_start = start + int((op.start_s or 0.0) * 1e9)
        span = tracer.start_span(f"daft_flow op {op.key}", context=context, start_time=op_start,
                                 attributes=_attributes({
                                     "op": op.op, "field": op.field, "flow": op.flow, "node": op.node,
                                     "rows_in": op.rows_in, "rows_out": op.rows_out, "rows_failed": op.rows_failed,
                                     "busy_s": op.busy_s, "batches": op.batches, "retries": op.retries,
                                     "cache_hits": op.cache_hits, "model": op.model, "requests": op.requests,
                                     "input_tokens": op.input_tokens, "output_tokens": op.output_tokens,
                                     "cost_usd": op.cost_usd}))
        if op.rows_failed:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{op.rows_failed} row(s) failed"))
        span.end(end_time=op_start + int(op.wall_s * 1e9))
    if report.error is not None:
        run.set_status(trace.Status(trace.StatusCode.ERROR, report.error))
    run.end(end_time=end)
