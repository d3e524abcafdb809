"""What `pip install daft-flow` without extras must do: flows with Python functions and native
text ops, prompt() and embed_text() against an OpenAI-compatible server (here the fault server),
fingerprints and plans that travel. These tests import nothing but daft_flow's own dependencies;
CI also runs them (`-m no_extras`) in a fresh virtualenv made with `pip install .` alone, so a
dependency missing from pyproject.toml fails CI."""
import os
import subprocess
import sys

import pytest

import daft_flow as dflow
from daft_flow.testing import FaultServer

pytestmark = pytest.mark.no_extras

KEY = "sk-no-extras-0123456789"


def _flow(provider: dflow.OpenAIProvider) -> dflow.Flow:
    doc = dflow.Flow("doc", str)
    doc["words"] = doc["doc"].run_python(lambda s: len(s.split()), return_type=int)
    chunks = doc["doc"].chunk_text(max_chars=24, overlap=4)
    chunks["summary"] = chunks.prompt("Summarize: {c}".format(c=chunks["chunk"]), provider=provider, max_tokens=8)
    chunks["vec"] = chunks["chunk"].embed_text(provider=provider)
    chunks["words"] = doc["words"]
    return chunks


def test_prompt_and_embed_text_against_an_openai_compatible_server():
    with FaultServer(api_key=KEY) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=KEY, model="fault-chat",
                                        embedding_model="fault-embed")
        rows = _flow(provider).collect("the quick brown fox jumps over the lazy dog and keeps running")
        assert len(rows) >= 2
        assert all(r["summary"].startswith("answer") and len(r["vec"]) == 384 and r["words"] == 12 for r in rows)
        assert server.stats()["received"] >= len(rows) + 1


def test_a_plan_travels_to_a_fresh_process_without_extras(tmp_path):
    with FaultServer(api_key=KEY) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=KEY, api_key_env="NO_EXTRAS_KEY",
                                        model="fault-chat", embedding_model="fault-embed")
        flow = _flow(provider)
        text = "pack my box with five dozen liquor jugs, then rest"
        expected = flow.collect(text)
        (tmp_path / "plan.bin").write_bytes(flow.to_bytes())
        code = ("import json, sys, daft_flow as dflow\n"
                "flow = dflow.Flow.from_bytes(open(sys.argv[1], 'rb').read())\n"
                "print(json.dumps({'rows': flow.collect(sys.argv[2]), 'fp': flow.fingerprint()}))\n")
        # The daft_flow under test (the source tree in development, site-packages in CI's venv).
        env = dict(os.environ, NO_EXTRAS_KEY=KEY, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "plan.bin"), text], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    got = json.loads(proc.stdout)
    assert got["fp"] == flow.fingerprint()
    assert [{k: v for k, v in r.items() if k != "vec"} for r in got["rows"]] == \
        [{k: v for k, v in r.items() if k != "vec"} for r in expected]
    assert KEY.encode() not in flow.to_bytes()


def test_a_tokenizer_from_a_file_needs_no_model_package(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n##s\n")
    tok = dflow.Tokenizer.from_file(vocab)
    flow = dflow.Flow("d", str)
    flow["ids"] = flow["d"].tokenize(tok)
    chunks = flow["d"].chunk_text(max_tokens=2, overlap_tokens=0, tokenizer=tok)
    assert flow.collect("hello worlds")["ids"] == [2, 4, 5, 6, 3]
    assert [c["chunk"] for c in chunks.collect("hello world hello")] == ["hello world ", "hello"]
    assert dflow.Flow.from_bytes(chunks.to_bytes()).fingerprint() == chunks.fingerprint()


def test_native_expressions_filter_and_limit():
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].str.len()
    kept = doc.filter(doc["n"] > 3).limit(2)
    kept["word"] = kept["doc"].str.lower().str.extract(r"(\w+)")
    assert kept.collect_batch(["ab", "Hello world", "Big Sky", "later"]) == [
        {"doc": "Hello world", "n": 11, "word": "hello"}, {"doc": "Big Sky", "n": 7, "word": "big"}]


def test_run_reports_estimates_and_budgets_without_extras():
    import json

    with FaultServer(api_key=KEY) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=KEY, model="fault-chat",
                                        embedding_model="fault-embed")
        dflow.set_price("fault-chat", input=1.0, output=2.0)
        dflow.set_price("fault-embed", input=0.1)
        flow = _flow(provider)
        inputs = ["the quick brown fox jumps over the lazy dog and keeps running"] * 3
        estimate = flow.estimate(inputs)
        assert server.stats().get("received", 0) == 0  # estimating sends nothing
        flow.collect_batch(inputs, max_cost_usd=1.0)
        report = flow.last_run()
        assert report.ops["summary"].requests == estimate.ops["summary"].requests == server.stats()["chat"]
        assert report.accounting["doc"]["rows"] == 3 and json.loads(report.to_json())["flows"]["doc"]["rows"] == 3
        assert "<svg" in report._repr_html_()


def test_a_dflow_worker_runs_a_flow_without_extras():
    from daft_flow.testing.workers import WorkerProcess

    flow = dflow.Flow("doc", str)
    flow["n"] = flow["doc"].run_python(lambda s: len(s.split()), return_type=int)
    with WorkerProcess("--threads", "1", token="no-extras-token") as worker:
        cluster = dflow.Cluster([worker.address], token="no-extras-token", morsel_rows=2)
        docs = ["a b", "c", "d e f", "g h i j", ""]
        assert flow.collect_batch(docs, cluster=cluster) == flow.collect_batch(docs)
