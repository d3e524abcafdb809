"""Rows as Python objects: one native pass from the batch's columns (and the caller's own inputs)."""
from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow import _core


def test_rows_decode_every_fast_type_with_nulls():
    fields = [pa.array(["a", "é", None, ""], type=pa.large_string()),
              pa.array([b"x", None, b"", b"\x00"], type=pa.large_binary()),
              pa.array([1, None, -3, 2**62]), pa.array([0.5, None, float("inf"), -0.0]), pa.array([True, False, None, True])]
    rows = _core.rows(["s", "b", "i", "f", "t"], fields, 4)
    assert rows == [{"s": "a", "b": b"x", "i": 1, "f": 0.5, "t": True},
                    {"s": "é", "b": None, "i": None, "f": None, "t": False},
                    {"s": None, "b": b"", "i": -3, "f": float("inf"), "t": None},
                    {"s": "", "b": b"\x00", "i": 2**62, "f": -0.0, "t": True}]
    assert all(type(r["s"]) in (str, type(None)) for r in rows)


def test_rows_take_python_values_and_input_objects():
    inputs = ["zero", "one", "two", "three"]
    index = np.array([3, 1], dtype=np.int64)
    rows = _core.rows(["x", "v"], [(inputs, 0, index, pa.array(["three", "one"], type=pa.large_string())),
                                   [{"k": 1}, [2]]], 2)
    assert rows == [{"x": "three", "v": {"k": 1}}, {"x": "one", "v": [2]}]
    assert rows[0]["x"] is inputs[3]  # the caller's object, not a copy decoded from Arrow
    # An input that is not exactly of the field's type (a subclass, a coerced int) is decoded instead.
    class Tagged(str):
        pass

    rows = _core.rows(["x", "y"], [([Tagged("a")], 0, None, pa.array(["a"], type=pa.large_string())),
                                   ([1], 0, None, pa.array([1.0]))], 1)
    assert type(rows[0]["x"]) is str and type(rows[0]["y"]) is float


def test_rows_of_atomic_values_stay_out_of_the_cyclic_collector_until_a_container_goes_in():
    rows = _core.rows(["x"], [pa.array(["a"], type=pa.large_string())], 1)
    assert not gc.is_tracked(rows[0])
    rows[0]["child"] = [rows[0]]  # a cycle: the dict must be tracked again to be collectable
    assert gc.is_tracked(rows[0])
    assert gc.is_tracked(_core.rows(["v"], [[[1]]], 1)[0])


@pytest.mark.parametrize("names,fields,n,match", [
    (["a"], [], 0, "differ in length"),
    (["a"], [pa.array([1, 2])], 1, "wrong length"),
    (["a"], [[1, 2]], 1, "wrong length"),
    ([1], [[1]], 1, "must be str"),
    (["a"], [pa.array([[1]])], 1, "no fast conversion"),
    (["a"], [(["x"], 0, np.array([0.5]), pa.array(["x"], type=pa.large_string()))], 1, "int64"),
])
def test_rows_reject_malformed_fields(names, fields, n, match):
    with pytest.raises((TypeError, ValueError), match=match):
        _core.rows(names, fields, n)


def test_collect_batch_hands_back_the_callers_input_objects():
    xs = [f"row-{i}" for i in range(1000)]
    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(len, return_type=int)
    rows = flow.collect_batch(xs)
    assert all(r["x"] is x for r, x in zip(rows, xs))
    assert [r["n"] for r in rows] == [len(x) for x in xs]


def test_input_objects_line_up_when_rows_fail_or_are_filtered_out():
    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(lambda s: 1 // (len(s) - 1), return_type=int)  # "a" fails
    kept = flow.filter(flow["n"] >= 0)
    xs = ["a", "bb", "ccc", "a", "dddd"]
    assert [r["x"] if isinstance(r, dict) else None for r in kept.collect_batch(xs, on_error="return")] == \
        [None, "bb", "ccc", None, "dddd"]
    assert [r["x"] for r in kept.stream(xs, on_error="skip")] == ["bb", "ccc", "dddd"]


def test_child_rows_read_the_root_field_and_values_of_other_types_come_back_typed():
    doc = dflow.Flow("document", str)
    chunks = doc["document"].chunk_text(max_chars=10)
    chunks["doc"] = doc["document"]
    text = "hello world, this is text"
    rows = chunks.collect(text)
    assert [r["doc"] for r in rows] == [text] * len(rows)
    assert [type(r) for r in dflow.Flow("x", float).collect_batch([1, 2.5])] == [dict, dict]
    assert dflow.Flow("x", float).collect_batch([1, 2.5]) == [{"x": 1.0}, {"x": 2.5}]
    assert type(dflow.Flow("x", float).collect(1)["x"]) is float


def test_a_column_mixing_ascii_and_other_text_decodes_each_value_exactly():
    values = ["plain", "naïve", "", "日本語", "emoji 🙂", "ascii again", None, "Ωmega"]
    rows = _core.rows(["s"], [pa.array(values, type=pa.large_string())], len(values))
    assert [r["s"] for r in rows] == values
    # Invalid UTF-8 in a non-ASCII value is an error, not a silently garbled str.
    bad = pa.array([b"ok", b"\xff\xfe"], type=pa.large_binary()).cast(pa.large_string(), safe=False)
    with pytest.raises(UnicodeDecodeError):
        _core.rows(["s"], [bad], 2)


def test_child_rows_of_many_inputs_across_batches_keep_their_inputs_and_order():
    docs = [f"doc {i} " + "word " * (i % 7) * 40 for i in range(300)]  # some with no chunk boundary, some many
    chunks = dflow.Flow("document", str).chunk_text(max_chars=50, overlap=10)
    out = chunks.collect_batch(docs, batch_rows=16, progress=False)
    assert len(out) == len(docs)
    for doc, rows in zip(docs, out):
        assert [r["chunk_index"] for r in rows] == list(range(len(rows)))
        assert all(doc[r["start_offset"]:r["end_offset"]] == r["chunk"] for r in rows)
