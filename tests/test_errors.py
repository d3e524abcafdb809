import os
import signal
import threading
import time
import traceback

import pytest

import daft_flow as dflow


class ParseError(Exception):
    pass


def parse(s: str) -> int:
    if not s.isdigit():
        raise ParseError(f"not a number: {s!r}")
    return int(s)


def parse_flow():
    flow = dflow.Flow("text", str)
    flow["value"] = flow["text"].run_python(parse)
    return flow


def test_exception_keeps_type_message_traceback_and_names_the_row():
    with pytest.raises(ParseError) as e:
        parse_flow().collect("x1")
    assert str(e.value) == "not a number: 'x1'"
    frames = [f.name for f in traceback.extract_tb(e.value.__traceback__)]
    assert "parse" in frames
    note = " ".join(e.value.__notes__)
    assert "row " in note and "run_python(parse)" in note and "'value'" in note and "flow 'text'" in note


def test_collect_batch_reports_failed_inputs_and_keeps_other_results():
    with pytest.raises(dflow.FlowRunError) as e:
        parse_flow().collect_batch(["1", "two", "3", "four"])
    err = e.value
    assert err.failed_inputs == [1, 3]
    assert err.results == [{"text": "1", "value": 1}, None, {"text": "3", "value": 3}, None]
    assert [type(x) for x in err.exceptions] == [ParseError, ParseError]
    assert {f.op for f in err.failures} == {"run_python(parse)"}
    assert all(len(f.row_id) == 16 for f in err.failures)


def test_failures_can_be_handled_with_except_star():
    caught = []
    try:
        parse_flow().collect_batch(["a"])
    except* ParseError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 1


def test_on_error_return_places_failures_in_the_results():
    results = parse_flow().collect_batch(["1", "b"], on_error="return")
    assert results[0] == {"text": "1", "value": 1}
    assert isinstance(results[1], dflow.RowFailure) and isinstance(results[1].error, ParseError)
    assert results[1].input_index == 1


def test_every_input_ends_as_output_or_failure():
    inputs = [str(i) if i % 7 else f"bad{i}" for i in range(2000)]
    results = parse_flow().collect_batch(inputs, on_error="return", batch_rows=100)
    ok = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, dflow.RowFailure)]
    assert len(ok) + len(failed) == len(inputs)
    assert len(failed) == len([i for i in range(2000) if i % 7 == 0])


@pytest.mark.parametrize("value, kind", [(5, "int"), (b"x", "bytes"), (None, "str")])
def test_wrong_return_type_is_an_error_naming_the_row(value, kind):
    flow = dflow.Flow("text", str)
    flow["out"] = flow["text"].run_python(lambda s: value, return_type=str)
    if value is None:  # None is a null value, allowed for every type
        assert flow.collect("a") == {"text": "a", "out": None}
        return
    with pytest.raises(TypeError) as e:
        flow.collect("a")
    msg = str(e.value) + " ".join(e.value.__notes__)
    assert f"returned {kind}, expected str" in msg and "'out'" in msg and "row " in msg


def test_wrong_return_types_for_rich_types():
    flow = dflow.Flow("x", int)
    flow["emb"] = flow["x"].run_python(lambda x: [1.0] * x, return_type=dflow.Embedding[3])
    flow["items"] = flow["x"].run_python(lambda x: ["a", x], return_type=list[str])
    with pytest.raises(dflow.FlowRunError) as e:
        flow.collect_batch([3, 2])
    messages = [str(f.error) for f in e.value.failures]
    assert any("length 2, expected 3" in m for m in messages)
    assert any("element 1" in m for m in messages)


def test_bad_input_types_fail_their_rows_only():
    with pytest.raises(dflow.FlowRunError) as e:
        parse_flow().collect_batch(["1", 2, "3"])
    assert e.value.failed_inputs == [1]
    failure = e.value.failures[0]
    assert failure.op == "input" and "is int, expected str" in str(failure.error)
    assert e.value.results[2] == {"text": "3", "value": 3}


def test_child_failure_is_isolated_from_siblings_and_parent():
    doc = dflow.Flow("doc", str)
    nums = doc["doc"].flat_map(lambda s: s.split(","), return_type=list[str], field="text")
    nums["value"] = nums["text"].run_python(parse)
    results = nums.collect_batch(["1,x,3", "4"], on_error="return")
    assert [r["value"] for r in results[0] if isinstance(r, dict)] == [1, 3]
    assert [type(r) for r in results[0]].count(dflow.RowFailure) == 1
    assert results[1] == [{"text": "4", "value": 4}]


def test_parent_failure_after_the_split_drops_its_children():
    doc = dflow.Flow("doc", str)
    words = doc["doc"].flat_map(str.split, return_type=list[str], field="w")
    doc["checked"] = doc["doc"].run_python(parse)
    words["n"] = words["w"].run_python(lambda w, c: c, doc["checked"], return_type=int)
    with pytest.raises(dflow.FlowRunError) as e:
        words.collect_batch(["12", "x y"])
    assert e.value.results[0] == [{"w": "12", "n": 12}]
    assert e.value.failed_inputs == [1]


def test_batch_function_errors_are_batch_errors():
    def boom(xs: list[str]) -> list[str]:
        raise RuntimeError("backend down")

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(boom, batch=True, return_type=str)
    with pytest.raises(dflow.FlowRunError) as e:
        flow.collect_batch(["a", "b"])
    err = e.value.exceptions[0]
    assert isinstance(err, dflow.BatchError) and err.batch_size == 2
    assert isinstance(err.__cause__, RuntimeError)

    flow2 = dflow.Flow("x", str)
    flow2["y"] = flow2["x"].run_python(lambda xs: xs[:1], batch=True, return_type=str)
    with pytest.raises(dflow.FlowRunError, match="returned 1 values for a batch of 2"):
        flow2.collect_batch(["a", "b"])


def test_async_exceptions_keep_their_type():
    async def fail(x: int) -> int:
        if x == 2:
            raise KeyError("missing")
        return x

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(fail)
    with pytest.raises(dflow.FlowRunError) as e:
        flow.collect_batch([1, 2, 3])
    assert isinstance(e.value.exceptions[0], KeyError)
    assert e.value.results[0] == {"x": 1, "y": 1}


def test_errors_in_the_input_iterator_reach_the_caller():
    def inputs():
        yield "1"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        parse_flow().collect_batch(inputs())


def test_ctrl_c_cancels_the_run_promptly(no_leaked_threads):
    def slow(s: str) -> str:
        time.sleep(0.002)
        return s

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(slow)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        flow.collect_batch(str(i) for i in range(1_000_000))
    assert time.monotonic() - started < 30  # far less than the 2000 s the input would take


def test_keyboard_interrupt_inside_a_function_stops_the_run(no_leaked_threads):
    def interrupt(s: str) -> str:
        raise KeyboardInterrupt

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(interrupt)
    with pytest.raises(KeyboardInterrupt):
        flow.collect_batch(["a", "b"])
