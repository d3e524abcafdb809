"""Failure policies on a cluster: retries, fail_parent and timeouts travel in the plan and run on
the dflow-workers with the results, failures and accounting of a local run; a dead-letter sink is
refused there with a clear error (each worker would write its own, and twice for a re-sent morsel)."""
import pytest

import daft_flow as dflow
from daft_flow.testing.workers import WorkerProcess

TOKEN = "policies-cluster-token-3f9a"
FAST = dflow.Retry(max_attempts=2, initial_delay=0.001, max_delay=0.01)
DOCS = [" ".join(f"w{(i * 7 + k) % 13}" for k in range(3 + i % 9)) + (" seven" if i % 11 == 3 else "")
        for i in range(60)]


@pytest.fixture(scope="module")
def cluster():
    procs = [WorkerProcess("--threads", "2", token=TOKEN) for _ in range(2)]
    c = None
    try:
        c = dflow.Cluster([p.address for p in procs], token=TOKEN, morsel_rows=8)
        yield c
    finally:
        if c is not None:
            c.close()
        for p in procs:
            p.stop()


def _chunks(failure="isolate", retry=FAST):
    """doc -> chunks whose function fails once on every chunk (a retry heals it) and always on
    chunks with "seven" (attempts run out). Defined in a function: the workers get it by value."""
    calls: dict[tuple[str, str], int] = {}

    def once_flaky(chunk: str, doc: str) -> str:
        n = calls[chunk, doc] = calls.get((chunk, doc), 0) + 1  # a document's chunks are all different
        if n == 1 or "seven" in chunk:
            raise ConnectionError(f"flaky on {chunk!r} (call {n})")
        return chunk.upper()

    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len)
    chunks = doc["doc"].chunk_text(max_chars=12, overlap=0).with_policy(failure, retry=retry if failure == "isolate"
                                                                         else None)
    if failure == "fail_parent":
        doc = doc.with_policy(retry=retry)
        chunks = doc["doc"].chunk_text(max_chars=12, overlap=0).with_policy("fail_parent")
    chunks["up"] = chunks["chunk"].run_python(once_flaky, doc["doc"], return_type=str)
    return chunks


def _failures(failures):
    return sorted((f.input_index, f.row_id, f.flow, f.op, f.field, type(f.error).__name__, f.attempts)
                  for f in failures)


def test_retries_on_workers_give_the_local_rows_failures_and_attempts(cluster):
    local = _chunks().collect_batch(DOCS, on_error="return")
    flow = _chunks()
    remote = flow.collect_batch(DOCS, on_error="return", cluster=cluster)
    assert [[r for r in rows if isinstance(r, dict)] for rows in remote] == \
        [[r for r in rows if isinstance(r, dict)] for rows in local]  # retried rows back in their places
    failed = [f for rows in remote for f in rows if isinstance(f, dflow.RowFailure)]
    assert failed and _failures(failed) == _failures([f for rows in local for f in rows
                                                      if isinstance(f, dflow.RowFailure)])
    assert {f.attempts for f in failed} == {2} and all("seven" in DOCS[f.input_index] for f in failed)
    acc = flow.last_run().accounting
    assert acc["doc"]["rows"] == len(DOCS)
    chunk_rows = sum(len(rows) for rows in remote)
    assert acc["doc.chunks"] == {"rows": chunk_rows, "succeeded": chunk_rows - len(failed), "failed": len(failed),
                                 "dead_lettered": 0, "skipped": 0, "filtered": 0}
    assert flow.last_run().flows["doc.chunks"].retries == chunk_rows  # every chunk failed once


def test_stream_and_arrow_on_workers_see_the_retried_rows(cluster):
    local = _chunks().collect_arrow(DOCS, on_error="skip", lineage=True)
    remote = _chunks().collect_arrow(DOCS, on_error="skip", lineage=True, cluster=cluster)
    key = ["_input_index", "_row_id"]
    assert remote.sort_by([(k, "ascending") for k in key]).equals(local.sort_by([(k, "ascending") for k in key]))
    streamed = _chunks().stream(DOCS, on_error="skip", cluster=cluster)
    assert sorted(r["up"] for r in streamed) == sorted(local.column("up").to_pylist())
    local_stream = _chunks().stream(DOCS, on_error="skip")
    list(local_stream)
    assert streamed.failures and _failures(streamed.failures) == _failures(local_stream.failures)


def test_fail_parent_on_workers_fails_the_parent_with_its_children(cluster):
    local = _chunks("fail_parent").collect_batch(DOCS, on_error="return")
    flow = _chunks("fail_parent")
    remote = flow.collect_batch(DOCS, on_error="return", cluster=cluster)
    assert [[r for r in rows if isinstance(r, dict)] for rows in remote] == \
        [[r for r in rows if isinstance(r, dict)] for rows in local]
    parents = [f for rows in remote for f in rows if isinstance(f, dflow.RowFailure) and f.flow == "doc"]
    assert parents and _failures(parents) == _failures([f for rows in local for f in rows
                                                        if isinstance(f, dflow.RowFailure) and f.flow == "doc"])
    for f in parents:
        assert isinstance(f.error, dflow.ChildFlowError) and f.attempts == 2
        assert "seven" in DOCS[f.input_index] and not [r for r in remote[f.input_index] if isinstance(r, dict)]
    # Every other document succeeded on its second attempt (its first failed through a child).
    assert {i for i, rows in enumerate(remote) if any(isinstance(r, dict) for r in rows)} == \
        {i for i, d in enumerate(DOCS) if "seven" not in d}
    acc = flow.last_run().accounting["doc"]
    assert acc["rows"] == len(DOCS) and acc["failed"] == len(parents)


def test_sinks_on_workers_write_every_retried_row_once(cluster, tmp_path):
    import json

    chunks = _chunks()
    sink = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"up": chunks["up"]})
    result = sink.collect_batch(DOCS, on_error="return", cluster=cluster)
    rows = [json.loads(line) for p in sorted((tmp_path / "out").glob("*.jsonl")) for line in p.read_text().splitlines()]
    expected = _chunks().collect_arrow(DOCS, on_error="skip").column("up").to_pylist()
    assert sorted(r["up"] for r in rows) == sorted(expected)  # no row lost, none twice
    assert result.rows_written == len(expected) and all(f.attempts == 2 for f in result.failures)


def test_a_dead_letter_sink_on_a_cluster_is_refused_by_name(cluster, tmp_path):
    doc = dflow.Flow("doc", str).with_policy(dead_letter=dflow.JSONFileSink(str(tmp_path / "dead")))
    doc["n"] = doc["doc"].run_python(len)
    with pytest.raises(ValueError, match="flow 'doc' has a dead-letter sink .* run it locally"):
        doc.collect_batch(DOCS, cluster=cluster)
    assert not (tmp_path / "dead").exists()
