"""The seed's file and sink examples run offline, as scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import daft_flow as dflow

ROOT = Path(__file__).resolve().parents[2]


def _run(name: str) -> str:
    import tempfile

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
    env.pop("OPENAI_API_KEY", None)  # the examples' LLM ops run on the embedded defaults
    with tempfile.TemporaryDirectory() as cwd:  # examples write relative paths; keep them out of the repo
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                              timeout=600, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for bad in ("Unclosed", "Traceback", "Warning:", "fork"):
        assert bad not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_working_with_files_example():
    pytest.importorskip("pandas")
    out = _run("working_with_files.py").splitlines()
    assert len(out) == 2 and "Contributing to Daft" in out[0] and "'chunk_summary': '" in out[0]
    assert "A distributed query engine" in out[1] and "Contributing to Daft" in out[1]


def test_writing_data_example():
    out = _run("writing_data.py")
    assert "JSONFileSink('summaries/'): 3 row(s) written" in out
    assert '"chunk_index": 2' in out and "tracking" not in out
    summaries = [json.loads(line)["summary"] for line in out.splitlines() if line.startswith("{")]
    assert len(summaries) == 3 and all(s.strip() for s in summaries)


@pytest.mark.slow
@pytest.mark.llama_server
def test_writing_to_multiple_sinks_example():
    # Slow (it loads torch for the embeddings); its parts run in the default suite: Multisink with
    # S3 and LanceDB in tests/files/test_sinks.py, prompt + embed_text on the embedded models in
    # tests/llm. CI also runs every example as a script.
    pytest.importorskip("moto.server")
    pytest.importorskip("lancedb")
    out = _run("writing_to_multiple_sinks.py")
    assert "S3FileSink('s3://chunks/wikipedia'): 4 row(s) written" in out
    assert "LanceDBSink(" in out and "4 row(s) written" in out
