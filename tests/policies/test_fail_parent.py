"""fail_parent: a child's failure fails its parent with a ChildFlowError; none of the parent's
other descendants reach any sink; the parent's own retry recomputes its subtree."""
import collections
import json

import pytest

import daft_flow as dflow


def poison(chunk: str) -> str:
    if "poison" in chunk:
        raise ValueError(f"cannot summarize {chunk.strip()!r}")
    return chunk.strip().upper()


DOCS = ["alpha beta gamma", "delta poison epsilon", "zeta eta theta", "iota kappa poison"]


def build(doc_policy=None):
    doc = dflow.Flow("doc", str)
    if doc_policy is not None:
        doc = doc.with_policy(**doc_policy)
    doc["length"] = doc["doc"].run_python(len)
    chunks = doc["doc"].chunk_text(max_chars=7, overlap=0).with_policy("fail_parent")
    chunks["summary"] = chunks["chunk"].run_python(poison, return_type=str)
    return doc, chunks


def test_a_failed_child_fails_its_parent_with_the_child_failures():
    doc, chunks = build()
    # (A policy acts where its flow runs: collecting `doc` alone never runs the chunks' ops.)
    out = chunks.collect_batch(DOCS, on_error="return")
    assert all(isinstance(r, dict) for r in out[0] + out[2])
    assert not [r for r in out[1] if isinstance(r, dict)], "a failed parent's children never come out"
    parent = next(f for f in out[1] if isinstance(f, dflow.RowFailure) and f.flow == "doc")
    assert parent.op == "fail_parent" and parent.field == "doc.chunks" and parent.input_index == 1
    error = parent.error
    assert isinstance(error, dflow.ChildFlowError) and len(error.failures) == 1
    child = error.failures[0]
    assert child.flow == "doc.chunks" and child.op == "run_python(poison)" and child.field == "summary"
    assert isinstance(child.error, ValueError) and child.input_index == 1
    with pytest.raises(dflow.FlowRunError) as raised:
        chunks.collect_batch(DOCS)
    assert dflow.ChildFlowError in {type(e) for e in raised.value.exceptions}
    try:
        raise raised.value
    except* ValueError as group:  # the children's errors are reachable through the groups too
        assert group.exceptions
    acc = chunks.last_run().accounting
    assert acc["doc"] == {"rows": 4, "succeeded": 2, "failed": 2, "dead_lettered": 0, "skipped": 0, "filtered": 0}
    for a in acc.values():
        assert a["rows"] == a["succeeded"] + a["failed"] + a["filtered"]


def test_none_of_the_failed_parents_descendants_reach_any_sink(tmp_path):
    doc, chunks = build()
    to_chunks = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "chunks")), {"s": chunks["summary"],
                                                                                 "doc": doc["doc"]})
    to_docs = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "docs")), {"doc": doc["doc"], "n": doc["length"]})
    chunk_result, doc_result = dflow.Multisink([to_chunks, to_docs]).collect_batch(DOCS, on_error="return")
    written_docs = [json.loads(x)["doc"] for f in (tmp_path / "docs").iterdir() for x in f.read_text().splitlines()]
    written_chunks = [json.loads(x) for f in (tmp_path / "chunks").iterdir() for x in f.read_text().splitlines()]
    assert sorted(written_docs) == [DOCS[0], DOCS[2]]
    assert {c["doc"] for c in written_chunks} == {DOCS[0], DOCS[2]}
    assert doc_result.rows_written == 2 and {f.input_index for f in doc_result.failures} == {1, 3}
    report = to_chunks.last_run()
    acc = report.accounting
    for a in acc.values():
        assert a["rows"] == a["succeeded"] + a["failed"] + a["filtered"]
    assert acc["doc"]["failed"] == 2
    assert acc["doc.chunks"]["succeeded"] == len(written_chunks)


def test_the_parents_retry_recomputes_its_subtree():
    calls = collections.Counter()

    def once_poisoned(chunk: str) -> str:
        calls[chunk] += 1
        if "poison" in chunk and calls[chunk] == 1:
            raise ConnectionError("flaky")
        return chunk.strip()

    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=2, initial_delay=0.001))
    chunks = doc.chunk_text(max_chars=7, overlap=0).with_policy("fail_parent")
    chunks["s"] = chunks["chunk"].run_python(once_poisoned, return_type=str)
    rows = chunks.collect_batch(DOCS)
    assert [" ".join(r["s"] for r in rs) for rs in rows] == DOCS
    report = chunks.last_run()
    assert report.flows["doc"].retries == 2 and report.accounting["doc"]["failed"] == 0
    # Every chunk of a document with a poisoned chunk ran twice (the subtree was recomputed);
    # the other documents' chunks once.
    for d, rs in zip(DOCS, rows):
        assert {calls[r["chunk"]] for r in rs} == ({2} if "poison" in d else {1})


def test_fail_parent_reaches_up_several_levels():
    doc = dflow.Flow("doc", str)
    lines = doc.chunk_text(max_chars=12, overlap=0).with_policy("fail_parent")
    lines["words"] = lines["chunk"].run_python(str.split, return_type=list[str])
    words = lines["words"].flat_map(dflow.Flow("word", str)).with_policy("fail_parent")
    words["w"] = words["word"].run_python(poison, return_type=str)
    out = words.collect_batch(["ok words here", "one poison word"], on_error="return")
    assert all(isinstance(r, dict) for r in out[0]) and out[0]
    error = next(f for f in out[1] if f.flow == "doc").error
    assert isinstance(error, dflow.ChildFlowError)
    inner = error.failures[0].error
    assert isinstance(inner, dflow.ChildFlowError) and isinstance(inner.failures[0].error, ValueError)
