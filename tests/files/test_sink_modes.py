"""Sinks that do not surprise: modes across reruns, deterministic names, independent sinks in a
Multisink, one run per sink target, valid JSON, typed columns."""
from __future__ import annotations

import glob
import json
import math
import os
import threading

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from daft_flow.io.write import SinkBusyError
from daft_flow.retry import Backoff


def _strict_json(line):
    def reject(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=reject)


def _rows(directory):
    out = []
    for path in sorted(glob.glob(f"{directory}/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            out.extend(_strict_json(line) for line in f)
    return out


def _chunk_sink(sink):
    doc = dflow.Flow("url", str)
    doc["document"] = doc["url"].run_python(lambda u: " ".join(f"{u}-w{i}" for i in range(60)), return_type=str)
    chunks = doc["document"].chunk_text(max_chars=200, overlap=0)
    return chunks.write_sink(sink, {"url": doc["url"], "chunk": chunks["chunk"]})


URLS = [f"d{i}" for i in range(150)]


@pytest.mark.parametrize("make", [lambda d: dflow.JSONFileSink(d), lambda d: dflow.ParquetSink(d)],
                         ids=["json", "parquet"])
def test_rerun_overwrites_by_default_and_keeps_other_files(tmp_path, make):
    out = str(tmp_path / "out")
    os.makedirs(out)
    (tmp_path / "out" / "notes.txt").write_text("mine")
    write = _chunk_sink(make(out))
    first = write.collect_batch(URLS)
    names = sorted(os.listdir(out))
    second = write.collect_batch(URLS)
    assert second.rows_written == first.rows_written == 450
    assert sorted(os.listdir(out)) == names  # the same names: deterministic per row range
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    data_files = [os.path.join(out, n) for n in names if n != "notes.txt"]
    if data_files[0].endswith(".parquet"):
        assert sum(pq.read_metadata(p).num_rows for p in data_files) == 450
    else:
        assert len(_rows(out)) == 450
    # A smaller rerun leaves none of the bigger run's files behind.
    third = write.collect_batch(URLS[:2])
    data_files = [n for n in os.listdir(out) if n != "notes.txt"]
    assert sorted(os.path.join(out, n) for n in data_files) == sorted(third.paths) and third.rows_written == 6


def test_append_adds_and_error_if_exists_refuses_before_writing(tmp_path):
    out = str(tmp_path / "out")
    append = _chunk_sink(dflow.JSONFileSink(out, mode="append"))
    append.collect_batch(URLS[:10])
    append.collect_batch(URLS[:10])
    assert len(_rows(out)) == 60  # two runs, two copies: asked for
    before = {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)}
    strict = _chunk_sink(dflow.JSONFileSink(out, mode="error_if_exists"))
    with pytest.raises(FileExistsError, match="mode='overwrite'"):
        strict.collect_batch(URLS[:10])
    assert {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)} == before
    fresh = str(tmp_path / "fresh")
    assert _chunk_sink(dflow.JSONFileSink(fresh, mode="error_if_exists")).collect_batch(URLS[:3]).rows_written == 9
    overwrite = _chunk_sink(dflow.JSONFileSink(out))  # replaces both appended runs
    overwrite.collect_batch(URLS[:10])
    assert len(_rows(out)) == 30
    with pytest.raises(ValueError, match="mode must be one of"):
        dflow.ParquetSink(out, mode="replace")


def test_s3_keys_are_deterministic_and_reruns_do_not_multiply(s3):
    client = s3.client()
    client.create_bucket(Bucket="modes")

    def keys(prefix):
        listed = client.list_objects_v2(Bucket="modes", Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    doc = dflow.Flow("x", str)
    per_row = doc.write_sink(dflow.S3FileSink("s3://modes/rows"), doc["x"])
    values = [f"v{i}" for i in range(70)]
    first = per_row.collect_batch(values)
    assert keys("rows/") == sorted(k.split("modes/", 1)[1] for k in first.paths) and len(first.paths) == 70
    assert "rows/part-00000003-000000.txt" in keys("rows/")
    per_row.collect_batch(values)
    assert len(keys("rows/")) == 70  # rerun: the same keys, overwritten
    per_row.collect_batch(values[:5])
    assert len(keys("rows/")) == 5  # overwrite: the earlier run's other objects are gone
    appended = doc.write_sink(dflow.S3FileSink("s3://modes/rows", mode="append"), doc["x"])
    appended.collect_batch(values[:5])
    assert len(keys("rows/")) == 10
    with pytest.raises(FileExistsError):
        doc.write_sink(dflow.S3FileSink("s3://modes/rows", mode="error_if_exists"), doc["x"]).collect("v")
    assert len(keys("rows/")) == 10
    batched = _chunk_sink(dflow.S3FileSink("s3://modes/batches"))
    batched.collect_batch(URLS[:20])
    batched.collect_batch(URLS[:20])
    bodies = [client.get_object(Bucket="modes", Key=k)["Body"].read().decode() for k in keys("batches/")]
    assert sum(len(b.splitlines()) for b in bodies) == 60


def test_lancedb_modes(tmp_path):
    pytest.importorskip("lancedb")
    import lancedb

    doc = dflow.Flow("text", str)
    doc["vector"] = doc["text"].run_python(lambda t: [float(len(t)), 1.0], return_type=dflow.Embedding[2])
    uri = str(tmp_path / "db")

    def run(mode, n):
        sink = dflow.LanceDBSink(uri, "docs", mode=mode)
        return doc.write_sink(sink, {"text": doc["text"], "vector": doc["vector"]}).collect_batch(
            [f"t{i}" for i in range(n)])

    run("overwrite", 10)
    run("overwrite", 10)
    assert lancedb.connect(uri).open_table("docs").count_rows() == 10
    run("append", 5)
    assert lancedb.connect(uri).open_table("docs").count_rows() == 15
    with pytest.raises(FileExistsError, match="already exists"):
        run("error_if_exists", 3)
    assert lancedb.connect(uri).open_table("docs").count_rows() == 15


class BrokenSink(dflow.Sink):
    """A sink whose every write fails (a database that is down)."""

    def __repr__(self):
        return "BrokenSink()"

    def write(self, rows):
        raise ConnectionError("database is down")


@pytest.mark.parametrize("broken_first", [True, False])
def test_a_failing_sink_does_not_touch_the_other_sinks_of_a_multisink(tmp_path, broken_first):
    doc = dflow.Flow("url", str)
    doc["document"] = doc["url"].run_python(lambda u: " ".join(f"{u}-w{i}" for i in range(60)), return_type=str)
    chunks = doc["document"].chunk_text(max_chars=200, overlap=0)
    good = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "good")), {"chunk": chunks["chunk"]})
    broken = chunks.write_sink(BrokenSink(), chunks["chunk"])
    broken._writer.backoff = Backoff(initial=0.001, maximum=0.001)
    sinks = [broken, good] if broken_first else [good, broken]
    results = dflow.Multisink(sinks).collect_batch(URLS[:20], on_error="return")
    bad_result, good_result = results if broken_first else results[::-1]
    assert good_result.rows_written == 60 and not good_result.failures
    assert len(_rows(tmp_path / "good")) == 60  # the report matches the files
    assert bad_result.rows_written == 0 and len(bad_result.failures) == 60
    failure = bad_result.failures[0]
    assert isinstance(failure.error, dflow.SinkWriteError) and isinstance(failure.error.__cause__, ConnectionError)
    assert failure.op == "write_sink(BrokenSink())" and failure.field == "written_to"
    assert {f.input_index for f in bad_result.failures} == set(range(20))
    failed = [op for op in dflow.last_run().ops.values() if op.rows_failed]  # the run report agrees
    assert len(failed) == 1 and failed[0].rows_failed == 60 and failed[0].failures_by_type == {"SinkWriteError": 60}
    accounting = dflow.last_run().accounting  # unwritten chunks are failed chunks; their documents succeeded
    assert accounting["url.chunks"]["failed"] == 60 and accounting["url.chunks"]["succeeded"] == 0, accounting
    assert accounting["url"]["succeeded"] == 20, accounting
    # With on_error="raise" the results still come back, on the error.
    with pytest.raises(dflow.FlowRunError, match="20 of 20 inputs had rows that were not written") as info:
        dflow.Multisink(sinks).collect_batch(URLS[:20])
    assert [r.rows_written for r in info.value.results] == ([0, 60] if broken_first else [60, 0])


def test_a_sink_flow_run_from_several_threads_never_loses_rows(tmp_path):
    gate = threading.Barrier(4)

    def slow(x: str) -> str:
        threading.Event().wait(0.002)
        return x

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(slow)
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path), mode="append"), {"x": doc["x"]})
    outcomes: dict[int, object] = {}

    def go(t):
        gate.wait()
        try:
            outcomes[t] = write.collect_batch([f"t{t}-{i}" for i in range(300)])
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            outcomes[t] = e

    threads = [threading.Thread(target=go, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = {t: r for t, r in outcomes.items() if isinstance(r, dflow.SinkResult)}
    refused = {t: r for t, r in outcomes.items() if not isinstance(r, dflow.SinkResult)}
    assert done and all(isinstance(e, SinkBusyError) and "Nothing was written" in str(e) for e in refused.values())
    on_disk = sorted(r["x"] for r in _rows(tmp_path))
    assert on_disk == sorted(f"t{t}-{i}" for t in done for i in range(300))
    assert all(r.rows_written == 300 for r in done.values())


def test_in_memory_sinks_keep_per_run_state_across_threads():
    doc = dflow.Flow("x", int)
    write = doc.write_sink(dflow.ArrowSink(), {"x": doc["x"]})
    results: dict[int, object] = {}

    def go(t):
        results[t] = write.collect_batch(range(t * 1000, t * 1000 + 500)).data

    threads = [threading.Thread(target=go, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t, table in results.items():
        assert sorted(table.column("x").to_pylist()) == list(range(t * 1000, t * 1000 + 500))


def test_two_sinks_on_one_target_are_refused_before_writing(tmp_path):
    doc = dflow.Flow("x", str)
    a = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), doc["x"])
    b = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), {"again": doc["x"]})
    with pytest.raises(SinkBusyError, match="another sink of this run"):
        dflow.Multisink([a, b]).collect("v")
    assert os.listdir(tmp_path) == []
    assert a.collect("v").rows_written == 1  # the claim was released


def test_json_output_is_valid_json(tmp_path):
    doc = dflow.Flow("x", float)
    doc["info"] = doc["x"].run_python(lambda x: {"x": x, "list": [x, 1.0]}, return_type=dflow.JSON)
    doc["raw"] = doc["x"].run_python(lambda x: {"n": x})  # untyped, but JSON-able
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), {"x": doc["x"], "info": doc["info"],
                                                                "raw": doc["raw"]})
    write.collect_batch([1.5, math.nan, math.inf, -math.inf])
    rows = sorted(_rows(tmp_path), key=lambda r: (r["x"] is None, r["x"] or 0))
    assert rows[0] == {"x": 1.5, "info": {"x": 1.5, "list": [1.5, 1.0]}, "raw": {"n": 1.5}}
    assert all(r["x"] is None and r["info"] == {"x": None, "list": [None, 1.0]} for r in rows[1:])


class Opaque:
    pass


def test_untyped_fields_ask_for_a_type(tmp_path):
    doc = dflow.Flow("x", str)
    doc["obj"] = doc["x"].run_python(lambda x: Opaque())  # no return type: Python objects
    with pytest.raises(TypeError, match="column 'obj' has no type.*return_type="):
        doc.write_sink(dflow.ParquetSink(str(tmp_path / "pq")), {"obj": doc["obj"]})
    with pytest.raises(TypeError, match="has no type"):
        doc.write_sink(dflow.ArrowSink(), {"obj": doc["obj"]})
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "js")), {"x": doc["x"], "obj": doc["obj"]})
    result = write.collect_batch(["a", "b"], on_error="return")
    assert result.rows_written == 0 and len(result.failures) == 2
    message = str(result.failures[0].error)
    assert "column 'obj'" in message and "Opaque cannot be written as JSON" in message and "(not retried)" in message


class CloseFails(dflow.Sink):
    def __repr__(self):
        return "CloseFails()"

    def write(self, rows):
        return ["nowhere"] * len(rows)

    def close(self):
        raise OSError("flush failed")


def test_every_sink_is_closed_even_when_one_fails_to_close(tmp_path):
    closed = []

    class Recording(dflow.ArrowSink):
        def close(self):
            closed.append(True)

    doc = dflow.Flow("x", int)
    multi = dflow.Multisink([doc.write_sink(CloseFails(), doc["x"]), doc.write_sink(Recording(), doc["x"])])
    with pytest.raises(OSError, match="flush failed"):
        multi.collect(1)
    assert closed == [True]


def test_sink_flow_stream_lineage_and_failures(tmp_path):
    doc = dflow.Flow("x", int)
    doc["y"] = doc["x"].run_python(lambda x: 10 // (x % 4), return_type=int)
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), {"y": doc["y"]})
    stream = write.stream(range(8), on_error="skip", lineage=True)
    rows = list(stream)
    assert [r["_input_index"] for r in rows] == [1, 2, 3, 5, 6, 7]
    assert all(r["written_to"].endswith(".jsonl") and len(r["_row_id"]) == 16 for r in rows)
    assert sorted(f.input_index for f in stream.failures) == [0, 4]
    with pytest.raises(ZeroDivisionError):
        list(write.stream(range(8)))
