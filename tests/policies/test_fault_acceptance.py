"""The issue's acceptance flow against the fault server (10% 429, 5% 500, 2% dropped
connections): documents -> chunk_text -> a Python function that raises on 5% of the documents'
chunks -> prompt -> JSONFileSink, with a dead-letter sink. For isolate and for fail_parent every
row ends in exactly one place (the sink or a dead letter, by row id), with no duplicates, and the
dead letters carry the right error type and attempt count. The same flow then runs through every
way of collecting."""
import json

import pytest

import daft_flow as dflow

DOCS = [" ".join(f"word{d}_{w}" for w in range(24)) for d in range(60)]
POISONED = {d for d in range(len(DOCS)) if d % 20 == 7}  # 5% of the documents
ATTEMPTS = 3


def check_chunk(chunk: str) -> str:
    """Raises for one chunk of each poisoned document."""
    for d in POISONED:
        if f"word{d}_3 " in chunk:
            raise ValueError(f"cannot use chunk of document {d}")
    return chunk


@pytest.fixture
def faulty(fault_server, provider):
    fault_server.configure(rate_limit_rate=0.10, error_rate=0.05, drop_rate=0.02)
    return provider


def build(provider, failure, dead_dir, mode="overwrite"):
    retry = dflow.Retry(max_attempts=ATTEMPTS, initial_delay=0.001, max_delay=0.01)
    dead = dflow.JSONFileSink(str(dead_dir), mode=mode)
    doc = dflow.Flow("document", str)
    if failure == "fail_parent":
        doc = doc.with_policy(retry=retry, dead_letter=dead)
        chunks = doc.chunk_text(max_chars=60, overlap=0).with_policy("fail_parent")
    else:
        chunks = doc.chunk_text(max_chars=60, overlap=0).with_policy(retry=retry, dead_letter=dead)
    chunks["checked"] = chunks["chunk"].run_python(check_chunk, return_type=str)
    chunks["summary"] = chunks["checked"].prompt("summarize", provider=provider, max_tokens=4)
    return doc, chunks


def all_chunk_ids():
    """(document index, chunk_index) -> row id, from a plain run with lineage."""
    doc = dflow.Flow("document", str)
    chunks = doc.chunk_text(max_chars=60, overlap=0)
    table = chunks.collect_arrow(DOCS, lineage=True)
    return {(i, c): rid for i, c, rid in zip(table.column("_input_index").to_pylist(),
                                             table.column("chunk_index").to_pylist(),
                                             table.column("_row_id").to_pylist())}


def read(directory):
    return [json.loads(line) for f in sorted(directory.iterdir()) for line in f.read_text().splitlines()]


@pytest.mark.parametrize("failure", ["isolate", "fail_parent"])
def test_every_row_ends_in_exactly_one_place(faulty, fault_server, tmp_path, failure):
    ids = all_chunk_ids()
    by_doc = {d: [ids[k] for k in sorted(ids) if k[0] == d] for d in range(len(DOCS))}
    doc, chunks = build(faulty, failure, tmp_path / "dead")
    sink = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "out")),
                             {"doc": doc["document"], "chunk_index": chunks["chunk_index"],
                              "summary": chunks["summary"]})
    result = sink.collect_batch(DOCS)  # every failure is dead-lettered: nothing raises
    written = read(tmp_path / "out")
    written_ids = [ids[(DOCS.index(r["doc"]), r["chunk_index"])] for r in written]
    assert len(written_ids) == len(set(written_ids)) == result.rows_written, "a row was written twice"
    assert all(r["summary"] for r in written)
    dead = read(tmp_path / "dead")
    assert len({r["row_id"] for r in dead}) == len(dead), "a row was dead-lettered twice"
    assert all(r["attempts"] == ATTEMPTS for r in dead)
    stats = fault_server.stats()
    assert stats.get("injected_429", 0) and stats.get("errors", 0) and stats.get("dropped", 0)
    report = sink.last_run()
    for a in report.accounting.values():
        assert a["rows"] == a["succeeded"] + a["failed"] + a["filtered"]
    assert report.accounting["document"]["rows"] == len(DOCS)
    if failure == "isolate":
        assert {r["error_type"] for r in dead} == {"ValueError"} and {r["flow"] for r in dead} == {"document.chunks"}
        assert set(written_ids) | {r["row_id"] for r in dead} == set(ids.values())
        assert not set(written_ids) & {r["row_id"] for r in dead}
        assert {r["input_index"] for r in dead} == POISONED
        assert report.accounting["document.chunks"]["dead_lettered"] == len(dead) == len(POISONED)
    else:
        assert {r["error_type"] for r in dead} == {"ChildFlowError"} and {r["flow"] for r in dead} == {"document"}
        assert {r["input_index"] for r in dead} == POISONED
        assert all(r["child_failures"][0]["error_type"] == "ValueError" for r in dead)
        # A document is wholly in the sink, or dead-lettered with none of its chunks written.
        for d, chunk_ids in by_doc.items():
            if d in POISONED:
                assert not set(chunk_ids) & set(written_ids)
            else:
                assert set(chunk_ids) <= set(written_ids)
        assert set(written_ids) == {rid for d in by_doc if d not in POISONED for rid in by_doc[d]}
        assert report.accounting["document"]["dead_lettered"] == len(POISONED)
    assert report.accounting["document.chunks"]["succeeded"] == len(written)


@pytest.mark.parametrize("failure", ["isolate", "fail_parent"])
def test_every_way_of_collecting_sees_the_same_rows(faulty, tmp_path, failure):
    docs = DOCS[:28]  # two of them poisoned
    poisoned = {d for d in POISONED if d < len(docs)}
    expected = {d for d in range(len(docs)) if d not in poisoned} if failure == "fail_parent" else None
    doc, chunks = build(faulty, failure, tmp_path / "dead-collect_batch")
    by_batch = chunks.collect_batch(docs)
    if expected is not None:
        assert {d for d, rows in enumerate(by_batch) if rows} == expected

    def summaries(rows):
        return sorted((r["chunk_index"], r["summary"] is not None) for r in rows)

    for how in ("stream", "collect_arrow", "collect", "multisink"):
        # (collect runs once per input: its dead letters are appended, not replaced, run after run)
        doc, chunks = build(faulty, failure, tmp_path / f"dead-{how}", "append" if how == "collect" else "overwrite")
        if how == "stream":
            rows = list(chunks.stream(docs, lineage=True))
            got = {d: [r for r in rows if r["_input_index"] == d] for d in range(len(docs))}
        elif how == "collect_arrow":
            table = chunks.collect_arrow(docs, lineage=True).to_pylist()
            got = {d: [r for r in table if r["_input_index"] == d] for d in range(len(docs))}
        elif how == "collect":
            got = {d: chunks.collect(docs[d]) for d in sorted(poisoned | {0, 1})}
        else:
            arrow = dflow.ArrowSink()
            to_memory = chunks.write_sink(arrow, {"chunk_index": chunks["chunk_index"], "summary": chunks["summary"],
                                                  "doc": doc["document"]})
            to_files = doc.write_sink(dflow.JSONFileSink(str(tmp_path / f"docs-{how}")), doc["document"])
            memory, files = dflow.Multisink([to_memory, to_files]).collect_batch(docs)
            table = memory.data.to_pylist()
            got = {d: [r for r in table if r["doc"] == docs[d]] for d in range(len(docs))}
            written_docs = {r["document"] for r in read(tmp_path / f"docs-{how}")}
            assert written_docs == ({docs[d] for d in expected} if expected is not None else set(docs))
        for d, rows in got.items():
            assert summaries(rows) == summaries(by_batch[d]), (how, d)
        assert len(read(tmp_path / f"dead-{how}")) == len(poisoned), how
