"""Hostile and edge inputs: nothing crashes, nothing hangs, nothing is silently lost."""
from __future__ import annotations

import json

import pytest

import daft_flow as dflow


def test_empty_inputs_and_everything_filtered():
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    none = doc.filter(doc["n"] > 1000)
    assert none.collect_batch([]) == []
    assert none.collect_batch(["a", "b"]) == []
    assert none.last_run().flows["text"].filtered == 2
    table = none.collect_arrow(["a"])
    assert table.num_rows == 0 and table.column_names == ["text", "n"]


def test_large_and_pathological_values():
    doc = dflow.Flow("text", str)
    doc["upper"] = doc["text"].str.upper()
    doc["runs"] = doc["text"].str.count_matches(r"(a|aa)+$")  # exponential for a backtracking engine
    big = "a" * 2_000_000 + "ß"
    out = doc.collect(big)
    assert out["upper"] == big.upper() and out["runs"] == 0
    deep = dflow.Flow("doc", str)
    deep["v"] = deep["doc"].json.get("a", int)
    rows = deep.collect_batch(["[" * 100_000 + "]" * 100_000, json.dumps({"a": 1})], on_error="return")
    assert isinstance(rows[0], dflow.RowFailure) and "nested too deeply" in str(rows[0].error)
    assert rows[1]["v"] == 1


def test_row_errors_name_the_op_and_field_and_keep_other_rows():
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].cast(int)
    rows = doc.collect_batch(["12", "twelve", " 7 "], on_error="return")
    assert [r["n"] if isinstance(r, dict) else None for r in rows] == [12, None, 7]
    failure = rows[1]
    assert isinstance(failure.error, ValueError)
    assert str(failure.error) == "invalid literal for int() with base 10: 'twelve'"
    assert (failure.op, failure.field, failure.input_index) == ("cast(int)", "n", 1)
    with pytest.raises(ValueError, match="twelve"):
        doc.collect("twelve")


def test_embedding_dimension_mismatch_fails_the_row():
    flow = dflow.Flow("i", int)
    flow["v"] = flow["i"].run_python(lambda i: [1.0] * (3 if i else 2), return_type=dflow.Embedding)
    flow["n"] = flow["v"].embedding.dot([1.0, 1.0, 1.0])
    rows = flow.collect_batch([0, 1], on_error="return")
    assert isinstance(rows[0], dflow.RowFailure) and "dimensions 2 and 3" in str(rows[0].error)
    assert rows[1]["n"] == 3.0
    with pytest.raises(TypeError, match="same dimension"):
        dflow.Flow("e", dflow.Embedding[4])["e"].embedding.cosine([1.0, 2.0])


def test_nan_and_null_semantics():
    flow = dflow.Flow("x", float | None)  # None is one of the inputs
    flow["eq"] = flow["x"] == flow["x"]
    flow["pos"] = flow["x"] > 0
    flow["kept"] = (flow["x"] > 0) | flow["x"].is_null()
    rows = flow.collect_batch([float("nan"), None, 1.0])
    assert [r["eq"] for r in rows] == [False, None, True]
    assert [r["pos"] for r in rows] == [False, None, True]
    assert [r["kept"] for r in rows] == [False, True, True]
    positive = flow.filter(flow["x"] > 0)
    assert [r["x"] for r in positive.collect_batch([float("nan"), None, 1.0, -1.0])] == [1.0]
