"""The runtime's event loop survives what user code does to it, forked children get their own,
and collect() called from places that would wait for themselves fails at once with advice."""
import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

import daft_flow as dflow
from daft_flow.execution import event_loop

PACKAGE_ROOT = os.path.dirname(os.path.dirname(dflow.__file__))


async def _inc(x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


def async_flow():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(_inc)
    return flow


def run_script(script: str, tmp_path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_exit_in_an_async_function_stop_the_run_and_the_loop_lives(error):
    async def boom(x: int) -> int:
        if x == 2:
            raise error()
        await asyncio.sleep(0.01)
        return x

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(boom)
    with pytest.raises(error):
        flow.collect_batch(range(5))
    assert event_loop.alive()
    assert async_flow().collect_batch([1, 2]) == [{"x": 1, "y": 2}, {"x": 2, "y": 3}]


def _raise_keyboard_interrupt():
    raise KeyboardInterrupt


def test_the_loop_survives_callbacks_that_raise_or_stop_it():
    async def rude(x: int) -> int:
        loop = asyncio.get_running_loop()
        if x == 0:
            loop.call_soon(_raise_keyboard_interrupt)  # escapes run_forever, not through our runner
        else:
            loop.stop()
        await asyncio.sleep(0.01)
        return x

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(rude)
    assert [r["y"] for r in flow.collect_batch([0, 1])] == [0, 1]
    assert event_loop.alive()
    assert async_flow().collect(1) == {"x": 1, "y": 2}


def test_a_stopped_loop_is_started_again():
    # What interpreter exit does (an atexit handler registered before daft_flow's may still run
    # flows afterwards): a later run must not hang.
    from daft_flow.io import locations

    locations._close_at_exit()
    event_loop._shutdown()
    assert not event_loop.alive()
    assert async_flow().collect(1) == {"x": 1, "y": 2}
    assert event_loop.alive()


def test_an_async_function_calling_collect_on_the_loop_fails_at_once_with_advice():
    inner = async_flow()

    async def calls_collect(x: int) -> int:
        return inner.collect(x)["y"]

    flow = dflow.Flow("x", int)
    flow["z"] = flow["x"].run_python(calls_collect)
    results = flow.collect_batch([1, 2], on_error="return")
    assert all(isinstance(r, dflow.RowFailure) for r in results)
    message = str(results[0].error)
    assert isinstance(results[0].error, RuntimeError) and "asyncio.to_thread(flow.collect" in message

    async def advised(x: int) -> int:
        return (await asyncio.to_thread(inner.collect, x))["y"]

    flow["z"] = flow["x"].run_python(advised)
    assert [r["z"] for r in flow.collect_batch([1, 2])] == [2, 3]


def test_collect_of_a_sync_flow_from_an_async_function_works():
    inner = dflow.Flow("x", int)
    inner["y"] = inner["x"].run_python(lambda x: x * 10, return_type=int)

    async def calls_collect(x: int) -> int:
        return inner.collect(x)["y"]

    flow = dflow.Flow("x", int)
    flow["z"] = flow["x"].run_python(calls_collect)
    assert [r["z"] for r in flow.collect_batch([1, 2])] == [10, 20]


def test_collect_from_a_row_function_and_a_batch_function_of_another_run():
    inner = async_flow()
    flow = dflow.Flow("x", int)
    flow["row"] = flow["x"].run_python(lambda x: inner.collect(x)["y"], return_type=int)
    flow["batch"] = flow["x"].run_python(lambda xs: [r["y"] for r in inner.collect_batch(xs)], batch=True,
                                         return_type=int)
    assert flow.collect_batch(range(4)) == [{"x": i, "row": i + 1, "batch": i + 1} for i in range(4)]


def test_collect_from_a_coroutine_running_on_the_main_thread():
    async def notebook_cell():  # what a Jupyter cell is: a coroutine on a loop in the main thread
        return async_flow().collect_batch([1, 2])

    assert asyncio.run(notebook_cell()) == [{"x": 1, "y": 2}, {"x": 2, "y": 3}]


def test_a_forked_child_runs_async_llm_and_read_ops(tmp_path):
    (tmp_path / "doc.txt").write_text("hello from a file")
    script = f"""
        import asyncio, multiprocessing, os, sys, faulthandler
        import daft_flow as dflow
        from daft_flow.testing import FaultServer
        faulthandler.dump_traceback_later(60, exit=True)

        async def inc(x: int) -> int:
            await asyncio.sleep(0.001)
            return x + 1

        server = FaultServer().start()
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=server.api_key, model="fault-chat")
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(inc)
        llm = dflow.Flow("t", str)
        llm["a"] = llm["t"].prompt("q", provider=provider, max_tokens=3)
        files = dflow.Flow("path", str).open_file().read()

        def work():
            assert flow.collect(1)["y"] == 2
            assert llm.collect("hi")["a"].startswith("answer")
            assert files.collect({str(tmp_path / "doc.txt")!r})["text"] == "hello from a file"
            return "ok"

        print("parent", work(), flush=True)
        open_stream = flow.stream(range(10**6), batch_rows=4)  # a run in flight at fork time
        next(open_stream)

        pid = os.fork()
        if pid == 0:
            print("os.fork child", work(), flush=True)
            del open_stream  # the parent's run: dropped without waiting for threads that are not here
            import gc
            gc.collect()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0

        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            print("pool children", pool.apply(work), flush=True)
        print("parent again", work(), flush=True)
        open_stream.close()
        server.stop()
    """
    proc = run_script(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["parent ok", "os.fork child ok", "pool children ok", "parent again ok"]


def test_a_run_started_before_fork_cannot_be_read_in_the_child(tmp_path):
    script = """
        import os, daft_flow as dflow
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: x, return_type=int)
        s = flow.stream(range(10**6), batch_rows=4)
        next(s)
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(100):
                    next(s)
            except RuntimeError as e:
                print("child:", "another process" in str(e), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent:", next(s)["y"] >= 1)
    """
    proc = run_script(script, tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child:", "True", "parent:", "True"]


def test_a_stream_that_stops_on_a_failed_row_leaves_no_pending_task(tmp_path):
    script = """
        import asyncio, time, daft_flow as dflow

        async def slow(x: int) -> int:
            if x == 3:
                raise ValueError("bad")
            try:
                await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                time.sleep(0.01)  # clean-up that takes a moment
                raise
            return x

        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(slow, max_in_flight=50)
        try:
            for row in flow.stream(range(200), batch_rows=8):
                pass
        except ValueError:
            print("failed as expected")
    """
    for _ in range(2):
        proc = run_script(script, tmp_path, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == "failed as expected", proc.stderr
        assert "Task was destroyed" not in proc.stderr and "never retrieved" not in proc.stderr, proc.stderr


def test_collect_in_a_real_notebook_kernel_with_top_level_await(tmp_path):
    # Jupyter runs cells on its own event loop in the main thread; a cell may also await.
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [
        f"import sys\nsys.path.insert(0, {PACKAGE_ROOT!r})\nimport asyncio\nimport daft_flow as dflow",
        "async def inc(x: int) -> int:\n    await asyncio.sleep(0.001)\n    return x + 1\n\n"
        "flow = dflow.Flow('x', int)\nflow['y'] = flow['x'].run_python(inc)\n"
        "print(sum(r['y'] for r in flow.collect_batch(range(100))))",
        "await asyncio.sleep(0)\nprint((await asyncio.to_thread(flow.collect, 1))['y'], flow.collect(2)['y'])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    outputs = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream") for cell in nb.cells]
    assert outputs[1].strip() == "5050" and outputs[2].split() == ["2", "3"]


def test_locks_held_by_another_thread_at_fork_are_free_in_the_child(tmp_path):
    script = """
        import os, threading
        import daft_flow as dflow
        from daft_flow.execution import event_loop
        from daft_flow.forksafe import ForkSafeLock
        from daft_flow.llm import provider

        held = threading.Event()
        release = threading.Event()

        def hold():
            with event_loop._lock, provider._runs_lock:  # e.g. a thread starting the loop, a run starting
                held.set()
                release.wait()

        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            ok = event_loop._lock.acquire(timeout=5) and provider._runs_lock.acquire(timeout=5)
            flow = dflow.Flow("x", int)
            flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
            print("child", ok, flow.collect(1)["y"], flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        release.set()
        print("parent", isinstance(provider._runs_lock, ForkSafeLock))
    """
    proc = run_script(script, tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child", "True", "2", "parent", "True"]
