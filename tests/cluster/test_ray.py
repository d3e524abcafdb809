"""The Ray runner on a local Ray (``ray.init(num_cpus=2)``): the same results as a local run, and an
actor killed mid-run loses no row and duplicates none. Few tests: starting Ray takes seconds."""
import json
import glob
import time

import pytest

import daft_flow as dflow

ray = pytest.importorskip("ray")

from cluster_flows import DOCS, _doc_flow, _failures, _jsonl  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = dflow.RayCluster(num_cpus=2, morsel_rows=16)
    yield cluster
    cluster.shutdown()
    assert not ray.is_initialized()


def test_ray_gives_the_results_of_a_local_run(ray_cluster, tmp_path):
    flow = _doc_flow()
    local = flow.collect_batch(DOCS, on_error="return")
    remote = flow.collect_batch(DOCS, on_error="return", cluster=ray_cluster)
    assert [r for r in remote if isinstance(r, list)] and len(remote) == len(DOCS)
    for a, b in zip(local, remote):
        assert [r for r in a if isinstance(r, dict)] == [r for r in b if isinstance(r, dict)]
        assert _failures([r for r in a if not isinstance(r, dict)]) == _failures([r for r in b if not isinstance(r, dict)])
    assert flow.collect_arrow(DOCS, on_error="skip", lineage=True, cluster=ray_cluster).equals(
        flow.collect_arrow(DOCS, on_error="skip", lineage=True))
    assert list(flow.stream(DOCS, on_error="skip", cluster=ray_cluster)) == list(flow.stream(DOCS, on_error="skip"))
    sink = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"loud": flow["loud"]})
    result = sink.collect_batch(DOCS, on_error="return", cluster=ray_cluster)
    assert result.rows_written == sum(1 for rows in local for r in rows if isinstance(r, dict))
    assert sorted(r["loud"] for r in _jsonl(glob.glob(str(tmp_path / "out" / "*.jsonl")))) == \
        sorted(r["loud"] for rows in local for r in rows if isinstance(r, dict))
    # Dead letters: the actors make the records, this process writes them, once per failed row.
    lettered = flow.with_policy(dead_letter=dflow.JSONFileSink(str(tmp_path / "dead")))
    failed = [f for rows in lettered.collect_batch(DOCS, on_error="return", cluster=ray_cluster)
              for f in rows if isinstance(f, dflow.RowFailure)]
    letters = _jsonl(glob.glob(str(tmp_path / "dead" / "*.jsonl")))
    assert failed and all(f.dead_lettered for f in failed)
    assert sorted(r["row_id"] for r in letters) == sorted(f.row_id for f in failed)


def test_a_killed_ray_actor_loses_no_row(ray_cluster):
    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.004)
        return x * 5

    flow["y"] = flow["x"].run_python(slow)
    job = ray_cluster.submit(flow, range(600))
    while job.progress()["morsels_done"] < 4:
        time.sleep(0.005)
    victim = ray_cluster._actors[0]
    ray.kill(victim, no_restart=True)
    assert job.result(timeout=120) == [{"x": i, "y": 5 * i} for i in range(600)]
    progress = job.progress()
    assert progress["workers"]["ray actor 0"]["lost"], json.dumps(progress)
    ray_cluster._actors = [a for a in ray_cluster._actors if a is not victim]
