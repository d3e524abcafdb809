"""Making calls that outlive their timeout visible when they cannot be stopped.

An async function or an LLM request past its ``timeout=`` is cancelled and its row fails with
``TimeoutError``. A sync Python function cannot be interrupted safely from another thread (an
asynchronous exception would not stop a blocking call and could land inside library code), so it
goes on: at its timeout the watchdog logs a warning naming the op and the row, and when the call
returns its result is kept (and its duration logged). One thread per process watches every call
registered with a timeout; it starts with the first and exits when none is left.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Callable

_log = logging.getLogger("daft_flow")

_TICK_S = 0.05


class _Call:
    __slots__ = ("what", "timeout", "started", "warned")

    def __init__(self, what: Callable[[], str], timeout: float) -> None:
        self.what, self.timeout = what, timeout
        self.started = time.monotonic()
        self.warned = False


class Watchdog:
    """Warns about registered calls still running past their timeout (see the module docstring)."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def begin(self, what: Callable[[], str], timeout: float) -> int:
        """Registers a call; ``what()`` describes it (op and row) if a warning is needed."""
        token = next(self._ids)
        with self._cond:
            self._calls[token] = _Call(what, timeout)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="daft_flow-watchdog", daemon=True)
                self._thread.start()
        return token

    def end(self, token: int) -> None:
        with self._cond:
            call = self._calls.pop(token, None)
        if call is not None and call.warned:
            _log.warning("%s finished after %.1f s (its timeout is %g s); its result is kept", call.what(),
                         time.monotonic() - call.started, call.timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._calls:
                    self._thread = None
                    return
                now = time.monotonic()
                late = [c for c in self._calls.values() if not c.warned and now - c.started >= c.timeout]
                for c in late:
                    c.warned = True
            for c in late:
                try:
                    what = c.what()
                except Exception:  # a description must never break the watch
                    what = "a call"
                _log.warning("%s has been running for %.1f s, past its timeout of %g s; a sync Python function "
                             "cannot be interrupted: it goes on, and its result is kept when it returns", what,
                             now - c.started, c.timeout)
            time.sleep(_TICK_S)


watchdog = Watchdog()


def timed_row_function(fn: Callable[..., Any], op: str, flow: str, field: str, timeout: float) -> Callable[..., Any]:
    """``fn`` watched per call: the row comes from the runtime (``_core.current_row``), which the
    row loop publishes for ops with a timeout."""
    from daft_flow import _core

    def describe(row: Any) -> str:
        where = f"row {row[0]:016x} (input {row[1]})" if row is not None else "a row"
        return f"{op} computing field {field!r} on {where} of flow {flow!r}"

    def call(*args: Any) -> Any:
        row = _core.current_row()
        token = watchdog.begin(lambda: describe(row), timeout)
        try:
            return fn(*args)
        finally:
            watchdog.end(token)

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call
