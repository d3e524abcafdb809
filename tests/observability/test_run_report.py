"""dflow.last_run() / flow.last_run(): per-op and per-flow counts, JSON, series, spans, logging."""
import json
import logging

import pytest

import daft_flow as dflow


def _checked(x: int) -> int:
    if x % 5 == 0:
        raise ValueError(f"{x} is a multiple of 5")
    return x


def _words(text: str) -> list[str]:
    return text.split()


def _shout(word: str) -> str:
    if word == "bad":
        raise KeyError(word)
    return word.upper()


def test_report_counts_rows_and_failures_per_op_and_per_flow():
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len, return_type=int)
    words = doc["doc"].flat_map(_words, field="word", return_type=list[str])
    words["loud"] = words["word"].run_python(_shout, return_type=str)
    inputs = ["a bad b", "c d", "bad", "e f g"]
    out = words.collect_batch(inputs, on_error="return")
    report = words.last_run()
    assert report is dflow.last_run()
    assert report.status == "completed" and report.inputs == 4
    assert report.accounting["doc"] == {"rows": 4, "succeeded": 4, "failed": 0, "dead_lettered": 0, "skipped": 0, "filtered": 0}
    children = report.flows["words"] if "words" in report.flows else next(
        f for k, f in report.flows.items() if f.level == 1)
    assert children.rows == 9 and children.failed == 2 and children.succeeded == 7
    assert children.rows == children.succeeded + children.failed
    loud = report.ops["loud"]
    assert (loud.rows_in, loud.rows_out, loud.rows_failed) == (9, 7, 2)
    assert loud.failures_by_type == {"KeyError": 2}
    assert loud.busy_s > 0 and loud.wall_s >= 0 and loud.batches >= 1
    assert sum(len(r) for r in out) == 9  # the report matches what came back
    data = json.loads(report.to_json())
    assert data["ops"]["loud"]["failures_by_type"] == {"KeyError": 2}
    assert data["flows"]["doc"]["rows"] == 4


def _joined(word: str, checked: str) -> str:
    return f"{checked}:{word}"


def _check_doc(text: str) -> str:
    if text.startswith("x"):
        raise ValueError("x documents are not allowed")
    return text


@pytest.mark.parametrize("before", [True, False])
def test_children_of_a_failed_parent_count_as_skipped(before):
    doc = dflow.Flow("doc", str)
    doc["checked"] = doc["doc"].run_python(_check_doc, return_type=str)
    if before:  # the parent fails before its children are made
        words = doc["checked"].flat_map(_words, field="word", return_type=list[str])
    else:  # the children exist when the parent fails (the root op runs after the flat_map)
        words = doc["doc"].flat_map(_words, field="word", return_type=list[str])
    words["joined"] = words["word"].run_python(_joined, doc["checked"], return_type=str) if not before else \
        words["word"].run_python(str.upper, return_type=str)
    out = words.collect_batch(["x a b", "y c", "z d e"], on_error="return")
    acc = words.last_run().accounting
    assert acc["doc"] == {"rows": 3, "succeeded": 2, "failed": 1, "dead_lettered": 0, "skipped": 0, "filtered": 0}
    child = acc["doc.word"]
    assert child["rows"] == child["succeeded"] + child["failed"]
    assert child["succeeded"] == 5 == sum(1 for rows in out for r in rows if isinstance(r, dict))
    if before:  # a failed parent makes no children
        assert child == {"rows": 5, "succeeded": 5, "failed": 0, "dead_lettered": 0, "skipped": 0, "filtered": 0}
    else:
        assert child == {"rows": 8, "succeeded": 5, "failed": 3, "dead_lettered": 0, "skipped": 3, "filtered": 0}


def test_input_of_the_wrong_type_is_reported_as_an_input_failure():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(_checked, return_type=int)
    flow.collect_batch([1, "two", 5, 6], on_error="return")
    report = flow.last_run()
    assert report.ops["input"].failures_by_type == {"TypeError": 1}
    assert report.ops["y"].failures_by_type == {"ValueError": 1}
    assert report.accounting["x"] == {"rows": 4, "succeeded": 2, "failed": 2, "dead_lettered": 0, "skipped": 0, "filtered": 0}


def test_series_and_times_are_consistent():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x * 2, return_type=int)
    flow.collect_arrow(range(50_000))
    report = flow.last_run()
    series = report.throughput
    assert series.t == sorted(series.t) and series.inputs_done[-1] == 50_000
    assert series.ops["y"][-1] == 50_000
    assert all(a <= b for a, b in zip(series.inputs_done, series.inputs_done[1:]))
    op = report.ops["y"]
    assert op.start_s is not None and 0 <= op.start_s <= report.wall_s
    assert op.busy_s <= op.wall_s * 1.0001 + 1e-6  # one worker: busy within its wall time
    assert report.source["rows"] == 50_000


def test_stopped_stream_and_failed_run_are_reported():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
    stream = flow.stream(range(100_000), batch_rows=1000, first_batch_rows=1000)
    next(stream)
    stream.close()
    assert flow.last_run().status == "stopped"

    class Boom(BaseException):
        pass

    def boom(x: int) -> int:
        raise Boom()

    bad = dflow.Flow("x", int)
    bad["y"] = bad["x"].run_python(boom, return_type=int)
    with pytest.raises(Boom):
        bad.collect_batch([1, 2])
    report = bad.last_run()
    assert report.status == "error" and report.error.startswith("Boom")


def test_sinks_are_reported(tmp_path):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(_checked, return_type=int)
    sink = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"y": flow["y"]})
    result = sink.collect_batch(range(1, 21), on_error="return")
    report = dflow.last_run()
    assert sink.last_run() is report
    assert report.ops["written_to"].rows_in == result.rows_written == 16
    assert report.accounting["x"]["failed"] == 4


def test_debug_log_line_per_run(caplog):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x, return_type=int)
    with caplog.at_level(logging.DEBUG, logger="daft_flow"):
        flow.collect_batch(range(3))
    assert any("run of flow 'x' completed: 3 inputs" in r.getMessage() for r in caplog.records)


def test_opentelemetry_spans_per_run_and_op():
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    # The global provider can be set once per process: hand ours to daft_flow through the API's
    # proxy by setting it only if nothing else has.
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another tracer provider was set in this process")
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(_checked, return_type=int)
    flow["z"] = flow["y"].run_python(lambda y: y, return_type=int)
    with tracer.start_as_current_span("caller") as caller:
        flow.collect_batch(range(1, 11), on_error="return")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run = spans["daft_flow run x"]
    assert run.parent.span_id == caller.get_span_context().span_id
    y, z = spans["daft_flow op y"], spans["daft_flow op z"]
    assert y.parent.span_id == run.context.span_id and z.parent.span_id == run.context.span_id
    assert y.attributes["daft_flow.rows_failed"] == 2 and y.attributes["daft_flow.rows_in"] == 10
    assert run.attributes["daft_flow.inputs"] == 10
    assert run.start_time <= y.start_time <= y.end_time <= run.end_time
