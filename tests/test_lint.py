"""The Python sources pass ruff with the project's rules (pyproject.toml [tool.ruff])."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None or not (REPO / "pyproject.toml").is_file():
        pytest.skip("ruff is not installed or the sources are not beside these tests")
    result = subprocess.run([ruff, "check", "--output-format", "concise", str(REPO)], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
