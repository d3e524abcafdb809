"""``dflow.Job``: a run on a cluster in the background (``cluster.submit(flow, inputs)``)."""
from __future__ import annotations

import threading
from typing import Any, Iterable

from daft_flow.cluster.dispatch import JobCancelled, Monitor

_STATES = ("running", "succeeded", "failed", "cancelled")


class Job:
    """A submitted run. ``status()``: ``"running"``, ``"succeeded"``, ``"failed"`` or ``"cancelled"``;
    ``progress()``: inputs read and done, morsels done, in flight and re-sent, per worker;
    ``result(timeout=None)``: what ``collect_batch`` returns (rows, or ``SinkResult``s), or its
    error; ``cancel()``: stops the run (calls in flight are cancelled on the workers)."""

    def __init__(self, cluster: Any, target: Any, inputs: Iterable[Any], *, checkpoint: Any = None,
                 on_error: str = "raise", options: dict[str, Any]) -> None:
        from daft_flow.cluster.execute import BoundCluster
        from daft_flow.execution.options import get_options

        if not hasattr(target, "collect_batch"):
            raise TypeError(f"submit() needs a Flow, SinkFlow or Multisink, got {type(target).__name__}")
        if on_error not in ("raise", "return"):
            raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
        get_options(**options)  # bad options fail here, not in the background
        if checkpoint is not None:  # as collect_batch(cluster=..., checkpoint=...)
            options = dict(options, checkpoint=checkpoint)
        self.monitor = Monitor()
        self._cluster = BoundCluster(cluster, self.monitor)
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target, inputs, on_error, options),
                                        name="dflow-job", daemon=True)
        self._thread.start()

    def _run(self, target: Any, inputs: Iterable[Any], on_error: str, options: dict[str, Any]) -> None:
        try:
            self._result = target.collect_batch(inputs, on_error=on_error, cluster=self._cluster, **options)
        except BaseException as e:  # noqa: B036 - kept for result()
            self._error = e
        finally:
            self._done.set()

    def status(self) -> str:
        if not self._done.is_set():
            return "running"
        if isinstance(self._error, JobCancelled):
            return "cancelled"
        return "failed" if self._error is not None else "succeeded"

    def progress(self) -> dict[str, Any]:
        return {"status": self.status(), **self.monitor.snapshot()}

    def result(self, timeout: float | None = None) -> Any:
        """Waits for the run (at most ``timeout`` seconds: ``TimeoutError``) and returns its result
        or raises its error."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the job is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> bool:
        """Cancels the run and waits for it to stop; False if it had already finished."""
        if self._done.is_set():
            return False
        self.monitor.cancelled.set()
        self._done.wait()
        return isinstance(self._error, JobCancelled)

    def __repr__(self) -> str:
        p = self.monitor.snapshot()
        return f"dflow.Job({self.status()}, {p['inputs_done']} input(s) done)"
