"""Inputs from Arrow, daft DataFrames and globs."""
from __future__ import annotations

import pyarrow as pa
import pytest

import daft_flow as dflow


def _flow():
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].run_python(len, return_type=int)
    return doc


def test_arrow_table_batch_and_reader_inputs():
    table = pa.table({"id": [1, 2, 3], "text": ["a", "bb", "ccc"]})
    flow = _flow()
    expected = [{"text": t, "n": len(t)} for t in ["a", "bb", "ccc"]]
    assert flow.collect_batch(table) == expected  # the column named like the initial field
    assert flow.collect_batch(table.to_batches()[0]) == expected
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))
    assert list(flow.stream(reader)) == expected
    assert flow.collect_batch(pa.chunked_array([["a"], ["bb", "ccc"]])) == expected
    only = pa.table({"body": ["xy"]})  # no column named "text": the first column
    assert flow.collect_batch(only) == [{"text": "xy", "n": 2}]


def test_daft_dataframe_in_and_out():
    daft = pytest.importorskip("daft")
    df = daft.from_pydict({"url": ["a", "bbb", "cc"], "other": [1, 2, 3]})
    doc = dflow.Flow("url", str)
    doc["n"] = doc["url"].run_python(len, return_type=int)
    out = doc.collect_daft(df)
    assert isinstance(out, daft.DataFrame)
    result = out.where(daft.col("n") >= 2).sort("n").to_pydict()
    assert result == {"url": ["cc", "bbb"], "n": [2, 3]}
    chunks = doc["url"].chunk_text(max_chars=1, overlap=0)
    assert chunks.collect_daft(df).count_rows() == 6


def test_from_glob_local_and_file_urls(tmp_path):
    for name in ("b.md", "a.md", "c.txt"):
        (tmp_path / name).write_text(name)
    paths = dflow.from_glob(f"{tmp_path}/*.md")
    assert paths == [str(tmp_path / "a.md"), str(tmp_path / "b.md")]
    flow = dflow.Flow(str).open_file().read()
    assert [r["text"] for r in flow.collect_batch(dflow.from_glob(f"file://{tmp_path}/*.md"))] == ["a.md", "b.md"]


def test_from_glob_s3(s3):
    client = s3.client()
    client.create_bucket(Bucket="globbed")
    for key in ("docs/a.md", "docs/b.md", "docs/c.txt"):
        client.put_object(Bucket="globbed", Key=key, Body=key.encode())
    urls = dflow.from_glob("s3://globbed/docs/*.md")
    assert urls == ["s3://globbed/docs/a.md", "s3://globbed/docs/b.md"]
    assert [r["text"] for r in dflow.Flow(str).open_file().read().collect_batch(urls)] == ["docs/a.md", "docs/b.md"]


def test_daft_sink_yields_a_dataframe_to_continue_with():
    daft = pytest.importorskip("daft")
    doc = dflow.Flow("url", str)
    chunks = doc["url"].chunk_text(max_chars=2, overlap=0)
    chunks["n"] = chunks["chunk"].run_python(len, return_type=int)
    write = chunks.write_sink(dflow.DaftSink(), {"url": doc["url"], "chunk": chunks["chunk"], "n": chunks["n"]})
    result = write.collect_batch(daft.from_pydict({"url": ["abcd", "xyz"]}))
    df = result.data
    assert isinstance(df, daft.DataFrame) and result.rows_written == 4
    totals = df.groupby("url").agg(daft.col("n").sum()).sort("url").to_pydict()
    assert totals == {"url": ["abcd", "xyz"], "n": [4, 3]}
    table = chunks.write_sink(dflow.ArrowSink(), chunks["chunk"]).collect("hello").data
    assert table.column("chunk").to_pylist() == ["he", "ll", "o"]
