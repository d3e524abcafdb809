"""The first read() of a process: no avoidable set-up inside the run, and a pool that does not cap reads."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow.convert import values_to_arrow
from daft_flow.types import DataType

# The child imports the daft_flow this test runs (the installed wheel in CI, the checkout in place).
IMPORT_ROOT = str(Path(dflow.__file__).resolve().parents[1])


def _run(script: str) -> str:
    env = {**os.environ, "PYTHONPATH": IMPORT_ROOT}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_building_a_read_starts_importing_what_reads_need_on_its_own_thread():
    out = _run("""
        import sys
        import daft_flow as dflow
        print("before", "aiohttp" in sys.modules, "fsspec" in sys.modules)
        from daft_flow.io.warmup import warm_up_reads
        flow = dflow.Flow("url", str).open_file().read()
        thread = warm_up_reads()  # the one the op started
        thread.join(60)
        print("after", "aiohttp" in sys.modules, "fsspec.implementations.http" in sys.modules,
              "daft_flow.execution.runner" in sys.modules, thread.name)
    """)
    assert "before False False" in out
    assert "after True True True daft_flow-read-warmup" in out


def test_a_plan_loaded_in_another_process_warms_up_its_reads_too():
    flow = dflow.Flow("url", str).open_file().read()
    out = _run(f"""
        import sys
        import daft_flow as dflow
        flow = dflow.Flow.from_bytes({flow.to_bytes()!r})
        from daft_flow.io.warmup import warm_up_reads
        warm_up_reads().join(60)
        print("aiohttp" in sys.modules)
    """)
    assert out.strip() == "True"


def test_the_first_read_of_a_process_does_not_import_pandas(tmp_path):
    # pyarrow imports pandas (when installed) on the first pa.array(list) of a process: a fifth of a
    # second that the first read() used to pay inside its run, converting the Files open_file() made.
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.txt").write_text("world")
    out = _run(f"""
        import sys
        import daft_flow as dflow
        flow = dflow.Flow("path", str).open_file().read()
        rows = flow.collect_batch([{str(tmp_path / "a.txt")!r}, {str(tmp_path / "b.txt")!r}], progress=False)
        print(rows[0]["text"], rows[1]["text"], "pandas" in sys.modules)
    """)
    assert out.split() == ["hello", "world", "False"]


def test_files_become_the_struct_array_pyarrow_would_make():
    t = DataType("File")
    values = [dflow.File("a.txt"), None, "https://example.com/b", dflow.File("ünï/c.txt"), 42]
    array, failures = values_to_arrow(values, t)
    expected = pa.array([{"url": "a.txt"}, None, {"url": "https://example.com/b"}, {"url": "ünï/c.txt"}, None],
                        type=t.to_arrow())
    assert array.equals(expected)
    assert [i for i, _ in failures] == [4]


def test_reads_are_not_capped_by_the_connection_pool(http_files):
    # aiohttp's default pool holds 100 connections: more reads than that at once must not queue on it.
    root, server = http_files
    for i in range(140):
        (root / f"f{i}.txt").write_text(str(i))
    # The server holds GETs until 101 are in flight at once, or no more come for a second (a pool of
    # 100 would stop there; so does the first batch, which the run reads alone to size the rest).
    server.gather = 101
    flow = dflow.Flow("url", str).open_file().read(max_in_flight=140)
    texts = flow.collect_arrow([f"{server.url}/f{i}.txt" for i in range(140)], progress=False)["text"].to_pylist()
    assert texts == [str(i) for i in range(140)]
    assert server.max_in_flight > 100, f"at most {server.max_in_flight} reads at once"


@pytest.mark.parametrize("max_in_flight,batches", [(8, 4), (128, 8), (640, 40)])
def test_async_ops_work_on_enough_batches_to_fill_their_cap(max_in_flight, batches):
    from daft_flow.execution.python_runners import async_batches

    assert async_batches(4, max_in_flight) == batches
