"""Spreading morsels over executors (dflow-workers or Ray actors) and handing results back in input order.

Each executor gets as many threads as it has slots (its reported capacity), so no executor ever
has more morsels in flight than it said it can run: that is the backpressure. Inputs are read
lazily, at most ``window`` morsels ahead of the oldest result not yet handed to the caller, so a
``stream()`` over an endless generator holds a bounded number of morsels.

A morsel whose executor is lost (the process died, the connection broke, the worker is draining)
goes back to the front of the queue and runs elsewhere; its partial results are dropped, so every
row is handed over exactly once. A morsel that lost ``max_attempts`` executors stops the run
(it may be what kills them). Any other error (a refused token, an error of the run itself) stops
the run and reaches the caller.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import pyarrow as pa

from daft_flow.cluster.wire import MorselResult
from daft_flow.errors import FlowError

_log = logging.getLogger("daft_flow")


class ClusterError(FlowError):
    """A cluster could not run the work: no worker reachable, a refused token, another IR
    version, every worker lost, or a morsel that killed the workers it ran on."""


class JobCancelled(FlowError):
    """The job (or the run) was cancelled before it finished."""


class WorkerLost(Exception):
    """The executor can no longer be used (its process died, its connection broke, it is shutting
    down); its morsels in flight are re-sent elsewhere."""


@dataclass
class Morsel:
    """Consecutive inputs, numbered globally from ``first_input``, encoded once for every attempt."""

    seq: int
    first_input: int
    num_inputs: int
    batch: pa.RecordBatch | None
    result: MorselResult | None = None  # set when the client itself settled it (an input too large to send)
    lost_on: list[str] = field(default_factory=list)


class Executor:
    """Where morsels run. ``run`` raises ``WorkerLost`` when the executor is gone for good;
    ``cancel`` aborts its calls in flight (from another thread)."""

    name: str = ""
    slots: int = 1

    def run(self, morsel: Morsel) -> MorselResult:
        raise NotImplementedError

    def cancel(self) -> None:
        pass

    def alive(self, timeout: float) -> bool:
        """Whether it still answers (asked while it holds morsels); True where the transport
        notices failures itself."""
        return True


class Monitor:
    """What a run has done so far (``Job.progress()``), and its cancel switch."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.inputs_read = 0
        self.inputs_done = 0
        self.morsels_done = 0
        self.morsels_resent = 0
        self.in_flight: dict[str, int] = {}
        self.done_by: dict[str, int] = {}
        self.lost: dict[str, str] = {}
        self.input_exhausted = False

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            workers = {name: {"in_flight": self.in_flight.get(name, 0), "morsels_done": self.done_by.get(name, 0),
                              "lost": self.lost.get(name)} for name in {*self.in_flight, *self.done_by, *self.lost}}
            return {"inputs_read": self.inputs_read, "inputs_done": self.inputs_done,
                    "input_exhausted": self.input_exhausted, "morsels_done": self.morsels_done,
                    "morsels_in_flight": sum(self.in_flight.values()), "morsels_resent": self.morsels_resent,
                    "elapsed_s": round(time.monotonic() - self.started, 3), "workers": workers}


class Dispatcher:
    """Runs ``morsels`` on ``executors``; iterate it for (morsel, result) in input order (or in
    completion order with ``ordered=False``). Closing the iterator cancels what is in flight."""

    def __init__(self, executors: list[Executor], morsels: Iterator[Morsel], *, ordered: bool = True,
                 window: int | None = None, max_attempts: int = 3, monitor: Monitor | None = None,
                 heartbeat_s: float = 10.0) -> None:
        if not executors:
            raise ClusterError("no executor to run morsels on")
        self.executors = executors
        self.morsels = morsels
        self.ordered = ordered
        slots = sum(e.slots for e in executors)
        self.window = window or max(4, 2 * slots)
        self.max_attempts = max_attempts
        self.monitor = monitor or Monitor()
        self.cond = threading.Condition()
        self.retry: collections.deque[Morsel] = collections.deque()
        self.finished: dict[int, tuple[Morsel, MorselResult]] = {}
        self.completion_order: collections.deque[int] = collections.deque()
        self.next_seq = 0  # next sequence number the input will get
        self.next_out = 0  # next sequence number to hand over (ordered)
        self.handed = 0
        self.in_flight = 0
        self.exhausted = False
        self.error: BaseException | None = None
        self.dead: dict[str, str] = {}
        self.threads: list[threading.Thread] = []
        self.stopping = False
        self.pulling = False  # a thread is reading the next morsel from the input
        self.heartbeat_s = heartbeat_s

    # -- worker threads -----------------------------------------------------------------------------
    def _take(self, ex: Executor) -> Morsel | None:
        """The next morsel for ``ex``: a re-sent one first, else a new one from the input (read and
        encoded outside the lock, one reader at a time, so results keep flowing meanwhile)."""
        while True:
            with self.cond:
                if self.stopping or self.error is not None or ex.name in self.dead:
                    return None
                if self.retry:
                    return self._start(ex, self.retry.popleft())
                if not self.exhausted and not self.pulling and self.next_seq - self.handed < self.window:
                    self.pulling = True
                elif self.exhausted and not self.in_flight and not self.retry:
                    return None
                else:
                    self.cond.wait()
                    continue
            try:
                morsel: Morsel | None = next(self.morsels)
            except StopIteration:
                morsel = None
            except BaseException as e:  # noqa: B036 - the caller's iterator failed: the run stops with its error
                with self.cond:
                    self.pulling = False
                    self._fail(e)
                return None
            with self.cond:
                self.pulling = False
                self.cond.notify_all()
                if morsel is None:
                    self.exhausted = True
                    self.monitor.input_exhausted = True
                    continue
                self.next_seq = morsel.seq + 1
                with self.monitor.lock:
                    self.monitor.inputs_read += morsel.num_inputs
                if morsel.result is not None:  # settled on the client
                    self._finish(morsel, morsel.result, "")
                    continue
                return self._start(ex, morsel)

    def _start(self, ex: Executor, morsel: Morsel) -> Morsel:
        """Counts a morsel as in flight on ``ex`` (lock held)."""
        self.in_flight += 1
        with self.monitor.lock:
            self.monitor.in_flight[ex.name] = self.monitor.in_flight.get(ex.name, 0) + 1
        return morsel

    def _finish(self, morsel: Morsel, result: MorselResult, where: str) -> None:
        """Records a result (lock held)."""
        self.finished[morsel.seq] = (morsel, result)
        self.completion_order.append(morsel.seq)
        with self.monitor.lock:
            self.monitor.morsels_done += 1
            if where:
                self.monitor.done_by[where] = self.monitor.done_by.get(where, 0) + 1
        self.cond.notify_all()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.cond.notify_all()

    def _serve(self, ex: Executor) -> None:
        while True:
            morsel = self._take(ex)
            if morsel is None:
                return
            try:
                result = ex.run(morsel)
            except WorkerLost as e:
                with self.cond:
                    self._release(ex)
                    self._lost(ex, morsel, e)
                return
            except BaseException as e:  # noqa: B036 - handed to the caller's thread
                with self.cond:
                    self._release(ex)
                    if not self.stopping:
                        self._fail(e)
                return
            with self.cond:
                self._release(ex)
                if not self.stopping:
                    self._finish(morsel, result, ex.name)

    def _release(self, ex: Executor) -> None:
        self.in_flight -= 1
        with self.monitor.lock:
            self.monitor.in_flight[ex.name] -= 1
        self.cond.notify_all()

    def _lost(self, ex: Executor, morsel: Morsel, error: BaseException) -> None:
        if self.stopping:
            return
        if ex.name not in self.dead:
            self.dead[ex.name] = str(error)
            with self.monitor.lock:
                self.monitor.lost[ex.name] = str(error)
            _log.warning("daft_flow: %s lost (%s); its morsels go to the other workers", ex.name, error)
        morsel.lost_on.append(ex.name)
        last = morsel.first_input + morsel.num_inputs - 1
        if len(morsel.lost_on) >= self.max_attempts:
            self._fail(ClusterError(f"inputs {morsel.first_input}..{last} were lost with {len(morsel.lost_on)} workers "
                                    f"({', '.join(morsel.lost_on)}): they may be what stops them; last error: {error}"))
            return
        alive = [e.name for e in self.executors if e.name not in self.dead]
        if not alive:
            lost = "; ".join(f"{name}: {why}" for name, why in self.dead.items())
            self._fail(ClusterError(f"every worker was lost before the run finished ({lost})"))
            return
        with self.monitor.lock:
            self.monitor.morsels_resent += 1
        self.retry.appendleft(morsel)

    # -- the caller's side --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Morsel, MorselResult]]:
        for ex in self.executors:
            for i in range(max(1, ex.slots)):
                t = threading.Thread(target=self._serve, args=(ex,), name=f"dflow-dispatch-{ex.name}-{i}", daemon=True)
                self.threads.append(t)
                t.start()
        watchdog = threading.Thread(target=self._watch, name="dflow-dispatch-watchdog", daemon=True)
        watchdog.start()
        self.threads.append(watchdog)
        try:
            while True:
                item = self._next()
                if item is None:
                    return
                yield item
        finally:
            self._stop()

    def _next(self) -> tuple[Morsel, MorselResult] | None:
        with self.cond:
            while True:
                if self.monitor.cancelled.is_set():
                    raise JobCancelled("the run was cancelled")
                if self.error is not None:
                    raise self.error
                seq = self.next_out if self.ordered else (self.completion_order[0] if self.completion_order else None)
                if seq is not None and seq in self.finished:
                    morsel, result = self.finished.pop(seq)
                    if self.ordered:
                        self.next_out += 1
                    self.completion_order.remove(seq)
                    self.handed += 1
                    with self.monitor.lock:
                        self.monitor.inputs_done += morsel.num_inputs
                    self.cond.notify_all()
                    return morsel, result
                if self.exhausted and not self.in_flight and not self.retry and not self.finished:
                    return None
                self.cond.wait(0.1)

    def _watch(self) -> None:
        """Asks every worker holding morsels whether it still answers: a frozen host (or one cut off)
        keeps its connections open and would hold its morsels forever. Two missed answers in a row
        and its calls are cancelled, so its morsels go elsewhere."""
        missed: dict[str, int] = {}
        while True:
            with self.cond:
                if self.stopping or self.error is not None:
                    return
                self.cond.wait(self.heartbeat_s)
                if self.stopping or self.error is not None:
                    return
                with self.monitor.lock:
                    busy = [e for e in self.executors
                            if self.monitor.in_flight.get(e.name, 0) and e.name not in self.dead]
            for ex in busy:
                if ex.alive(timeout=self.heartbeat_s):
                    missed.pop(ex.name, None)
                    continue
                missed[ex.name] = missed.get(ex.name, 0) + 1
                if missed[ex.name] >= 2:
                    _log.warning("daft_flow: %s stopped answering; its morsels go to the other workers", ex.name)
                    ex.cancel()

    def _stop(self) -> None:
        with self.cond:
            self.stopping = True
            busy = self.in_flight > 0
            self.cond.notify_all()
        if busy:
            for ex in self.executors:
                ex.cancel()
        for t in self.threads:
            t.join()
