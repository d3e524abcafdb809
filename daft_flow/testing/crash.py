"""SIGKILLing a checkpointed run mid-way, for crash tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import daft_flow


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports this daft_flow (a built checkout or the
    installed wheel), never the checkout it runs from."""
    parent = str(Path(daft_flow.__file__).resolve().parents[1])
    return dict(os.environ, DFLOW_PROGRESS="0", PYTHONPATH=parent)


def sigkill_after(args: list[str], checkpoint: str, seconds: float) -> None:
    """Runs ``python -P *args`` and SIGKILLs it ``seconds`` after its checkpoint's manifest appeared;
    raises AssertionError if it ended by itself before that."""
    proc = subprocess.Popen([sys.executable, "-P", *args], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not os.path.exists(f"{checkpoint}/manifest.json") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(seconds)
    if proc.poll() is not None:
        raise AssertionError(f"the run ended before it was killed: {proc.communicate()}")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
