"""The seed's file and sink examples run offline, as scripts."""
from __future__ import annotations

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
    with tempfile.TemporaryDirectory() as cwd:  # examples write relative paths; keep them out of the repo
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                              timeout=120, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Unclosed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_working_with_files_example():
    pytest.importorskip("pandas")
    out = _run("working_with_files.py").splitlines()
    assert len(out) == 2 and "Contributing to Daft" in out[0]
    assert "A distributed query engine" in out[1] and "Contributing to Daft" in out[1]


def test_writing_data_example():
    out = _run("writing_data.py")
    assert "JSONFileSink('summaries/'): 3 row(s) written" in out
    assert '"chunk_index": 2' in out and "tracking" not in out


def test_writing_to_multiple_sinks_example():
    pytest.importorskip("moto.server")
    pytest.importorskip("lancedb")
    out = _run("writing_to_multiple_sinks.py")
    assert "S3FileSink('s3://chunks/wikipedia'): 8 row(s) written" in out
    assert "LanceDBSink(" in out and "8 row(s) written" in out
