"""Caches with scale-out: a RedisCache is shared by dflow-workers and this process (answers asked
on a worker are not asked again, here or there). Checkpoints on a cluster: tests/checkpoint."""
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
