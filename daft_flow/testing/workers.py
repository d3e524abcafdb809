"""``dflow-worker`` processes for tests and benchmarks: started on a free loopback port, their log
kept, stopped (SIGTERM, then SIGKILL) when the ``with`` block ends."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import daft_flow

_LISTENING = re.compile(r"listening on (grpc(?:\+tls)?://\S+)")


class WorkerProcess:
    """A ``dflow-worker`` in its own process. ``address`` is ``host:port``; ``log`` what it wrote."""

    def __init__(self, *args: str, token: str | None = None, env: dict[str, str] | None = None,
                 startup_timeout: float = 60.0, python: list[str] | None = None) -> None:
        # -P: the current directory is not put first on the worker's sys.path, so a source checkout that
        # is the current directory (its daft_flow without the built extension) cannot shadow this one.
        cmd = [*(python or [sys.executable, "-P", "-m", "daft_flow.cluster.worker"]), "--listen", "127.0.0.1:0", *args]
        environ = dict(os.environ)
        # The daft_flow this process runs (a source checkout included) is the one the worker imports.
        root = os.path.dirname(os.path.dirname(os.path.abspath(daft_flow.__file__)))
        environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [environ.get("PYTHONPATH")])])
        environ.pop("DFLOW_WORKER_TOKEN", None)
        if token is not None:
            environ["DFLOW_WORKER_TOKEN"] = token
        environ.update(env or {})
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=environ, text=True)
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="dflow-worker-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + startup_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dflow-worker did not start (exit {self.proc.returncode}):\n{self.log}")
        self.address = self.url.split("://", 1)[1]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = _LISTENING.search(line)
            if m and not self.url:
                self.url = m.group(1)
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, mid-morsel, as a crashed machine would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.stop()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the worker drains), then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()
        return int(self.proc.returncode)

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def kill_while_busy(job: Any, victim: WorkerProcess, morsels_done: int = 3) -> None:
    """SIGKILLs ``victim`` while it holds a morsel of ``job``, once ``morsels_done`` results came back."""
    while True:
        p = job.progress()
        if p["workers"].get(victim.address, {}).get("in_flight", 0) > 0 and p["morsels_done"] >= morsels_done:
            break
        if job.status() != "running":
            raise AssertionError(f"the job ended ({job.status()}) before {victim.address} could be killed mid-morsel")
        time.sleep(0.002)
    victim.kill()
