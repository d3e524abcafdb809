"""Live progress: drawn on a terminal (tested under a pseudo-terminal), never into a pipe or a file."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import daft_flow as dflow
from daft_flow.execution import progress


# A run of about 1.5 s (150 rows of 10 ms) in batches of 16, so the display is redrawn a few times.
SCRIPT = """
import sys, time
import daft_flow as dflow
from daft_flow.execution import progress
progress.SHOW_AFTER_S = 0.0

def slow(x: int) -> int:
    time.sleep(0.01)
    if x == 75:
        print("halfway there", flush=True)
    return x

flow = dflow.Flow("numbers", int)
flow["y"] = flow["numbers"].run_python(slow, return_type=int)
options = eval(sys.argv[1]) if len(sys.argv) > 1 else {}
out = flow.collect_batch(list(range(150)), batch_rows=16, first_batch_rows=16, **options)
print("DONE", len(out), flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DFLOW_PROGRESS"}
    # The child imports the daft_flow this process runs (an installed wheel or an in-place build).
    env["PYTHONPATH"] = str(Path(dflow.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _under_pty(args: list[str], **env: str) -> str:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-c", SCRIPT, *args], cwd=str(Path.cwd()), env=_env(**env), encoding="utf-8",
                          timeout=120, dimensions=(40, 160))
    child.expect(r"DONE 150")
    before = child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, before
    return before


def test_progress_is_drawn_on_a_terminal():
    screen = _under_pty([])
    assert "daft_flow · numbers" in screen
    assert "rows/s" in screen and "failed" in screen
    assert "150/150 inputs (100%)" in screen  # the last frame: every input done, of a known total
    assert "\x1b[" in screen  # drawn in place with cursor movements, not printed line after line
    assert "halfway there" in screen  # what the function printed is shown too


@pytest.mark.parametrize("how", [{"DFLOW_PROGRESS": "0"}, {"arg": "{'progress': False}"}])
def test_progress_can_be_turned_off_on_a_terminal(how):
    args = [how["arg"]] if "arg" in how else []
    env = {k: v for k, v in how.items() if k != "arg"}
    screen = _under_pty(args, **env)
    assert "rows/s" not in screen and "daft_flow" not in screen


def test_nothing_is_printed_into_a_pipe_or_a_file(tmp_path):
    piped = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(), capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "halfway there\nDONE 150\n" and piped.stderr == ""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(), stdout=f, stderr=f, timeout=120)
    assert done.returncode == 0
    assert log.read_text() == "halfway there\nDONE 150\n"


def test_progress_shows_llm_tokens_and_cost_on_a_given_console(provider, fault_server, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    fault_server.configure(latency=0.05)
    dflow.set_price("fault-chat", input=1.0, output=2.0)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    flow = dflow.Flow("doc", str)
    flow["summary"] = flow["doc"].prompt("summarize", provider=provider, max_tokens=8)
    flow.collect_batch([f"document number {i}" for i in range(40)], progress=console, max_cost_usd=1.0)
    text = out.getvalue()
    report = flow.last_run()
    op = report.ops["summary"]
    assert f"{op.input_tokens:,}/{op.output_tokens:,}" in text  # tokens of the last frame
    assert f"${op.cost_usd:.4f}" in text and "of $1" in text  # cost so far, against the budget
    assert "40/40 inputs" in text


class _Monitor:
    """What headline() reads of a run's monitor."""

    def __init__(self, done: int, total: int | None) -> None:
        from daft_flow.plan.trace import trace

        flow = dflow.Flow("doc", str)
        self.plan = trace(flow).plan
        self.inputs_done, self.total_inputs = done, total
        self.stages: list = []
        self.budget = None


def test_headline_has_an_eta_only_when_the_input_size_is_known():
    assert progress.headline(_Monitor(25, 100), t=10.0) == "daft_flow · doc · 25/100 inputs (25%) · 0:10 · ETA 0:30"
    assert progress.headline(_Monitor(25, None), t=10.0) == "daft_flow · doc · 25 inputs · 0:10"
    assert "ETA" not in progress.headline(_Monitor(100, 100), t=10.0)


def test_progress_option_is_checked():
    flow = dflow.Flow("x", int)
    with pytest.raises(TypeError, match="progress must be None"):
        flow.collect_batch([1], progress="yes")
    assert progress.progress_for(False) is None
    assert progress.progress_for(None) is None  # pytest captures stderr: not a terminal
