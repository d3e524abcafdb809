"""Provider precedence and the embedded offline defaults."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import daft_flow as dflow
from daft_flow.llm.local import LocalProvider

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_set_provider_then_env_then_local(monkeypatch, provider):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(dflow.default_provider(), LocalProvider)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    env = dflow.default_provider()
    assert isinstance(env, dflow.OpenAIProvider) and env.model == "gpt-4o-mini"
    dflow.set_provider(provider)
    try:
        assert dflow.default_provider() is provider
    finally:
        dflow.set_provider(None)
    with pytest.raises(TypeError):
        dflow.set_provider("openai")


def test_embedded_embeddings_are_minilm_384_dims():
    flow = dflow.Flow("text", str)
    flow["emb"] = flow["text"].embed_text(provider=LocalProvider())
    assert flow.fields["emb"] == dflow.DataType.embedding(384)
    a, b, c = (r["emb"] for r in flow.collect_batch(["a red fox", "a red fox", "quarterly revenue report"]))
    assert len(a) == 384 and a == b
    dot = sum(x * y for x, y in zip(a, c))
    assert abs(sum(x * x for x in a) - 1.0) < 1e-3 and dot < 0.9
    assert flow.last_usage()["emb"].requests == 1


def _run_example(name: str) -> str:
    import tempfile

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
    env.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], env=env, capture_output=True,
                             text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
@pytest.mark.llama_server
def test_quickstart_prints_one_summary_per_line():
    # Slow: the default run covers the same path (tests/llm/test_embedded_model.py); CI runs the script.
    out = _run_example("quickstart.py").splitlines()
    assert "chunk_summary" in out[0] and "requests=3" in out[-2]
    summaries = out[1:4]
    for line, start in zip(summaries, ("'The quick brown fox", "'The five boxing", "'Sphinx of black quartz")):
        assert line.startswith(start) and " -> " in line and line.split(" -> ", 1)[1].strip()


@pytest.mark.slow
@pytest.mark.llama_server
def test_contextual_embeddings_runs_on_embedded_defaults():
    out = _run_example("contextual_embeddings.py")
    assert "embedding: 384 dims" in out and "chunk_context: requests=" in out
