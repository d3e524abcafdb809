"""Ctrl-C stops a run promptly: between rows of a slow row function, while the input iterable
blocks, and inside slow async functions; the caller gets KeyboardInterrupt.

Each case runs in its own process, gets SIGINT once its work has started, and must raise
KeyboardInterrupt long before the work it interrupted would have finished (60 s of it; the bound
below is generous and only proves the run did not wait for the whole batch or input)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import daft_flow as dflow

PACKAGE_ROOT = os.path.dirname(os.path.dirname(dflow.__file__))
WORK_SECONDS = 60  # what each script would take if Ctrl-C waited for the work in progress
BOUND_SECONDS = 20

SCRIPTS = {
    "slow row function": """
        import sys, time, daft_flow as dflow
        def slow(x: int) -> int:
            print("started", flush=True)
            time.sleep(0.2)
            return x
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow)
        flow.collect_batch(range(300), batch_rows=300, first_batch_rows=300)  # one batch: 60 s
    """,
    "builtin row function": """
        import math, sys, daft_flow as dflow
        # A builtin runs no bytecode, so the interpreter never hands the GIL to the waiting main
        # thread by itself: the row loop must. factorial(100000) holds the GIL for about 0.1 s.
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(math.factorial)
        def inputs():
            yield 1
            print("started", flush=True)
            yield from [100000] * 599
        flow.collect_batch(inputs(), batch_rows=600, first_batch_rows=600)
    """,
    "one very slow row": """
        import sys, time, daft_flow as dflow
        def slow(x: int) -> int:
            print("started", flush=True)
            time.sleep(60)  # one call that takes a minute: it finishes in the background
            return x
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow)
        flow.collect(1)
    """,
    "blocking input": """
        import sys, time, daft_flow as dflow
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: x, return_type=int)
        def inputs():
            yield 1
            print("started", flush=True)
            time.sleep(60)  # a queue that never delivers
            yield 2
        for row in flow.stream(inputs()):
            pass
    """,
    "slow async function": """
        import asyncio, sys, daft_flow as dflow
        async def slow(x: int) -> int:
            print("started", flush=True)
            await asyncio.sleep(60)
            return x
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow)
        flow.collect_batch(range(10))
    """,
    "slow batch function in chunks": """
        import sys, time, daft_flow as dflow
        def slow(xs):
            print("started", flush=True)
            time.sleep(0.2)
            return xs
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow, batch=True, batch_size=1, return_type=int)
        flow.collect_batch(range(300), batch_rows=300, first_batch_rows=300)
    """,
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_ctrl_c_interrupts_promptly(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPTS[name])], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
        time.sleep(0.3)  # well inside the work
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stderr = []
        for line in proc.stderr:  # the traceback is printed as soon as the caller gets the interrupt
            stderr.append(line)
            if line.startswith("KeyboardInterrupt"):
                break
        took = time.monotonic() - interrupted
        # The process then ends, after waiting (a few seconds at most) for a call still in progress.
        stderr.append(proc.communicate(timeout=WORK_SECONDS)[1])
    finally:
        proc.kill()
        proc.wait()
    stderr = "".join(stderr)
    assert "Traceback" in stderr and "KeyboardInterrupt" in stderr, stderr
    assert proc.returncode != 0
    assert took < BOUND_SECONDS, f"Ctrl-C took {took:.1f}s: it waited for the work in progress"


def test_keyboard_interrupt_raised_by_the_input_iterable_reaches_the_caller():
    def inputs():
        yield 1
        raise KeyboardInterrupt

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x, return_type=int)
    with pytest.raises(KeyboardInterrupt):
        flow.collect_batch(inputs())
    assert flow.collect(2) == {"x": 2, "y": 2}
