"""filter, select, exclude, limit and show in runs: filtered rows are counted, never failures, and
nothing downstream runs for them; limit reads no further than it needs."""
from __future__ import annotations

import itertools
import threading

import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow.plan.trace import trace


def counting(fn, calls):
    lock = threading.Lock()

    def run(x):
        with lock:
            calls.append(x)
        return fn(x)
    return run


def test_filter_drops_rows_counts_them_and_never_runs_later_ops_for_them():
    calls = []
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    kept = doc.filter(doc["n"] > 3)
    kept["shout"] = kept["text"].run_python(counting(str.upper, calls), return_type=str)
    texts = ["long enough", "ab", "", "four", "xyz"]
    assert kept.collect_batch(texts) == [{"text": "long enough", "n": 11, "shout": "LONG ENOUGH"},
                                         {"text": "four", "n": 4, "shout": "FOUR"}]
    assert sorted(calls) == ["four", "long enough"]
    report = kept.last_run()
    assert report.inputs == 5
    stage = report.ops["n"]  # the fused stage (len, >, filter) is reported under its first field
    assert (stage.op, stage.rows_in, stage.rows_out, stage.rows_failed) == ("expressions", 5, 2, 0)
    assert report.accounting["text"] == {"rows": 5, "succeeded": 2, "failed": 0, "dead_lettered": 0, "skipped": 0,
                                         "filtered": 3}
    assert kept.collect("ab") is None
    # The unfiltered flow is unchanged.
    assert len(doc.collect_batch(texts)) == 5


def test_filtered_inputs_are_absent_and_failures_stay_in_place():
    doc = dflow.Flow("x", int)
    doc["inv"] = 100 // doc["x"]
    kept = doc.filter(doc["x"] != 1)
    results = kept.collect_batch([1, 0, 5, 1, 2], on_error="return")
    assert [r["inv"] if isinstance(r, dict) else type(r.error) for r in results] == [ZeroDivisionError, 20, 50]
    with pytest.raises(dflow.FlowRunError) as e:
        kept.collect_batch([1, 0, 5])
    assert e.value.results == [None, {"x": 5, "inv": 20}]
    assert e.value.failed_inputs == [1]
    assert str(e.value.failures[0].error) == "integer division or modulo by zero"
    assert e.value.failures[0].op == "//" and e.value.failures[0].field == "inv"


def test_children_of_filtered_rows_are_never_made():
    calls = []
    doc = dflow.Flow("text", str)
    kept = doc.filter(doc["text"].str.starts_with("keep"))
    chunks = kept.chunk_text(max_chars=8, overlap=0)
    chunks["seen"] = chunks["chunk"].run_python(counting(len, calls), return_type=int)
    out = chunks.collect_batch(["keep this one please", "drop this one please", "keep"])
    unfiltered = doc.chunk_text(max_chars=8, overlap=0).collect_batch(["keep this one please", "keep"])
    assert [[r["chunk"] for r in rows] for rows in out] == [[r["chunk"] for r in unfiltered[0]], [], ["keep"]]
    assert sorted(calls) == sorted(r["chunk"] for rows in unfiltered for r in rows)
    flows = chunks.last_run().flows
    assert flows["text"].filtered == 1 and flows["text"].failed == 0
    assert flows["text.chunks"].filtered == 0 and flows["text.chunks"].succeeded == len(calls)


def test_filter_on_a_child_flow_and_in_chains():
    words = dflow.Flow("text", str)["text"].flat_map(str.split, return_type=list[str], field="word")
    long_words = words.filter(words["word"].str.len() >= 4)
    long_words["upper"] = long_words["word"].str.upper()
    assert long_words.collect("a tiny bit of text here") == [{"word": "tiny", "upper": "TINY"},
                                                              {"word": "text", "upper": "TEXT"},
                                                              {"word": "here", "upper": "HERE"}]
    outer = dflow.Flow(str).run_python(lambda s: s + " extra words", return_type=str).chain(long_words)
    assert [r["upper"] for r in outer.collect("some")] == ["SOME", "EXTRA", "WORDS"]


def test_select_and_exclude():
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    doc["lower"] = doc["text"].str.lower()
    assert doc.select("lower", "n").collect("AbC") == {"lower": "abc", "n": 3}
    assert doc.select(doc["n"], twice=doc["n"] * 2).collect("AbC") == {"n": 3, "twice": 6}
    assert doc.exclude("text", "lower").collect("AbC") == {"n": 3}
    # Only what the selected fields need is computed.
    assert "lower" not in doc.select("n").explain()


def test_limit_on_an_endless_generator_returns_n_rows():
    flow = dflow.Flow("i", int)
    flow["sq"] = flow["i"] * flow["i"]
    rows = flow.limit(10).collect_batch(itertools.count())
    assert [r["sq"] for r in rows] == [i * i for i in range(10)]
    read = []

    def source():
        for i in itertools.count():
            read.append(i)
            yield i

    assert len(flow.limit(3).collect_batch(source())) == 3
    assert len(read) == 3  # limit before any filter reads exactly n inputs
    evens = flow.filter(flow["i"] % 2 == 0).limit(4)
    assert [r["i"] for r in evens.collect_batch(itertools.count())] == [0, 2, 4, 6]
    assert [r["i"] for r in evens.stream(itertools.count())] == [0, 2, 4, 6]
    assert flow.limit(0).collect_batch(itertools.count()) == []


def test_limit_on_child_flows():
    chunks = dflow.Flow("text", str).chunk_text(max_chars=4, overlap=0)
    assert [r["chunk"] for r in chunks.limit(3).stream(itertools.repeat("abcdefgh"))] == ["abcd", "efgh", "abcd"]
    docs = dflow.Flow("text", str)
    firsts = docs.limit(2).chunk_text(max_chars=4, overlap=0)
    assert firsts.collect_batch(itertools.repeat("abcdefgh")) == [[{"chunk": "abcd", "chunk_index": 0,
                                                                    "start_offset": 0, "end_offset": 4},
                                                                   {"chunk": "efgh", "chunk_index": 1,
                                                                    "start_offset": 4, "end_offset": 8}]] * 2
    filtered = docs.filter(docs["text"].str.len() > 2).limit(2).chunk_text(max_chars=4)
    with pytest.raises(ValueError, match="limit\\(\\) on flow 'text' after filter\\(\\)"):
        filtered.collect("abc")


def test_show_prints_a_table(capsys):
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    doc.filter(doc["n"] > 1).show(["a", "bb", "a much longer line of text that will be cut at forty chars", "cc\nd"],
                                  n=2)
    assert capsys.readouterr().out.splitlines() == [
        "+------------------------------------------+----+",
        "| text                                     | n  |",
        "+==========================================+====+",
        "| bb                                       | 2  |",
        "| a much longer line of text that will be… | 58 |",
        "+------------------------------------------+----+",
        "(2 rows)",
    ]


def test_plans_carry_expressions_filters_and_limits():
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    kept = doc.filter((doc["n"] > 3) & doc["text"].str.contains(r"\d", regex=True)).limit(5)
    kept["code"] = kept["text"].str.extract(r"(\d+)").cast(int) * 2
    traced = trace(kept)
    again = dflow.Flow.from_bytes(kept.to_bytes())
    assert again.fingerprint() == kept.fingerprint() and trace(again).plan.nodes == traced.plan.nodes
    assert again.collect_batch(["ab1", "order 12"]) == kept.collect_batch(["ab1", "order 12"])
    # What chooses the rows is part of the plan's identity; per-row values are not affected by it.
    assert doc.filter(doc["n"] > 4).fingerprint() != doc.filter(doc["n"] > 3).fingerprint()
    assert doc.limit(2).fingerprint() != doc.limit(3).fingerprint() != doc.fingerprint()
    assert (doc["n"] * 2).flow.fingerprint() == doc.fingerprint()
    text = kept.explain()
    assert "filter(#" in text and "str.extract(#0, '(\\\\d+)', 1)" in text and "at most 5 row(s)" in text
    assert "fused native stages" in text
    assert kept.collect_batch(["ab1", "order 12", "x 7 y", "none"]) == [
        {"text": "order 12", "n": 8, "code": 24}, {"text": "x 7 y", "n": 5, "code": 14}]


def test_expressions_read_parent_fields_and_arrow_inputs():
    doc = dflow.Flow("text", str)
    doc["title"] = doc["text"].str.split("\n").list.get(0)
    chunks = doc["text"].chunk_text(max_chars=12, overlap=0)
    chunks["labelled"] = doc["title"].str.upper() + ": " + chunks["chunk"]
    out = chunks.collect("Intro\nsome words here")
    assert len(out) > 1 and [r["labelled"] for r in out] == ["INTRO: " + r["chunk"] for r in out]
    flow = dflow.Flow("x", float | None)  # None inputs: the field is optional
    flow["y"] = (flow["x"] * 2).fill_null(-1.0)
    table = flow.collect_arrow(pa.table({"x": pa.array([1.5, None, 3.0])}))
    assert table.column("y").to_pylist() == [3.0, -1.0, 6.0]


def test_multisink_with_different_filters_of_one_flow_is_refused(tmp_path):
    doc = dflow.Flow("text", str)
    kept = doc.filter(doc["text"].str.len() > 1)
    a = doc.write_sink(dflow.ArrowSink(), doc["text"])
    b = kept.write_sink(dflow.ArrowSink(), kept["text"])
    with pytest.raises(ValueError, match="different filter\\(\\)/limit\\(\\) steps"):
        dflow.collect(dflow.Multisink([a, b]), "xyz")
    assert b.collect("ab").rows_written == 1
    assert b.collect("a").rows_written == 0
