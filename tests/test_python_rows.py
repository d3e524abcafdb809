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


def _results_flow(fn, return_type=str) -> dflow.Flow:
    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(fn, return_type=return_type)
    return flow


def test_rows_hold_the_objects_the_row_function_returned():
    made: dict[str, str] = {}

    def shout(s: str) -> str:
        made[s] = s.upper() + "!"
        return made[s]

    xs = [f"row-{i}" for i in range(3000)]
    flow = _results_flow(shout)
    for run in (flow.collect_batch, lambda xs, **kw: list(flow.stream(xs, **kw))):
        rows = run(xs, batch_rows=700)
        assert all(r["y"] is made[x] for r, x in zip(rows, xs))
    assert flow.collect("abc")["y"] is made["abc"]
    # Arrow results are the same values.
    assert flow.collect_arrow(xs).column("y").to_pylist() == [made[x] for x in xs]


def test_kept_results_are_released_with_their_batch():
    import sys

    flow = _results_flow(lambda s: s + "!")
    rows = flow.collect_batch([f"r{i}" for i in range(500)])
    assert all(sys.getrefcount(r["y"]) == 2 for r in rows)  # the row's dict (and getrefcount's argument)
    with flow.stream([f"s{i}" for i in range(5000)], batch_rows=100) as stream:
        first = next(stream)["y"]
    gc.collect()
    assert sys.getrefcount(first) == 2


def test_kept_results_line_up_with_failures_filters_nulls_and_coercions():
    class Tagged(str):
        pass

    def fn(s: str) -> object:
        if s == "boom":
            raise ValueError("boom")
        return {"none": None, "int": 7, "tag": Tagged("tagged"), "surrogate": "\ud800"}.get(s, s * 2)

    flow = _results_flow(fn)
    kept = flow.filter(flow["x"] != "drop")
    xs = ["a", "boom", "none", "drop", "int", "tag", "surrogate", "b"]
    out = kept.collect_batch(xs, on_error="return")
    assert [r["y"] if isinstance(r, dict) else type(r).__name__ for r in out] == \
        ["aa", "RowFailure", None, "RowFailure", "tagged", "RowFailure", "bb"]
    assert type(out[4]["y"]) is str  # a subclass comes back as the field's type, as from Arrow
    streamed = list(kept.stream(xs, on_error="skip"))
    assert [r["y"] for r in streamed] == ["aa", None, "tagged", "bb"]
    arrow = kept.collect_arrow(xs, on_error="skip")
    assert arrow.column("y").to_pylist() == ["aa", None, "tagged", "bb"]


def test_kept_results_of_other_types_and_of_parent_and_child_levels():
    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(lambda s: len(s) if s != "ab" else np.int64(2), return_type=int)
    flow["half"] = flow["x"].run_python(lambda s: len(s) / 2 if len(s) != 3 else 1, return_type=float)
    flow["long"] = flow["x"].run_python(lambda s: len(s) > 3 if s != "ab" else np.bool_(True), return_type=bool)
    flow["raw"] = flow["x"].run_python(str.encode, return_type=bytes)
    rows = flow.collect_batch(["ab", "abc", "abcd"])
    assert rows == [{"x": "ab", "n": 2, "half": 1.0, "long": True, "raw": b"ab"},
                    {"x": "abc", "n": 3, "half": 1.0, "long": False, "raw": b"abc"},
                    {"x": "abcd", "n": 4, "half": 2.0, "long": True, "raw": b"abcd"}]
    # Values the field's type was made of (numpy scalars, an int for a float) come back as that type.
    assert [tuple(type(v) for v in r.values()) for r in rows] == [(str, int, float, bool, bytes)] * 3

    made: list[str] = []

    def keep(value: str) -> str:
        made.append(value)
        return value

    doc = dflow.Flow("doc", str)
    doc["title"] = doc["doc"].run_python(lambda s: keep(s.split()[0].title()), return_type=str)
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str])
    words["upper"] = words["item"].run_python(lambda s: keep(s.upper()), return_type=str)
    out = words.collect_batch(["one two", "three"], include_parents=["title"])
    assert [[(r["item"], r["upper"], r["title"]) for r in group] for group in out] == \
        [[("one", "ONE", "One"), ("two", "TWO", "One")], [("three", "THREE", "Three")]]
    # A parent's value is its row function's object in every child row; the child's its own.
    made_ids = {id(v) for v in made}
    assert all(id(r["upper"]) in made_ids and id(r["title"]) in made_ids for group in out for r in group)


def test_kept_results_of_retried_rows_are_those_of_the_attempt_that_succeeded():
    attempts: dict[str, int] = {}

    def flaky(s: str) -> str:
        attempts[s] = attempts.get(s, 0) + 1
        if s.endswith("3") and attempts[s] == 1:
            raise ConnectionError("first attempt fails")
        return f"{s}#{attempts[s]}"

    flow = dflow.Flow("x", str).with_policy(retry=dflow.Retry(max_attempts=2, initial_delay=0.001))
    flow["y"] = flow["x"].run_python(flaky, return_type=str)
    xs = [f"x{i}" for i in range(20)]
    assert [r["y"] for r in flow.collect_batch(xs, batch_rows=4)] == \
        [f"x{i}#2" if i % 10 == 3 else f"x{i}#1" for i in range(20)]


def test_a_stream_keeps_no_more_new_result_objects_per_batch_than_a_slice_holds():
    from daft_flow.execution.results import SLICE_BYTES

    made: list[str] = []

    def big(s: str) -> str:
        made.append(s * (SLICE_BYTES // 8))  # eight rows of a batch hold more than a slice
        return made[-1]

    flow = _results_flow(big)
    rows = list(flow.stream([f"{i:02d}" for i in range(16)], batch_rows=16))
    assert [r["y"] for r in rows] == made
    assert not any(r["y"] is m for r, m in zip(rows, made))  # decoded a slice at a time instead
    rows = flow.collect_batch([f"{i:02d}" for i in range(16)], batch_rows=16)
    assert all(r["y"] is m for r, m in zip(rows, made[16:]))  # collect_batch keeps every row anyway


# -- the interpreter's arenas faulted in ahead (cpp/bindings/arena_prefault.cc) ----------------------

def test_large_runs_take_prefaulted_arenas_and_hold_none_after():
    def tag(s: str) -> str:
        return s + "!"

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(tag)
    xs = [f"row-{i}" for i in range(200_000)]  # batches up to 40k rows: ~15 MB of dicts each
    before = _core.arena_prefault_stats()
    rows = flow.collect_batch(xs)
    after = _core.arena_prefault_stats()
    assert rows[:2] == [{"x": "row-0", "y": "row-0!"}, {"x": "row-1", "y": "row-1!"}]
    assert rows[-1] == {"x": "row-199999", "y": "row-199999!"} and len(rows) == len(xs)
    assert after["installed"] and after["taken"] >= before["taken"]
    # (Whether new arenas were asked for depends on what earlier tests left free in this process:
    # a fresh interpreter checks that below.)
    assert after["ready"] == 0  # nothing is held once the run is over
    streamed = list(flow.stream(xs))
    assert streamed == rows and _core.arena_prefault_stats()["ready"] == 0
    del rows, streamed
    gc.collect()  # arenas the pool handed out go back to the kernel through it


def test_small_runs_start_no_prefault_and_the_switch_turns_it_off(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import daft_flow as dflow
        from daft_flow import _core

        def tag(s: str) -> str:
            return s + "!"

        flow = dflow.Flow("x", str)
        flow["y"] = flow["x"].run_python(tag)
        assert flow.collect_batch(["a", "b"]) == [{"x": "a", "y": "a!"}, {"x": "b", "y": "b!"}]
        small = _core.arena_prefault_stats()["installed"]
        rows = flow.collect_batch([str(i) for i in range(200_000)])
        assert rows[-1] == {"x": "199999", "y": "199999!"}
        stats = _core.arena_prefault_stats()
        # a fresh interpreter: ~40 MB of new objects took new arenas while the session was open
        assert not stats["installed"] or (stats["taken"] + stats["missed"] > 0 and stats["ready"] == 0), stats
        print(small, stats["installed"])
    """)
    root = str(pathlib.Path(dflow.__file__).resolve().parents[1])
    for switch, expected in (("1", "False True"), ("0", "False False")):
        env = dict(os.environ, PYTHONPATH=root, DFLOW_PREFAULT_ARENAS=switch)
        proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == expected.split()


def test_short_results_copied_at_once_keep_their_bytes_and_order():
    # Results of 64 bytes or less are copied when returned, longer ones when the batch is built;
    # an empty value may come first (before any copy was made).
    values = ["", "a", "é" * 40, "x" * 65, "", "ü", "y" * 64]

    def pick(i: int) -> str:
        return values[i]

    def pick_bytes(i: int) -> bytes:
        return values[i].encode()

    flow = dflow.Flow("i", int)
    flow["s"] = flow["i"].run_python(pick)
    flow["b"] = flow["i"].run_python(pick_bytes)
    table = flow.collect_arrow(range(len(values)))
    assert table.column("s").to_pylist() == values
    assert table.column("b").to_pylist() == [v.encode() for v in values]
    assert [r["s"] for r in flow.collect_batch(range(len(values)))] == values
