"""Checkpoints on a cluster: the client commits whole morsels (a flow's rows, or what it wrote to
the sinks), skips the inputs a checkpoint has done (whichever machine did them), and each row ends
up once in each sink when the client or a worker is SIGKILLed mid-run."""
import glob
import json
import os
import random

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from daft_flow.testing.crash import sigkill_after
from daft_flow.testing.workers import WorkerProcess, kill_while_busy

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def workers():
    procs = [WorkerProcess("--threads", "2") for _ in range(2)]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


class Doubler:
    """Doubles, failing the inputs in ``bad``; its fingerprint does not follow them."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def __call__(self, x: int) -> int:
        if x in self.bad:
            raise ValueError(f"bad {x}")
        return 2 * x

    def __dflow_fingerprint__(self) -> str:
        return "doubler"


def _sink(out, bad):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Doubler(bad), return_type=int)
    return flow.write_sink(dflow.JSONFileSink(str(out)), {"x": flow["x"], "y": flow["y"]})


def _jsonl(directory):
    rows = []
    for path in sorted(glob.glob(f"{directory}/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


def _manifest(ckpt):
    with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
        return json.load(f)


def test_a_cluster_run_resumes_locally_and_a_local_one_on_the_cluster(workers, tmp_path):
    cluster = dflow.Cluster([w.address for w in workers], morsel_rows=10)
    try:
        for first, second in ((cluster, None), (None, cluster)):
            out, ckpt = tmp_path / f"out-{first is None}", str(tmp_path / f"ckpt-{first is None}")
            result = _sink(out, {7, 33}).collect_batch(range(100), on_error="return", checkpoint=ckpt, cluster=first)
            assert result.rows_written == 98 and sorted(f.input_index for f in result.failures) == [7, 33]
            assert [r[:2] for r in _manifest(ckpt)["done"]] == [[0, 7], [8, 33], [34, 100]]
            again = _sink(out, set()).collect_batch(range(100), checkpoint=ckpt, cluster=second)
            assert again.rows_written == 100 and _manifest(ckpt)["complete"]
            assert sorted(r["x"] for r in _jsonl(out)) == list(range(100))  # each row once
            assert all(r["y"] == 2 * r["x"] for r in _jsonl(out))
            with pytest.raises(dflow.CheckpointError, match="not the inputs"):  # other inputs are refused
                _sink(out, set()).collect_batch(range(1, 101), checkpoint=ckpt, cluster=cluster)
    finally:
        cluster.close()


def _doubled(bad):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Doubler(bad), return_type=int)
    return flow


def test_a_flows_rows_checkpointed_on_a_cluster_come_back_as_a_local_run_gives_them(workers, tmp_path):
    cluster = dflow.Cluster([w.address for w in workers], morsel_rows=10)
    try:
        local = _doubled(set()).collect_batch(range(100))
        ckpt = str(tmp_path / "rows")
        first = _doubled({7, 33}).collect_batch(range(100), on_error="return", checkpoint=ckpt, cluster=cluster)
        assert [i for i, r in enumerate(first) if isinstance(r, dflow.RowFailure)] == [7, 33]
        assert [r[:2] for r in _manifest(ckpt)["done"]] == [[0, 7], [8, 33], [34, 100]]
        assert _doubled(set()).collect_batch(range(100), checkpoint=ckpt, cluster=cluster) == local
        assert _manifest(ckpt)["complete"]
        # stream and collect_arrow resume the same way, locally or on the cluster
        ckpt2 = str(tmp_path / "stream")
        streamed = _doubled({5})
        assert len(list(streamed.stream(range(40), on_error="skip", checkpoint=ckpt2, cluster=cluster))) == 39
        table = _doubled(set()).collect_arrow(range(40), checkpoint=ckpt2)
        assert sorted(table.column("x").to_pylist()) == list(range(40))
        job = cluster.submit(_doubled(set()), range(100), checkpoint=ckpt)  # a finished checkpoint: nothing runs
        assert job.result(timeout=60) == local
    finally:
        cluster.close()


def _rows(out):
    json_rows = sorted(r["x"] for r in _jsonl(f"{out}/json"))
    pq_rows = []
    for path in sorted(glob.glob(f"{out}/parquet/*.parquet")):
        pq_rows += pq.read_table(path).column("x").to_pylist()
    return json_rows, sorted(pq_rows)


def test_sigkilled_clients_and_a_sigkilled_worker_leave_every_row_once(workers, tmp_path):
    from cluster_crash_worker import N, sinks

    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
    client = [os.path.join(HERE, "cluster_crash_worker.py"), ckpt, out, *[w.address for w in workers]]
    rng = random.Random(5)
    done_after_kills = []
    for _ in range(2):
        sigkill_after(client, ckpt, rng.uniform(0.8, 1.5))
        json_rows, pq_rows = _rows(out)  # what a reader sees after the crash: no row twice
        assert len(json_rows) == len(set(json_rows)) and len(pq_rows) == len(set(pq_rows))
        done_after_kills.append(sum(b - a for a, b, _ in _manifest(ckpt)["done"]))
    assert 0 < done_after_kills[-1] < N, done_after_kills
    # The last attempt runs in this process, and loses a worker mid-morsel.
    extra = WorkerProcess("--threads", "2")
    try:
        cluster = dflow.Cluster([w.address for w in workers] + [extra.address], morsel_rows=20)
        job = cluster.submit(sinks(out), range(N), checkpoint=ckpt)
        kill_while_busy(job, extra, morsels_done=1)
        results = job.result(timeout=300)
        cluster.close()
    finally:
        extra.stop()
    assert [r.rows_written for r in results] == [N, N]
    json_rows, pq_rows = _rows(out)
    assert json_rows == list(range(N)) and pq_rows == list(range(N))  # each row exactly once
    assert _manifest(ckpt)["complete"]
