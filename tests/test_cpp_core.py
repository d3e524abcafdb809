"""The C++ core's own unit tests (cpp/src/**/*_test.cc, GoogleTest), built without Python and run
as one test here so the default test run covers them. Skipped where GoogleTest is not installed
(.ci/run installs it: Debian's libgtest-dev)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_cpp_core_unit_tests():
    if not (REPO / "CMakeLists.txt").is_file() or not (REPO / "cpp" / "src").is_dir():
        pytest.skip("the C++ sources are not beside these tests")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    build = REPO / "build" / "cpp-tests"
    configure = subprocess.run([cmake, "-S", str(REPO), "-B", str(build), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                                "-DDFLOW_PYTHON_MODULE=OFF", "-DDFLOW_BUILD_TESTS=ON"],
                               capture_output=True, text=True)
    if configure.returncode != 0 and "GTest" in configure.stdout + configure.stderr:
        pytest.skip("GoogleTest is not installed (Debian: apt install libgtest-dev)")
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = subprocess.run([cmake, "--build", str(build), "--target", "dflow_core_tests", "-j",
                               str(os.cpu_count() or 2)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout[-5000:] + compiled.stderr[-5000:]
    ran = subprocess.run([str(build / "dflow_core_tests"), "--gtest_brief=1"], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stdout[-10000:] + ran.stderr[-3000:]
    assert "PASSED" in ran.stdout
