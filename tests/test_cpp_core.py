"""The C++ core's own unit tests (cpp/src/**/*_test.cc, GoogleTest), built without Python by
tools/cpp-tests and run as one test here so the default test run covers them. Skipped where
GoogleTest or cmake is not installed (.ci/run installs GoogleTest: Debian's libgtest-dev)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_cpp_core_unit_tests():
    script = REPO / "tools" / "cpp-tests"
    if not script.is_file() or not (REPO / "cpp" / "src").is_dir():
        pytest.skip("the C++ sources are not beside these tests")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    ran = subprocess.run([str(script), "--gtest_brief=1"], capture_output=True, text=True, timeout=900)
    if ran.returncode != 0 and re.search(r'Could NOT find GTest|provided by "GTest"', ran.stderr):
        pytest.skip("GoogleTest is not installed (Debian: apt install libgtest-dev)")
    assert ran.returncode == 0, ran.stdout[-10000:] + ran.stderr[-5000:]
    assert "PASSED" in ran.stdout
