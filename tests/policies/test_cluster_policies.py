"""Failure policies on a cluster: retries, fail_parent and timeouts travel in the plan and run on
the dflow-workers with the results, failures and accounting of a local run; dead letters are made
on the workers and written by the client, once per row even when a worker is SIGKILLed."""
import json
import time

import pytest

import daft_flow as dflow
from jsonl_records import read_jsonl
from daft_flow.testing.workers import WorkerProcess, kill_while_busy

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

    chunks = _chunks()
    sink = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"up": chunks["up"]})
    result = sink.collect_batch(DOCS, on_error="return", cluster=cluster)
    rows = [json.loads(line) for p in sorted((tmp_path / "out").glob("*.jsonl")) for line in p.read_text().splitlines()]
    expected = _chunks().collect_arrow(DOCS, on_error="skip").column("up").to_pylist()
    assert sorted(r["up"] for r in rows) == sorted(expected)  # no row lost, none twice
    assert result.rows_written == len(expected) and all(f.attempts == 2 for f in result.failures)


def _letter_key(r):
    return (r["input_index"], r["row_id"], r["flow"], r["op"], r["error_type"], r["attempts"])


def test_dead_letters_on_a_cluster_are_written_once_by_the_client(cluster, tmp_path):
    def flow(dead):
        chunks = _chunks()
        return chunks.with_policy("isolate", retry=FAST, dead_letter=dflow.JSONFileSink(str(dead)))

    local = flow(tmp_path / "local").collect_batch(DOCS, on_error="return")
    remote_flow = flow(tmp_path / "remote")
    remote = remote_flow.collect_batch(DOCS, on_error="return", cluster=cluster)
    assert [[r for r in rows if isinstance(r, dict)] for rows in remote] == \
        [[r for r in rows if isinstance(r, dict)] for rows in local]
    failed = [f for rows in remote for f in rows if isinstance(f, dflow.RowFailure)]
    assert failed and all(f.dead_lettered and f.attempts == 2 for f in failed)
    local_letters, remote_letters = read_jsonl(tmp_path / "local"), read_jsonl(tmp_path / "remote")
    assert sorted(map(_letter_key, remote_letters)) == sorted(map(_letter_key, local_letters))
    assert len({r["row_id"] for r in remote_letters}) == len(remote_letters) == len(failed)
    assert all("seven" in r["input"] and "ConnectionError" in r["traceback"] for r in remote_letters)
    replayed = dflow.replay(str(tmp_path / "remote"), _chunks())  # a record is enough to run its input again
    assert sorted(replayed.inputs) == sorted({DOCS[r["input_index"]] for r in remote_letters})
    acc = remote_flow.last_run().accounting["doc.chunks"]
    assert acc["dead_lettered"] == acc["failed"] == len(failed)


def test_dead_letters_survive_a_sigkilled_worker_once_each(tmp_path):
    doc = dflow.Flow("x", int)

    def odd_fails(x: int) -> int:
        time.sleep(0.004)
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    doc = doc.with_policy(dead_letter=dflow.JSONFileSink(str(tmp_path / "dead")))
    doc["y"] = doc["x"].run_python(odd_fails)
    n = 600
    procs = [WorkerProcess("--threads", "2") for _ in range(3)]
    try:
        c = dflow.Cluster([p.address for p in procs], morsel_rows=10)
        job = c.submit(doc, range(n))
        kill_while_busy(job, procs[1])  # while it holds a morsel, after some results came back
        result = job.result(timeout=120)
        assert job.progress()["morsels_resent"] >= 1
        assert result == [{"x": i, "y": i} if i % 2 == 0 else None for i in range(n)]
        letters = read_jsonl(tmp_path / "dead")
        assert sorted(r["input_index"] for r in letters) == list(range(1, n, 2))  # each once
        c.close()
    finally:
        for p in procs:
            p.stop()


def test_a_dead_letter_sink_that_cannot_write_leaves_its_rows_failed(cluster, tmp_path):
    blocked = tmp_path / "dead"
    blocked.write_text("a file where the sink wants a directory")
    doc = dflow.Flow("doc", str).with_policy(dead_letter=dflow.JSONFileSink(str(blocked)))
    doc["up"] = doc["doc"].run_python(lambda d: d.upper() if "seven" not in d else d[10**6], return_type=str)
    with pytest.raises(dflow.FlowRunError) as err:
        doc.collect_batch(DOCS, cluster=cluster)
    failures = err.value.failures
    assert failures and not any(f.dead_lettered for f in failures)
    assert {f.input_index for f in failures} == {i for i, d in enumerate(DOCS) if "seven" in d}
    assert doc.last_run().accounting["doc"]["dead_lettered"] == 0
