"""A one-line progress report on stderr for long runs."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports inputs, rows and failures at most every ``interval`` seconds once a run has lasted
    ``delay`` seconds. ``enabled=None`` means: only when stderr is a terminal."""

    def __init__(self, flow: str, enabled: bool | None, stream: TextIO | None = None, delay: float = 2.0,
                 interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = isatty if enabled is None else enabled
        self.flow, self.delay, self.interval = flow, delay, interval
        self.start = time.monotonic()
        self.last = 0.0
        self.inputs = self.rows = self.failures = self.filtered = 0
        self.shown = False

    def update(self, inputs: int, rows: int, failures: int, filtered: int = 0) -> None:
        self.inputs += inputs
        self.rows += rows
        self.failures += failures
        self.filtered += filtered
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start >= self.delay and now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        self.stream.write(f"\r[daft_flow] {self.flow}: {self.inputs:,} inputs, {self.rows:,} rows, "
                          f"{self.failures:,} failed, {self.filtered:,} filtered, {self.rows / elapsed:,.0f} rows/s, "
                          f"{elapsed:,.1f}s")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.enabled and self.shown:
            self._print(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
