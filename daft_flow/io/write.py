"""Writing batches of rows to a sink (``SinkWriter``, the function of a write_sink op) and what a
run reports per sink (``SinkResult``).

``flow.write_sink(sink, fields)`` (``daft_flow/sink_flow.py``) adds a batch op whose function is a
``SinkWriter``. Each run writes through its own ``SinkRun`` (a copy of the sink with that run's
state), which hands each batch of rows to the sink, retrying failed writes with exponential
backoff and jitter; rows whose batch still cannot be written fail with a ``SinkWriteError`` naming
the sink and the rows. Sinks make each write all-or-nothing, so a retry never writes a row twice.

Sinks of one run are independent: a write that fails fails its rows for that sink only (the op
reports them in its own column instead of failing the rows for every op of the level), so the
other sinks of a ``Multisink`` still write them. A sink target (a directory, a URL prefix, a table)
is written by one run at a time in a process; a second run raises before writing anything.
Running sink flows (``run_sinks``) is ``daft_flow/execution/sinks.py``.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from daft_flow.errors import BatchError, FlowError, RowFailure
from daft_flow.io.sinks import Sink
from daft_flow.retry import Backoff
from daft_flow.types import DataType


class SinkWriteError(BatchError):
    """A sink could not write a batch after its retries; ``rows`` rows were not written."""


class SinkBusyError(FlowError):
    """Another run in this process is writing to the same sink target."""


@dataclass
class SinkResult:
    """What one run wrote to one sink."""

    sink: str
    rows_written: int
    paths: list[str] = field(default_factory=list)  # where rows went (files, objects, tables), in order
    failures: list[RowFailure] = field(default_factory=list)  # rows that did not reach the sink
    data: Any = field(default=None, repr=False)  # what in-memory sinks hold (ArrowSink, DaftSink)

    def __str__(self) -> str:
        failed = f", {len(self.failures)} row(s) failed" if self.failures else ""
        return f"{self.sink}: {self.rows_written} row(s) written to {len(self.paths)} location(s){failed}"


_NOT_RETRYABLE = (TypeError, ValueError, KeyError, AttributeError, NotImplementedError)
# A row the sink could not write: its written_to value is this marker and the number of the error.
FAILED_MARK = "\x00failed:"


class SinkWriter:
    """The write_sink op as built: which sink, which columns, how writes are retried. Runs write
    through ``SinkRun``s (``execution/sinks.py`` puts one in the plan for each run)."""

    def __init__(self, sink: Sink, names: list[str], types: list[DataType], retries: int = 3,
                 backoff: float = 0.05) -> None:
        self.sink, self.names, self.types = sink, names, types
        self.retries, self.backoff = retries, Backoff(initial=backoff, maximum=5.0)

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: the sink and the columns written (not run counters)."""
        return {"sink": self.sink, "names": self.names, "types": [str(t) for t in self.types]}

    def __call__(self, *columns: list[Any]) -> list[str]:
        raise FlowError(f"write_sink({self.sink.describe()}) runs through SinkFlow.collect / collect_batch / stream "
                        "or dflow.Multisink, not as the rows of a plain flow")


# A row an earlier attempt of a checkpointed run already committed: not written again.
COMMITTED_MARK = "\x00committed"


class SinkRun:
    """One run's writes to one sink: a private copy of the sink (open files, counters), what was
    written and the errors of the batches that could not be written.

    In a checkpointed run (``staging()``) the sink writes under staged names; ``take_staged``
    hands the consumer the files of a finished batch to commit, and rows the checkpoint already
    committed for inputs being redone (``skip_rows``: input -> row ids) are not written again."""

    def __init__(self, writer: SinkWriter) -> None:
        self.writer = writer
        self.sink = copy.copy(writer.sink)
        self.columns = dict(zip(writer.names, writer.types))
        self.written = 0
        self.attempts = 0
        self.errors: list[BaseException] = []
        self.staged_writes = False  # a checkpointed run: writes are staged, then committed
        self.wants_row_ids = False  # the lowering then passes each row's id after its input index
        self.skip_rows: dict[int, set[int]] = {}
        self._staged: dict[tuple[int, int], list[list[str]]] = {}  # (retry tag, first input) -> files
        self._staged_lock = threading.Lock()

    def staging(self, skip_rows: dict[int, set[int]], attempt: int = 1) -> None:
        """Makes this run write staged files (see ``Sink.stage``) and skip committed rows."""
        self.sink.stage(attempt)
        self.staged_writes = True
        self.wants_row_ids = bool(skip_rows)  # row ids reach the sink only when some rows are to be skipped
        self.skip_rows = skip_rows

    def take_staged(self, first: int, stop: int, tag: int = 0) -> list[list[str]]:
        """The [final, staged] files written for inputs first .. stop - 1 by batches of retry number
        ``tag`` (0: first attempts), each handed out once: a retry batch's files are its own."""
        with self._staged_lock:
            keys = [k for k in self._staged if k[0] == tag and first <= k[1] < stop]
            return [pair for k in sorted(keys) for pair in self._staged.pop(k)]

    def __call__(self, *columns: list[Any]) -> list[str]:
        # The written columns, the flow's input (which anchors the op at its level), then what the
        # lowering adds: each row's input index, its batch's tag, and its row id when wants_row_ids.
        k = len(self.writer.names)
        extra = 3 if self.wants_row_ids else 2
        inputs = [int(i) for i in columns[-extra]]
        tags = columns[1 - extra]
        tag = int(tags[0]) if len(tags) else 0
        fields = columns[:k]
        if self.wants_row_ids and self.skip_rows:
            ids = [int(x) for x in columns[-1]]
            skip = [i in self.skip_rows and rid in self.skip_rows[i] for i, rid in zip(inputs, ids)]
            if any(skip):
                kept = [j for j, s in enumerate(skip) if not s]
                where = self.write([[col[j] for j in kept] for col in fields], [inputs[j] for j in kept], tag)
                out = [COMMITTED_MARK] * len(inputs)
                for j, loc in zip(kept, where):
                    out[j] = loc
                return out
        return self.write(fields, inputs, tag)

    def write(self, columns: Any, inputs: list[int], tag: int = 0) -> list[str]:
        """Writes rows (``columns``: one list per written column) that came from ``inputs``; ``tag``
        is their batch's retry number (0 for first attempts), which sinks naming their output by
        row range put in the names so a retried row's write never replaces another."""
        if not inputs:
            return []
        w = self.writer
        rows = [dict(zip(w.names, values)) for values in zip(*columns)]
        self.sink._retry_tag = tag
        return self._write(rows, inputs, tag)

    def _write(self, rows: list[dict[str, Any]], inputs: list[int], tag: int = 0) -> list[str]:
        w = self.writer
        attempt = 0
        while True:
            self.attempts += 1
            try:
                where = self.sink.write_batch(rows, inputs)
                if len(where) != len(rows):
                    raise SinkWriteError(f"{self.sink.describe()} reported {len(where)} locations for {len(rows)} "
                                         "rows", batch_size=len(rows))
                break
            except SinkWriteError as e:
                self._failed_attempt()
                return self._failed(e, len(rows))
            except Exception as e:
                self._failed_attempt()
                if attempt >= w.retries or isinstance(e, _NOT_RETRYABLE):
                    tries = f"after {attempt + 1} attempts" if attempt else "(not retried)"
                    err = SinkWriteError(f"{self.sink.describe()} could not write a batch of {len(rows)} row(s) "
                                         f"{tries}: {type(e).__name__}: {e}", batch_size=len(rows))
                    err.__cause__ = e
                    return self._failed(err, len(rows))
                time.sleep(w.backoff.delay(attempt))
                attempt += 1
        self.written += len(rows)
        if self.staged_writes and inputs:
            staged = self.sink.drain_staged()
            if staged:
                with self._staged_lock:
                    self._staged.setdefault((tag, min(inputs)), []).extend(staged)
        return [str(p) for p in where]

    def _failed(self, error: BaseException, n: int) -> list[str]:
        self.errors.append(error)
        return [f"{FAILED_MARK}{len(self.errors) - 1}"] * n

    def error_of(self, value: str) -> BaseException | None:
        """The error a written_to value stands for, or None for a location."""
        if not value.startswith(FAILED_MARK):
            return None
        return self.errors[int(value[len(FAILED_MARK):])]

    def _failed_attempt(self) -> None:
        """A write failed: what it staged is not part of any batch (an orphan the checkpoint removes)."""
        if self.staged_writes:
            self.sink.drain_staged()


# Sink targets being written by a run in this process.
_busy: set[str] = set()
_busy_lock = threading.Lock()


def claim_targets(runs: "list[SinkRun]") -> list[str]:
    """Marks the runs' sink targets as being written, or raises ``SinkBusyError`` if one is."""
    claimed: list[str] = []
    with _busy_lock:
        for run in runs:
            target = run.sink.target()
            if target is None:
                continue
            if target in _busy or target in claimed:
                other = "another sink of this run" if target in claimed else "another run in this process"
                raise SinkBusyError(f"{run.sink.describe()}: {other} is writing to {target} right now; runs of a "
                                    "sink take turns (run all inputs in one collect_batch call, or give each run "
                                    "its own directory or prefix). Nothing was written.")
            claimed.append(target)
        _busy.update(claimed)
    return claimed


def release_targets(claimed: list[str]) -> None:
    with _busy_lock:
        _busy.difference_update(claimed)
