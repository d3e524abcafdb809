"""cache= on run_python, read, prompt and embed_text: what is computed, what is asked, what the
run report and usage say, and what never is cached."""
import os
import subprocess
import sys

import pytest

import counting
import daft_flow as dflow
from children import child_env
from daft_flow.testing import FaultServer



@pytest.fixture(autouse=True)
def _counts():
    counting.reset()


@pytest.mark.parametrize("mode", ["row", "batch", "async"])
def test_run_python_rows_seen_before_are_not_computed_again(mode):
    fn = {"row": counting.double, "batch": counting.double_batch, "async": counting.double_async}[mode]
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(fn, return_type=int, batch=mode == "batch", cache=dflow.MemoryCache())
    assert flow.collect_batch([1, 2, 3]) == [{"x": i, "y": 2 * i} for i in (1, 2, 3)]
    assert counting.total() == 3
    assert flow.collect_batch([3, 4, 1, 5]) == [{"x": i, "y": 2 * i} for i in (3, 4, 1, 5)]
    assert (counting.count(3), counting.count(1), counting.count(4), counting.count(5)) == (1, 1, 1, 1)
    op = flow.last_run().ops["y"]
    assert (op.cache_hits, op.cache_misses) == (2, 2)
    assert op.cache_bytes_read == 16 and op.cache_bytes_written == 16  # int64 values


def test_failed_rows_are_never_cached():
    counting.state.fail_on.add(2)
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(counting.double, cache=dflow.MemoryCache(), return_type=int)
    out = flow.collect_batch([1, 2, 3], on_error="return")
    assert isinstance(out[1], dflow.RowFailure)
    counting.state.fail_on.clear()
    assert flow.collect_batch([1, 2, 3]) == [{"x": i, "y": 2 * i} for i in (1, 2, 3)]
    assert counting.count(2) == 2 and counting.count(1) == 1  # only the failed row ran again


def test_a_value_of_the_wrong_type_is_not_cached():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda v: "odd" if v % 2 else v, return_type=int, cache=dflow.MemoryCache())
    out = flow.collect_batch([1, 2], on_error="return")
    assert isinstance(out[0], dflow.RowFailure) and "expected int" in str(out[0].error)
    assert flow.last_run().ops["y"].cache_bytes_written == 8  # only row 2's value


def test_child_rows_are_keyed_by_the_values_they_read_including_a_parent_field():
    doc = dflow.Flow("doc", str)
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str])
    cache = dflow.MemoryCache()
    words["both"] = words["item"].run_python(lambda w, d: f"{w}@{len(d)}", doc["doc"], return_type=str, cache=cache)
    first = words.collect_batch(["a b", "a b c"])
    again = words.collect_batch(["a b", "a b c"])
    assert first == again == [[{"item": "a", "both": "a@3"}, {"item": "b", "both": "b@3"}],
                              [{"item": "a", "both": "a@5"}, {"item": "b", "both": "b@5"},
                               {"item": "c", "both": "c@5"}]]
    assert words.last_run().ops["both"].cache_hits == 5
    assert len(cache) == 5  # "a" of a 3-letter and of a 5-letter document are two entries


def test_values_of_every_type_come_back_as_they_were():
    flow = dflow.Flow("x", int)
    cache = dflow.MemoryCache()
    specs = {"s": (lambda x: f"é{x}" if x else None, str), "b": (lambda x: bytes([x]), bytes),
             "f": (lambda x: x / 3, float), "t": (lambda x: x > 1, bool),
             "j": (lambda x: {"a": [x, None]}, dflow.JSON), "l": (lambda x: [str(x)] * x, list[str]),
             "e": (lambda x: [x, 0.5, -1.0], dflow.Embedding(3)), "o": (lambda x: {x, "set"}, None)}
    for name, (fn, t) in specs.items():
        flow[name] = flow["x"].run_python(fn, return_type=t, cache=cache)
    first = flow.collect_batch([0, 1, 2])
    again = flow.collect_batch([0, 1, 2])
    assert again == first
    assert all(op.cache_hits == 3 for op in flow.last_run().ops.values() if op.field in specs)


def test_read_is_cached_by_url(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("first version")
    flow = dflow.Flow("url", str).open_file().read(cache=dflow.MemoryCache())
    assert flow.collect(str(path))["text"] == "first version"
    path.write_text("second version")
    assert flow.collect(str(path))["text"] == "first version"  # not read again
    assert flow.last_run().ops["text"].cache_hits == 1


def test_prompt_answers_come_from_the_cache_at_no_cost_and_a_new_template_or_model_asks_again(provider, fault_server):
    dflow.set_price("fault-chat", input=1.0, output=1.0)
    cache = dflow.MemoryCache()
    docs = ["one two", "three four", "five six"]

    def flow(template: str, model: str | None = None) -> dflow.Flow:
        f = dflow.Flow("doc", str)
        f["a"] = f.prompt(template, provider=provider, model=model, max_tokens=8, cache=cache)
        return f

    first = flow("Summarize {doc}").collect_batch(docs)
    assert fault_server.stats()["chat"] == 3
    again = flow("Summarize {doc}")
    assert again.collect_batch(docs) == first
    assert fault_server.stats()["chat"] == 3  # nothing asked
    usage = again.last_usage()["a"]
    assert (usage.requests, usage.cache_hits, usage.rows, usage.cost_usd) == (0, 3, 0, 0.0)
    assert again.last_run().ops["a"].cache_hits == 3 and again.last_run().cost_usd == 0.0
    flow("Summarize briefly {doc}").collect_batch(docs)
    assert fault_server.stats()["chat"] == 6  # another template: other prompts
    other = flow("Summarize {doc}", model="fault-chat-b").collect_batch(docs)
    assert fault_server.stats()["chat"] == 9 and other != first  # another model: other answers
    flow("Summarize {doc}", model="fault-chat-b").collect_batch(docs)
    assert fault_server.stats()["chat"] == 9


def test_embeddings_are_cached(provider, fault_server):
    f = dflow.Flow("doc", str)
    f["e"] = f["doc"].embed_text(provider=provider, cache=dflow.MemoryCache())
    first = f.collect_batch(["a b", "c d"])
    assert f.collect_batch(["a b", "c d"]) == first
    assert fault_server.stats()["embeddings"] == 1 and f.last_usage()["e"].cache_hits == 2


def test_rows_refused_by_the_budget_are_not_cached_and_are_asked_on_the_next_run(provider, fault_server):
    dflow.set_price("fault-chat", input=1000.0, output=1000.0)
    f = dflow.Flow("doc", str)
    f["a"] = f.prompt("Summarize {doc}", provider=provider, max_tokens=4, cache=dflow.MemoryCache())
    docs = [f"doc {i}" for i in range(6)]
    out = f.collect_batch(docs, on_error="return", max_cost_usd=0.05)
    refused = [r for r in out if isinstance(r, dflow.RowFailure)]
    assert refused and all(isinstance(r.error, dflow.BudgetExceeded) for r in refused)
    asked = fault_server.stats()["chat"]
    f.collect_batch(docs)
    assert fault_server.stats()["chat"] == asked + len(refused)  # only the refused rows


def test_clear_cache_of_a_flow_and_of_the_default_cache(provider, fault_server):
    f = dflow.Flow("doc", str)
    f["a"] = f.prompt("Summarize {doc}", provider=provider, max_tokens=4, cache=True)
    f.collect_batch(["x", "y"])
    f.collect_batch(["x", "y"])
    assert fault_server.stats()["chat"] == 2
    assert dflow.clear_cache(f) == 2
    f.collect_batch(["x", "y"])
    assert fault_server.stats()["chat"] == 4
    dflow.clear_cache()
    f.collect_batch(["x"])
    assert fault_server.stats()["chat"] == 5
    with pytest.raises(TypeError, match="clear_cache"):
        dflow.clear_cache("doc")


def test_set_cache_chooses_what_cache_true_uses(tmp_path):
    mine = dflow.MemoryCache()
    dflow.set_cache(mine)
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(counting.double, return_type=int, cache=True)
    flow.collect_batch([1, 2])
    assert len(mine) == 2 and dflow.get_cache() is mine
    dflow.set_cache(None)
    default = dflow.get_cache()
    assert isinstance(default, dflow.DiskCache) and default.path.startswith(os.environ["DFLOW_CACHE_DIR"])


def test_a_cache_changes_no_fingerprint_and_travels_with_the_plan(tmp_path):
    def build(cache):
        f = dflow.Flow("x", int)
        f["y"] = f["x"].run_python(counting.double, return_type=int, cache=cache)
        return f

    plain, cached = build(None), build(dflow.DiskCache(tmp_path / "c"))
    assert plain.fingerprint() == cached.fingerprint() == build(True).fingerprint()
    assert "[cache: DiskCache]" in cached.explain() and "[cache: default]" in build(True).explain()
    back = dflow.Flow.from_bytes(cached.to_bytes())
    assert back.collect_batch([4]) == [{"x": 4, "y": 8}]
    # The original finds the row the restored flow (its function a copy, travelled by value) stored.
    assert cached.collect_batch([4]) == [{"x": 4, "y": 8}] and cached.last_run().ops["y"].cache_hits == 1
    with pytest.raises(TypeError, match="cache must be True, False or a dflow cache"):
        dflow.Flow("x", int)["x"].run_python(counting.double, cache="yes")


def test_an_unreachable_cache_stops_the_run_before_any_row_is_computed():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(counting.double, return_type=int,
                                     cache=dflow.RedisCache("redis://127.0.0.1:1/0", timeout=0.3))
    with pytest.raises(dflow.CacheError, match="does not answer"):
        flow.collect_batch([1, 2, 3])
    assert counting.total() == 0


def _second_process(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-P", "-c", code, *args], capture_output=True, text=True, env=child_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


PROMPT_RUN = """
import sys, daft_flow as dflow
base_url, kind, where = sys.argv[1:4]
cache = dflow.DiskCache(where) if kind == "disk" else dflow.RedisCache(where)
provider = dflow.OpenAIProvider(base_url=base_url, api_key="test-key", model="fault-chat")
f = dflow.Flow("doc", str)
f["a"] = f.prompt("Summarize {doc}", provider=provider, max_tokens=8, cache=cache)
rows = f.collect_batch([f"document {i}" for i in range(40)])
print(f.last_usage()["a"].requests, f.last_usage()["a"].cache_hits, rows[7]["a"])
"""


@pytest.mark.parametrize("kind", ["disk", "redis"])
def test_a_second_process_running_the_same_prompt_flow_sends_no_request(kind, tmp_path, request):
    where = str(tmp_path / "shared") if kind == "disk" else request.getfixturevalue("redis_url")
    with FaultServer() as server:
        first = _second_process(PROMPT_RUN, server.base_url, kind, where).split(" ", 2)
        assert server.stats()["chat"] == 40 and first[:2] == ["40", "0"]
        second = _second_process(PROMPT_RUN, server.base_url, kind, where).split(" ", 2)
        assert server.stats()["chat"] == 40  # the second process asked nothing
        assert second[:2] == ["0", "40"] and second[2] == first[2]
    if kind == "redis":
        dflow.RedisCache(where).clear()


def test_an_estimate_counts_cached_rows_as_free_and_stores_nothing(provider, fault_server):
    dflow.set_price("fault-chat", input=1.0, output=1.0)
    cache = dflow.MemoryCache()
    f = dflow.Flow("doc", str)
    f["a"] = f.prompt("Summarize {doc}", provider=provider, max_tokens=8, cache=cache)
    f.collect_batch(["one", "two"])
    estimate = f.estimate(["one", "two", "three"])
    assert estimate.requests == 1 and len(cache) == 2  # only "three" would be asked; nothing stored
    assert fault_server.stats()["chat"] == 2
