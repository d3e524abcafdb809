"""The interpreter exits cleanly whatever state a run is in."""
import os
import subprocess
import sys
import textwrap

import pytest

import daft_flow as dflow

PACKAGE_ROOT = os.path.dirname(os.path.dirname(dflow.__file__))

SCRIPTS = {
    "open stream": """
        import itertools, daft_flow as dflow
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
        s = flow.stream(itertools.count(), batch_rows=128)
        print(next(s)["y"])
    """,
    "async stream": """
        import asyncio, itertools, daft_flow as dflow
        async def slow(x: int) -> int:
            await asyncio.sleep(0.01)
            return x
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow, max_in_flight=4)
        s = flow.stream(itertools.count(), batch_rows=16)
        print(next(s)["y"] + 1)
    """,
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_exit_with_a_run_in_flight_is_clean(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    for _ in range(3):  # cwd: not the repo root, whose source tree has no built extension in CI
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPTS[name])], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "1"
