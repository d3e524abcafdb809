"""Caches and checkpoints with scale-out: a RedisCache is shared by dflow-workers and this process
(answers asked on a worker are not asked again, here or there); checkpoint= with cluster= is
refused before anything runs or is written."""
import pytest

import daft_flow as dflow
from daft_flow.testing import FaultServer
from daft_flow.testing.workers import WorkerProcess


def _prompt_flow(provider, cache):
    flow = dflow.Flow("t", str)
    flow["a"] = flow["t"].prompt("Say: {t}".format(t=flow["t"]), provider=provider, max_tokens=4, cache=cache)
    return flow


def test_workers_and_this_process_share_a_redis_cache(redis_url):
    key = "sk-cache-cluster-5151"
    cache = dflow.RedisCache(redis_url, namespace="cluster-test")
    cache.clear()
    texts = [f"text {i}" for i in range(24)]
    with FaultServer(api_key=key) as server, \
            WorkerProcess("--threads", "2", env={"CACHE_LLM_KEY": key}) as w:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=key, api_key_env="CACHE_LLM_KEY",
                                        model="fault-chat")
        flow = _prompt_flow(provider, cache)
        cluster = dflow.Cluster([w.address], morsel_rows=8)
        remote = flow.collect_batch(texts, cluster=cluster)
        assert server.stats()["chat"] == len(texts)
        import redis

        with redis.Redis.from_url(redis_url) as client:  # the worker stored every answer in the shared cache
            assert len(client.keys("cluster-test:*")) == len(texts)
        # This process and the worker again: every answer from the cache, nothing asked.
        assert flow.collect_batch(texts) == remote
        assert flow.collect_batch(texts, cluster=cluster) == remote
        assert server.stats()["chat"] == len(texts)
        # A changed template is another op: asked again.
        other = dflow.Flow("t", str)
        other["a"] = other["t"].prompt("Repeat: {t}".format(t=other["t"]), provider=provider, max_tokens=4,
                                       cache=cache)
        other.collect_batch(texts[:5], cluster=cluster)
        assert server.stats()["chat"] == len(texts) + 5
        cluster.close()
    cache.clear()


def test_a_flows_rows_with_a_checkpoint_on_a_cluster_are_refused_before_anything_runs(tmp_path):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
    sink = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"y": flow["y"]})
    ckpt = tmp_path / "ckpt"
    with WorkerProcess("--threads", "1") as w:
        cluster = dflow.Cluster([w.address])
        calls = [lambda: flow.collect_batch([1, 2], cluster=cluster, checkpoint=str(ckpt)),
                 lambda: flow.collect_arrow([1, 2], cluster=cluster, checkpoint=str(ckpt)),
                 lambda: list(flow.stream([1, 2], cluster=cluster, checkpoint=str(ckpt)))]
        for call in calls:
            with pytest.raises(ValueError, match="checkpoint= with cluster= works for sink flows"):
                call()
        assert not ckpt.exists() and not (tmp_path / "out").exists()  # nothing created, nothing written
        assert "received" not in w.log  # no plan was sent
        # The same run without the checkpoint goes through, and a sink flow's with it.
        assert flow.collect_batch([1, 2], cluster=cluster) == [{"x": 1, "y": 2}, {"x": 2, "y": 3}]
        assert sink.collect_batch([1, 2], cluster=cluster, checkpoint=str(ckpt)).rows_written == 2
        cluster.close()
