"""Dead letters: one record per finally failed row, through any sink, enough to replay its input."""
import datetime
import json

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from daft_flow.execution.dead_letters import COLUMNS, decode_input, encode_input
from daft_flow.types import dtype_of

BROKEN = {"fixed": False}


def summarize(chunk: str) -> str:
    if "poison" in chunk and not BROKEN["fixed"]:
        raise ValueError(f"cannot summarize {chunk.strip()!r} from https://user:hunter2@example.com/doc?token=abc123")
    return chunk.strip().upper()


def read_jsonl(directory):
    return [json.loads(line) for f in sorted(directory.iterdir()) if f.suffix == ".jsonl"
            for line in f.read_text().splitlines()]


@pytest.fixture(autouse=True)
def broken():
    BROKEN["fixed"] = False
    yield


def test_one_record_per_failed_row_with_what_replays_it(tmp_path):
    dead = tmp_path / "dead"
    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=7, overlap=0).with_policy(
        retry=dflow.Retry(max_attempts=2, initial_delay=0.001), dead_letter=dflow.JSONFileSink(str(dead)))
    chunks["s"] = chunks["chunk"].run_python(summarize, return_type=str)
    docs = ["alpha beta", "gamma poison delta", "poison one poison"]
    out = chunks.collect_batch(docs, on_error="return")  # dead letters are failures, handled: no raise either way
    assert chunks.collect_batch(docs)  # on_error="raise" does not raise for dead-lettered rows
    records = read_jsonl(dead)
    assert len(records) == 3 and set(records[0]) == set(COLUMNS)
    failed = [f for rows in out for f in rows if isinstance(f, dflow.RowFailure)]
    assert sorted(r["row_id"] for r in records) == sorted(f.row_id for f in failed)
    assert all(f.dead_lettered and f.attempts == 2 for f in failed)
    r = next(r for r in records if r["input_index"] == 1)
    assert r["flow"] == "doc.chunks" and r["op"] == "run_python(summarize)" and r["field"] == "s"
    assert r["input"] == docs[1] and r["input_encoding"] == "text" and r["input_type"] == "str"
    assert r["error_type"] == "ValueError" and r["attempts"] == 2
    assert len(r["parent_row_id"]) == 16 and len(r["row_id"]) == 16
    assert r["plan_fingerprint"] == chunks.fingerprint()
    first = datetime.datetime.fromisoformat(r["first_failed_at"])
    last = datetime.datetime.fromisoformat(r["last_failed_at"])
    assert first <= last and first.tzinfo is not None
    assert "Traceback" in r["traceback"] and "in summarize" in r["traceback"]
    for text in (r["error_message"], r["traceback"]):  # credentials in URLs never reach a dead letter
        assert "hunter2" not in text and "abc123" not in text and "example.com/doc" in text
    acc = chunks.last_run().accounting["doc.chunks"]
    assert acc["dead_lettered"] == acc["failed"] == 3

    BROKEN["fixed"] = True
    report = dflow.replay(str(dead), chunks)
    assert report.records == 3 and report.inputs == [docs[1], docs[2]] and report.input_indexes == [1, 2]
    assert report.succeeded == [0, 1] and not report.failed
    assert [row["s"] for row in report.results[0]] == [c.strip().upper() for c in
                                                       (row["chunk"] for row in chunks.collect(docs[1]))]
    assert "2 succeeded, 0 failed again" in str(report)


def test_fail_parent_dead_letters_name_the_parent_and_its_children(tmp_path):
    dead = tmp_path / "dead"
    doc = dflow.Flow("doc", str).with_policy(dead_letter=dflow.JSONFileSink(str(dead)))
    chunks = doc.chunk_text(max_chars=7, overlap=0).with_policy("fail_parent")
    chunks["s"] = chunks["chunk"].run_python(summarize, return_type=str)
    out = chunks.collect_batch(["alpha beta", "gamma poison delta"])  # handled: no FlowRunError
    assert out[1] == []
    (record,) = read_jsonl(dead)
    assert record["flow"] == "doc" and record["error_type"] == "ChildFlowError" and record["parent_row_id"] is None
    assert record["input"] == "gamma poison delta" and record["input_index"] == 1
    (child,) = record["child_failures"]
    assert child["flow"] == "doc.chunks" and child["error_type"] == "ValueError" and "hunter2" not in \
        child["error_message"]
    acc = chunks.last_run().accounting
    assert acc["doc"]["dead_lettered"] == 1 and acc["doc"]["failed"] == 1


@pytest.mark.parametrize("dtype, value", [
    (str, "plain text"), (bytes, b"\x00\xffbinary"), (int, 42), (float, 2.5), (bool, True),
    (dflow.JSON, {"a": [1, 2, {"b": None}]}), (list[int], [1, 2, 3]), (list[str], ["x", "y"]),
])
def test_inputs_of_every_type_are_encoded_to_be_rebuilt(tmp_path, dtype, value):
    text, encoding = encode_input(value, dtype_of(dtype))
    assert isinstance(text, str) and decode_input(text, encoding) == value
    dead = tmp_path / "dead"
    flow = dflow.Flow("x", dtype).with_policy(dead_letter=dflow.JSONFileSink(str(dead)))

    def fail(v):
        raise RuntimeError("always")

    flow["y"] = flow["x"].run_python(fail)
    flow.collect_batch([value])
    (record,) = read_jsonl(dead)
    assert record["input_type"] == str(dtype_of(dtype))
    assert decode_input(record["input"], record["input_encoding"]) == value


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Point) and other.x == self.x


def test_untyped_inputs_travel_pickled(tmp_path):
    text, encoding = encode_input(Point(3), dflow.DataType("any"))
    assert encoding == "pickle-base64" and decode_input(text, encoding) == Point(3)
    assert encode_input(None, dflow.DataType("str")) == (None, "none")


def test_parquet_dead_letters_and_replay(tmp_path):
    dead = tmp_path / "dead"
    doc = dflow.Flow("n", int).with_policy(dead_letter=dflow.ParquetSink(str(dead)))
    doc["inv"] = doc["n"].run_python(lambda n: 1 / n, return_type=float)
    out = doc.collect_batch([1, 0, 4, 0], on_error="return")
    assert [type(x).__name__ for x in out] == ["dict", "RowFailure", "dict", "RowFailure"]
    table = pq.read_table(next(dead.iterdir()))
    assert table.num_rows == 2 and table.column("error_type").to_pylist() == ["ZeroDivisionError"] * 2
    assert table.schema.field("input_index").type.bit_width == 64
    report = dflow.replay(str(dead), doc)
    assert report.inputs == [0, 0] and report.failed == [0, 1] and not report.succeeded
    assert all(isinstance(f.error, ZeroDivisionError) for f in report.failures)


def test_replay_refuses_records_of_another_type_or_no_records(tmp_path):
    dead = tmp_path / "dead"
    doc = dflow.Flow("n", int).with_policy(dead_letter=dflow.JSONFileSink(str(dead)))
    doc["inv"] = doc["n"].run_python(lambda n: 1 / n, return_type=float)
    doc.collect_batch([0])
    other = dflow.Flow("s", str)
    with pytest.raises(TypeError, match="dead letters hold inputs of type int, but the flow takes str"):
        dflow.replay(str(dead), other)
    with pytest.raises(FileNotFoundError, match="no dead letters at"):
        dflow.replay(str(tmp_path / "nothing"), doc)
    with pytest.raises(ValueError, match="not a daft_flow dead letter"):
        dflow.replay([{"row_id": "x"}], doc)
    with pytest.raises(TypeError, match="runs a dflow.Flow, SinkFlow or Multisink"):
        dflow.replay(str(dead), "not a flow")


def test_secrets_in_the_environment_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-very-secret-value-123")
    dead = tmp_path / "dead"
    doc = dflow.Flow("x", str).with_policy(dead_letter=dflow.JSONFileSink(str(dead)))

    def leak(x: str) -> str:
        raise PermissionError("server said: bad key sk-very-secret-value-123")

    doc["y"] = doc["x"].run_python(leak)
    doc.collect_batch(["a"])
    (record,) = read_jsonl(dead)
    assert "sk-very-secret-value-123" not in json.dumps(record) and "***" in record["error_message"]


def test_a_dead_letter_sink_that_cannot_write_leaves_the_failures_as_failures(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    doc = dflow.Flow("x", str).with_policy(dead_letter=dflow.JSONFileSink(str(blocker / "dead")))
    doc["y"] = doc["x"].run_python(lambda x: 1 / 0)
    with pytest.raises(dflow.FlowRunError) as e:
        doc.collect_batch(["a", "b"])
    assert len(e.value.failures) == 2 and not any(f.dead_lettered for f in e.value.failures)
    acc = doc.last_run().accounting["x"]
    assert acc["failed"] == 2 and acc["dead_lettered"] == 0


def test_a_dead_letter_target_shared_with_a_sink_of_the_run_is_refused(tmp_path):
    doc = dflow.Flow("x", str).with_policy(dead_letter=dflow.JSONFileSink(str(tmp_path)))
    doc["y"] = doc["x"].run_python(str.upper, return_type=str)
    sink = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), doc["y"])
    with pytest.raises(dflow.FlowError, match="is writing to"):
        sink.collect_batch(["a"])
