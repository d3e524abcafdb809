"""What happens when user code does what no engine can contain (docs/user-guide.md, "Failure
modes"), and hostile things it can."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import daft_flow as dflow

PACKAGE_ROOT = os.path.dirname(os.path.dirname(dflow.__file__))


def run_script(script: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_a_segfault_in_user_code_kills_the_process(tmp_path):
    # Functions run in the caller's process: a crash in native code takes the process with it.
    # (Isolate such code in a subprocess or a worker; see the user guide.)
    proc = run_script("""
        import ctypes, daft_flow as dflow
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: ctypes.string_at(0) if x == 1 else x)
        print("before", flush=True)
        flow.collect_batch([0, 1, 2], on_error="return")
        print("after", flush=True)
    """, tmp_path)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout.split() == ["before"]


def test_a_function_emptying_the_input_list_does_not_crash_the_run():
    inputs = [f"value {i}" for i in range(1000)]

    def evil(s: str) -> str:
        inputs.clear()
        return s

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(evil)
    results = flow.collect_batch(inputs)  # the list shrinks under the run: what was read is processed
    assert 0 < len(results) <= 1000
    assert all(r["y"] == r["x"] for r in results)


def test_a_function_replacing_inputs_while_they_are_copied_does_not_crash_the_run():
    inputs = [f"value {i}" * 100 for i in range(20_000)]

    def evil(s: str) -> str:
        for i in range(0, len(inputs), 7):
            inputs[i] = None  # drops the only reference to a value the source may be copying
        return s

    flow = dflow.Flow("x", str | None)
    flow["y"] = flow["x"].run_python(evil)
    assert len(flow.collect_batch(inputs, batch_rows=512)) == 20_000


def test_an_async_generator_function_is_rejected_when_the_op_is_built():
    async def agen(x: int):
        yield x

    with pytest.raises(TypeError, match="async generator"):
        dflow.Flow("x", int)["x"].run_python(agen)


def test_exit_waits_for_a_call_a_stopped_run_left_running(tmp_path):
    # A stream left early cancels its run; the row function in the middle of a call finishes in the
    # background. Interpreter exit waits for it (a call still inside Python while the interpreter
    # finalizes would be ended mid-call), then exits cleanly.
    marker = tmp_path / "finished"
    proc = run_script(f"""
        import time, daft_flow as dflow
        def slow(x: int) -> int:
            if x > 0:
                time.sleep(1.0)
                open({str(marker)!r}, "w").close()
            return x
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow)
        stream = flow.stream(range(100), batch_rows=2, first_batch_rows=2)
        print(next(stream)["y"], flush=True)
        stream.close()  # the call on row 1 is under way: left running
    """, tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.split() == ["0"]
    assert marker.exists()
