"""write_sink, the file/object/vector-DB sinks, Multisink and dflow.collect."""
from __future__ import annotations

import collections
import glob
import json
import os

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from daft_flow.retry import Backoff


def _doc_and_chunks():
    doc_flow = dflow.Flow("url", str)
    doc_flow["document"] = doc_flow["url"].run_python(lambda u: " ".join(f"{u}-w{i}" for i in range(120)),
                                                      return_type=str)
    chunk_flow = doc_flow["document"].chunk_text(max_chars=200, overlap=0)
    chunk_flow["summary"] = chunk_flow["chunk"].run_python(lambda c: c.split()[0], return_type=str)
    return doc_flow, chunk_flow


def _expected(urls):
    """(url, chunk_index, summary) of every chunk, computed without sinks."""
    _, chunk_flow = _doc_and_chunks()
    out = []
    for url, chunks in zip(urls, chunk_flow.collect_batch(urls)):
        out.extend((url, c["chunk_index"], c["summary"]) for c in chunks)
    return out


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _read_jsonl(directory):
    return [json.loads(line) for p in sorted(glob.glob(f"{directory}/*.jsonl")) for line in _lines(p)]


def test_json_file_sink_writes_every_row_once_in_rolled_files(tmp_path):
    doc_flow, chunk_flow = _doc_and_chunks()
    out = tmp_path / "summaries"
    write = chunk_flow.write_sink(dflow.JSONFileSink(str(out), rows_per_file=50),
                                  {"url": doc_flow["url"], "chunk_index": chunk_flow["chunk_index"],
                                   "summary": chunk_flow["summary"]})
    urls = [f"doc{i}" for i in range(40)]
    result = write.collect_batch(urls)
    expected = _expected(urls)
    assert isinstance(result, dflow.SinkResult) and result.rows_written == len(expected) and not result.failures
    rows = _read_jsonl(out)
    assert collections.Counter((r["url"], r["chunk_index"], r["summary"]) for r in rows) == collections.Counter(expected)
    files = sorted(glob.glob(f"{out}/*.jsonl"))
    assert result.paths == files and len(files) >= -(-len(expected) // 50)
    assert all(len(_lines(p)) <= 50 for p in files)
    assert "write_sink(JSONFileSink(" in write.explain()
    # A second run (mode="overwrite", the default) replaces the first run's files.
    again = write.collect("doc0")
    assert sorted(glob.glob(f"{out}/*.jsonl")) == again.paths and len(_read_jsonl(out)) == again.rows_written


def test_seed_writing_data_shape(tmp_path):
    doc_flow, chunk_flow = _doc_and_chunks()
    write = chunk_flow.write_sink(dflow.JSONFileSink(str(tmp_path)), {"url": doc_flow["url"],
                                                                      "summary": chunk_flow["summary"]})
    result = write.collect("https://example.org/a")
    assert result.rows_written == len(_read_jsonl(tmp_path)) > 1
    assert "row(s) written" in str(result)


def test_parquet_sink_and_typed_columns(tmp_path):
    doc = dflow.Flow("url", str)
    doc["n"] = doc["url"].run_python(len, return_type=int)
    doc["tags"] = doc["url"].run_python(lambda u: list(u), return_type=list[str])
    doc["vec"] = doc["url"].run_python(lambda u: [float(len(u))] * 4, return_type=dflow.Embedding[4])
    write = doc.write_sink(dflow.ParquetSink(str(tmp_path / "pq")), {"url": doc["url"], "n": doc["n"],
                                                                    "tags": doc["tags"], "vec": doc["vec"]})
    urls = [f"u{i}" for i in range(1000)]
    result = write.collect_batch(urls)
    assert result.rows_written == 1000
    table = pq.read_table(str(tmp_path / "pq"))
    assert sorted(table.column("url").to_pylist()) == sorted(urls)
    assert table.schema.field("vec").type.list_size == 4
    rows = {r["url"]: r for r in table.to_pylist()}
    assert rows["u12"]["n"] == 3 and rows["u12"]["tags"] == ["u", "1", "2"]
    assert not glob.glob(f"{tmp_path}/pq/.*.tmp")


class FlakySink(dflow.JSONFileSink):
    """Fault injection at the file: the first writes put half their data on disk, then fail."""

    def __init__(self, directory, failures):
        super().__init__(directory, rows_per_file=100)
        self.failures = failures

    def _write_lines(self, path, lines):
        if self.failures:
            self.failures -= 1
            with open(path, "w", encoding="utf-8") as f:  # a torn file where the sink would write
                f.write("".join(lines)[: sum(map(len, lines)) // 2])
            raise OSError(28, "injected: No space left on device")
        super()._write_lines(path, lines)


def test_write_errors_are_retried_without_duplicates(tmp_path):
    doc = dflow.Flow("x", str)
    sink = FlakySink(str(tmp_path), failures=2)
    write = doc.write_sink(sink, doc["x"])
    values = [f"v{i}" for i in range(300)]
    result = write.collect_batch(values)
    assert result.rows_written == 300 and not result.failures
    assert sorted(r["x"] for r in _read_jsonl(tmp_path)) == sorted(values)
    assert sink.failures == 2  # the run wrote through its own copy of the sink


class SecondFileFails(dflow.JSONFileSink):
    """A write split into two files fails at its second file, after the first one was written."""

    def _write_lines(self, path, lines):
        if path.endswith("-001.jsonl"):
            raise OSError(28, "injected: No space left on device")
        super()._write_lines(path, lines)


def test_a_write_that_fails_halfway_leaves_no_file(tmp_path):
    doc = dflow.Flow("x", str)
    write = doc.write_sink(SecondFileFails(str(tmp_path), rows_per_file=100), doc["x"])
    write._writer.backoff = Backoff(initial=0.001, maximum=0.001)
    values = [f"v{i}" for i in range(250)]
    result = write.collect_batch(values, on_error="return", first_batch_rows=64)
    failed = sorted(f.input_index for f in result.failures)
    assert failed and all(len(values[i]) for i in failed) and result.rows_written == 250 - len(failed)
    # Every row is in a file or failed, never both: the failed writes' first files were removed too.
    assert sorted(r["x"] for r in _read_jsonl(tmp_path)) == sorted(set(values) - {values[i] for i in failed})
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in result.paths)


def _read_only_dir(tmp_path):
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        return str(d / "out")
    probe = "/sys/daft_flow_sink_test"  # sysfs refuses new entries, even to root
    try:
        os.mkdir(probe)
    except OSError:
        return probe
    os.rmdir(probe)
    pytest.skip("no read-only directory available to root here")


def test_read_only_directory_is_retried_then_reported(tmp_path):
    doc = dflow.Flow("x", str)
    sink = dflow.JSONFileSink(_read_only_dir(tmp_path))
    write = doc.write_sink(sink, doc["x"])
    write._writer.backoff = Backoff(initial=0.001, maximum=0.001)
    values = [f"v{i}" for i in range(10)]
    result = write.collect_batch(values, on_error="return")
    assert result.rows_written == 0 and len(result.failures) == 10
    assert sorted(f.input_index for f in result.failures) == list(range(10))
    err = result.failures[0].error
    assert isinstance(err, dflow.SinkWriteError) and isinstance(err.__cause__, OSError)
    assert "after 4 attempts" in str(err) and "JSONFileSink" in str(err) and err.batch_size == 10
    with pytest.raises(dflow.FlowRunError, match="were not written") as info:
        write.collect("v0")
    assert info.value.results[0].failures[0].input_index == 0


def test_upstream_failures_are_reported_and_other_rows_written(tmp_path):
    doc = dflow.Flow("x", int)
    doc["y"] = doc["x"].run_python(lambda x: 10 // (x % 5), return_type=int)
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), {"x": doc["x"], "y": doc["y"]})
    result = write.collect_batch(range(20), on_error="return")
    assert result.rows_written == 16 and sorted(f.input_index for f in result.failures) == [0, 5, 10, 15]
    assert sorted(r["x"] for r in _read_jsonl(tmp_path)) == [x for x in range(20) if x % 5]


def test_multisink_and_collect_return_one_result_per_sink(tmp_path):
    doc_flow, chunk_flow = _doc_and_chunks()
    chunk_txt = chunk_flow.write_sink(dflow.JSONFileSink(str(tmp_path / "txt")), chunk_flow["chunk"])
    chunk_rows = chunk_flow.write_sink(dflow.ParquetSink(str(tmp_path / "pq")),
                                       {"document_url": doc_flow["url"], "chunk_start": chunk_flow["start_offset"],
                                        "chunk_end": chunk_flow["end_offset"], "summary": chunk_flow["summary"]})
    multi = dflow.Multisink([chunk_txt, chunk_rows])
    txt_results, pq_results = dflow.collect(multi, "https://www.wikipedia.com")
    n = len(_expected(["https://www.wikipedia.com"]))
    assert txt_results.rows_written == pq_results.rows_written == n
    assert len(_read_jsonl(tmp_path / "txt")) == n and pq.read_table(str(tmp_path / "pq")).num_rows == n
    assert dflow.collect(chunk_flow, "x") == chunk_flow.collect("x")


def test_write_sink_checks_its_arguments(tmp_path):
    doc_flow, chunk_flow = _doc_and_chunks()
    sink = dflow.JSONFileSink(str(tmp_path))
    with pytest.raises(TypeError, match="needs a sink"):
        chunk_flow.write_sink("out/", chunk_flow["chunk"])
    with pytest.raises(ValueError, match="neither flow"):
        doc_flow.write_sink(sink, {"chunk": chunk_flow["chunk"]})
    with pytest.raises(TypeError, match="column 'x' needs a field"):
        doc_flow.write_sink(sink, {"x": 3})
    with pytest.raises(TypeError, match="Multisink takes"):
        dflow.Multisink([chunk_flow])


def test_s3_file_sink_object_per_row(s3, tmp_path):
    client = s3.client()
    client.create_bucket(Bucket="out")
    doc_flow, chunk_flow = _doc_and_chunks()
    write = chunk_flow.write_sink(dflow.S3FileSink("s3://out/chunks"), chunk_flow["chunk"])
    result = write.collect_batch(["a", "b"])
    expected = [c["chunk"] for cs in chunk_flow.collect_batch(["a", "b"]) for c in cs]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="out", Prefix="chunks/")["Contents"]]
    assert result.rows_written == len(expected) == len(keys) == len(result.paths)
    bodies = [client.get_object(Bucket="out", Key=k)["Body"].read().decode() for k in keys]
    assert sorted(bodies) == sorted(expected)
    batched = chunk_flow.write_sink(dflow.S3FileSink("s3://out/rows"), {"url": doc_flow["url"],
                                                                         "chunk": chunk_flow["chunk"]})
    assert batched.collect("a").rows_written == len(chunk_flow.collect("a"))


def test_lancedb_sink(tmp_path):
    pytest.importorskip("lancedb")
    import lancedb

    doc = dflow.Flow("text", str)
    doc["vector"] = doc["text"].run_python(lambda t: [float(len(t)), 1.0, 0.0], return_type=dflow.Embedding[3])
    write = doc.write_sink(dflow.LanceDBSink(str(tmp_path / "db"), "docs"), {"text": doc["text"],
                                                                             "vector": doc["vector"]})
    texts = [f"t{'x' * i}" for i in range(100)]
    assert write.collect_batch(texts).rows_written == 100
    table = lancedb.connect(str(tmp_path / "db")).open_table("docs")
    assert table.count_rows() == 100
    hit = table.search([5.0, 1.0, 0.0]).limit(1).to_list()[0]
    assert hit["text"] == "txxxx"


def test_multisink_runs_shared_ops_once_and_reports_per_sink(tmp_path):
    calls = collections.Counter()

    def fetch(url: str) -> str:
        calls[url] += 1
        if url == "bad":
            raise ValueError("cannot fetch bad")
        return " ".join(f"{url}-w{i}" for i in range(120))

    doc_flow = dflow.Flow("url", str)
    doc_flow["document"] = doc_flow["url"].run_python(fetch)
    chunk_flow = doc_flow["document"].chunk_text(max_chars=200, overlap=0)
    per_doc = doc_flow.write_sink(dflow.JSONFileSink(str(tmp_path / "docs")), doc_flow["url"])
    per_chunk = chunk_flow.write_sink(dflow.ParquetSink(str(tmp_path / "chunks")),
                                      {"url": doc_flow["url"], "chunk": chunk_flow["chunk"]})
    urls = ["a", "bad", "c"]
    docs, chunks = dflow.Multisink([per_doc, per_chunk]).collect_batch(urls, on_error="return")
    assert calls == {"a": 1, "bad": 1, "c": 1}  # one pass for both sinks
    n_chunks = len(chunk_flow.collect("a")) * 2
    assert docs.rows_written == 2 and chunks.rows_written == n_chunks
    assert sorted(r["url"] for r in _read_jsonl(tmp_path / "docs")) == ["a", "c"]
    assert pq.read_table(str(tmp_path / "chunks")).num_rows == n_chunks
    for result in (docs, chunks):
        (failure,) = result.failures
        assert failure.input_index == 1 and isinstance(failure.error, ValueError)
    with pytest.raises(dflow.FlowRunError, match="were not written") as info:
        dflow.Multisink([per_doc, per_chunk]).collect("bad")
    assert len(info.value.results) == 2
    with pytest.raises(ValueError, match="appears twice"):
        dflow.Multisink([per_doc, per_doc]).collect("a")


def test_s3_500s_are_retried_then_reported(s3, monkeypatch):
    from servers_fixture import FaultProxy

    client = s3.client()
    client.create_bucket(Bucket="flaky")
    doc = dflow.Flow("x", str)
    with FaultProxy(s3.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # leave retrying to the sink, so the count is ours
        budget = {"n": 3}

        def fail(method, path):  # the first three uploads fail, then S3 recovers
            if method == "PUT" and path.startswith("/flaky/") and budget["n"] > 0:
                budget["n"] -= 1
                return True
            return False

        proxy.fail = fail
        write = doc.write_sink(dflow.S3FileSink("s3://flaky/rows"), doc["x"])
        write._writer.backoff = Backoff(initial=0.001, maximum=0.001)
        values = [f"v{i}" for i in range(5)]
        result = write.collect_batch(values)
        assert result.rows_written == 5 and proxy.failed >= 1
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="flaky", Prefix="rows/")["Contents"]]
        bodies = sorted(client.get_object(Bucket="flaky", Key=k)["Body"].read().decode() for k in keys)
        assert bodies == values  # each row once, although some uploads were retried

        proxy.fail = lambda method, path: method == "PUT" and path.startswith("/flaky/")  # S3 stays down
        result = write.collect_batch(values, on_error="return")
        assert result.rows_written == 0 and sorted(f.input_index for f in result.failures) == list(range(5))
        assert all(isinstance(f.error, dflow.SinkWriteError) for f in result.failures)
        assert "S3FileSink('s3://flaky/rows')" in str(result.failures[0].error)


def test_sink_flow_stream_writes_as_rows_finish(tmp_path):
    doc = dflow.Flow("x", str)
    write = doc.write_sink(dflow.JSONFileSink(str(tmp_path)), doc["x"])
    rows = list(write.stream([f"v{i}" for i in range(100)], ordered=False))
    assert len(rows) == 100 and all(r["written_to"].endswith(".jsonl") for r in rows)
    assert sorted(r["x"] for r in _read_jsonl(tmp_path)) == sorted(f"v{i}" for i in range(100))


def test_sink_plans_round_trip_through_the_ir(tmp_path):
    from daft_flow.plan.serialize import read_plan
    from daft_flow.plan.trace import trace

    doc_flow, chunk_flow = _doc_and_chunks()
    write = chunk_flow.write_sink(dflow.JSONFileSink(str(tmp_path)), {"url": doc_flow["url"],
                                                                      "chunk": chunk_flow["chunk"]})
    write.collect("a")  # a sink that has run (and held an open file) still pickles
    traced = trace(write.rows)
    assert trace(dflow.SinkFlow.from_bytes(write.to_bytes()).rows).plan == traced.plan
    remote = read_plan(write.to_bytes())
    node = next(n for n in remote.plan.nodes if n.python_udf.builtin == "write_sink")
    assert node.python_udf.builtin_detail == f"JSONFileSink({str(tmp_path)!r})"
    writer = remote.objects[node.python_udf.fn_ref]
    assert isinstance(writer.sink, dflow.JSONFileSink) and writer.sink.directory == str(tmp_path)
    assert f"write_sink(JSONFileSink({str(tmp_path)!r})) [batch]" in write.explain()
