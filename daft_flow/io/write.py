"""write_sink: running a flow into sinks, and what the run reports (``SinkResult``).

``flow.write_sink(sink, fields)`` adds a batch op (a ``SinkWriter``) at the flow's level. Each run
writes through its own ``_SinkRun`` (a copy of the sink with that run's state) which hands each
batch of rows to the sink, retrying failed writes with exponential backoff and jitter; rows whose
batch still cannot be written fail with a ``SinkWriteError`` naming the sink and the rows. Sinks
make each write all-or-nothing, so a retry never writes a row twice.

Sinks of one run are independent: a write that fails fails its rows for that sink only (the op
reports them in its own column instead of failing the rows for every op of the level), so the
other sinks of a ``Multisink`` still write them. A sink target (a directory, a URL prefix, a table)
is written by one run at a time in a process; a second run raises before writing anything.
"""
from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from daft_flow.errors import BatchError, FlowError, FlowRunError, RowFailure
from daft_flow.io.sinks import Sink
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow


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
_FAILED = "\x00failed:"


class SinkWriter:
    """The write_sink op as built: which sink, which columns. Runs write through ``_SinkRun``s."""

    def __init__(self, sink: Sink, names: list[str], types: list[DataType], retries: int = 3,
                 backoff: float = 0.05) -> None:
        self.sink, self.names, self.types = sink, names, types
        self.retries, self.backoff = retries, backoff

    def __call__(self, *columns: list[Any]) -> list[str]:
        raise FlowError(f"write_sink({self.sink.describe()}) runs through SinkFlow.collect / collect_batch / stream "
                        "or dflow.Multisink, not as the rows of a plain flow")


class _SinkRun:
    """One run's writes to one sink: a private copy of the sink (open files, counters), what was
    written and the errors of the batches that could not be written."""

    def __init__(self, writer: SinkWriter) -> None:
        self.writer = writer
        self.sink = copy.copy(writer.sink)
        self.columns = dict(zip(writer.names, writer.types))
        self.written = 0
        self.attempts = 0
        self.errors: list[BaseException] = []

    def __call__(self, *columns: list[Any]) -> list[str]:
        w = self.writer
        k = len(w.names)
        rows = [dict(zip(w.names, values)) for values in zip(*columns[:k])]
        inputs = [int(i) for i in columns[-1]]  # each row's input index (see physical.py)
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
                return self._failed(e, len(rows))
            except Exception as e:
                if attempt >= w.retries or isinstance(e, _NOT_RETRYABLE):
                    tries = f"after {attempt + 1} attempts" if attempt else "(not retried)"
                    err = SinkWriteError(f"{self.sink.describe()} could not write a batch of {len(rows)} row(s) "
                                         f"{tries}: {type(e).__name__}: {e}", batch_size=len(rows))
                    err.__cause__ = e
                    return self._failed(err, len(rows))
                time.sleep(w.backoff * (2 ** attempt) * (0.5 + random.random()))
                attempt += 1
        self.written += len(rows)
        return [str(p) for p in where]

    def _failed(self, error: BaseException, n: int) -> list[str]:
        self.errors.append(error)
        return [f"{_FAILED}{len(self.errors) - 1}"] * n


# Sink targets being written by a run in this process.
_busy: set[str] = set()
_busy_lock = threading.Lock()


def _claim(runs: "list[_SinkRun]") -> list[str]:
    targets = [(r, r.sink.target()) for r in runs]
    claimed: list[str] = []
    with _busy_lock:
        for run, target in targets:
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


def _release(claimed: list[str]) -> None:
    with _busy_lock:
        _busy.difference_update(claimed)


class SinkFlow:
    """A flow that writes to a sink. ``collect(x)`` / ``collect_batch(xs)`` run it and return a
    ``SinkResult``; ``stream(xs)`` yields ``{"written_to": location}`` per row written. ``rows`` is
    the underlying flow (its plan, for ``explain``)."""

    def __init__(self, rows: "Flow", writer: SinkWriter) -> None:
        self.rows = rows
        self._writer = writer

    @property
    def sink(self) -> Sink:
        return self._writer.sink

    def __repr__(self) -> str:
        return f"SinkFlow({self.sink.describe()} <- flow {self.rows.name!r})"

    def explain(self) -> str:
        return self.rows.explain()

    def stream(self, values: Iterable[Any], *, ordered: bool = True, on_error: str = "raise", lineage: bool = False,
               **options: Any) -> Any:
        """Runs the flow and yields, per row written, ``{"written_to": location}`` (with
        ``_input_index`` and ``_row_id`` when ``lineage=True``) as rows finish. ``on_error="raise"``
        raises the first row that failed (upstream or in the sink); ``"skip"`` records failures on
        the stream's ``failures`` list. The sink is closed when the stream ends or is closed."""
        from daft_flow.execution.results import FlowStream

        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        failures: list[RowFailure] = []

        def rows() -> Iterator[dict[str, Any]]:
            for batch in _sink_batches([self], values, ordered=ordered, **options):
                written, failed = batch[0]
                if failed:
                    if on_error == "raise":
                        raise failed[0].error
                    failures.extend(failed)
                for where, input_index, row_id in written:
                    row: dict[str, Any] = {"written_to": where}
                    if lineage:
                        row["_input_index"], row["_row_id"] = input_index, row_id
                    yield row

        return FlowStream(rows(), failures)

    def collect(self, value: Any, *, on_error: str = "raise", **options: Any) -> SinkResult:
        """Runs the flow on one input and writes its rows; returns what was written."""
        return self.collect_batch([value], on_error=on_error, **options)

    def collect_batch(self, values: Iterable[Any], *, on_error: str = "raise", **options: Any) -> SinkResult:
        """Runs the flow on many inputs and writes every row once. With ``on_error="raise"``
        (default) rows that failed (upstream, or in the sink after its retries) raise a
        ``dflow.FlowRunError`` once the run is over, carrying the ``SinkResult``; with
        ``on_error="return"`` they are listed in ``SinkResult.failures``."""
        (outcome,) = run_sinks([self], values, on_error=on_error, **options)
        return outcome


class _SinkOutcome:
    """What the runs of a set of sinks wrote, filled batch by batch."""

    def __init__(self, runs: "list[_SinkRun] | None" = None) -> None:
        self.start(runs or [])

    def start(self, runs: "list[_SinkRun]") -> None:
        self.runs = runs
        self.num_inputs = 0
        self.written = [0] * len(runs)
        self.paths: list[dict[str, None]] = [{} for _ in runs]
        self.failures: list[list[RowFailure]] = [[] for _ in runs]


def _sink_batches(sinks: "list[SinkFlow]", values: Iterable[Any], *, outcome: "_SinkOutcome | None" = None,
                  **options: Any) -> Iterator[list[tuple[list[tuple[str, int, str]], list[RowFailure]]]]:
    """Runs sink flows of one root in a single pass: what they share (fetches, LLM calls) runs once,
    and each sink gets each of its rows once. Yields per batch, per sink: (written rows as
    (location, input index, row id), failed rows). Every sink is closed and its target released
    when the run ends, however it ends."""
    from daft_flow.execution.results import OutputReader
    from daft_flow.execution.runner import run_batches
    from daft_flow.plan.trace import trace_outputs, with_output

    if len({id(s._writer) for s in sinks}) != len(sinks):
        raise ValueError("the same sink flow appears twice; each would write every row twice")
    traced, outputs = trace_outputs([s.rows for s in sinks])
    runs = [_SinkRun(s._writer) for s in sinks]
    # The plan calls each sink's writer; this run writes through its own _SinkRun instead.
    by_writer = {id(r.writer): r for r in runs}
    traced.callables = [by_writer.get(id(c), c) for c in traced.callables]
    outcome = outcome if outcome is not None else _SinkOutcome()
    outcome.start(runs)

    def make_readers(run: Any) -> tuple[_SharedErrors, list[OutputReader]]:
        shared = _SharedErrors(run)
        return shared, [OutputReader(with_output(traced, *out), shared) for out in outputs]

    claimed = _claim(runs)  # before anything is written: a busy target raises here
    try:
        for r in runs:  # checks that can refuse the run (error_if_exists) before any sink starts
            r.sink.prepare(r.columns)
        begun: list[_SinkRun] = []
        batches = None
        try:
            for r in runs:
                r.sink.begin(r.columns)
                begun.append(r)
            batches = run_batches(traced, values, make_readers, **options)
            for (shared, readers), batch in batches:
                per_sink = []
                for i, reader in enumerate(readers):
                    out = reader.read(batch)
                    if i == 0:
                        outcome.num_inputs += out.num_inputs
                    written, failed = _split(out, reader, runs[i])
                    outcome.written[i] += len(written)
                    for where, _, _ in written:
                        outcome.paths[i].setdefault(where, None)
                    outcome.failures[i].extend(failed)
                    per_sink.append((written, failed))
                shared.errors.clear()
                yield per_sink
        finally:
            if batches is not None:
                batches.close()  # the run stops (its threads joined) before the sinks close
            _close_all(begun)
    finally:
        _release(claimed)


def _split(out: Any, reader: Any, run: _SinkRun) -> tuple[list[tuple[str, int, str]], list[RowFailure]]:
    """A sink output's rows: those written (location, input index, row id) and those that failed,
    upstream (already in ``out.failures``) or in the sink (marked in the written_to column)."""
    where = out.columns[0].to_pylist()
    failed = list(out.failures)
    if not where:
        return [], failed
    inputs = out.input_index.tolist()
    ids = [f"{int(x):016x}" for x in out.row_ids]
    written = []
    op = f"write_sink({run.sink.describe()})"
    flow = reader.flows[reader.level]
    for w, i, rid in zip(where, inputs, ids):
        if w.startswith(_FAILED):
            error = run.errors[int(w[len(_FAILED):])]
            if not getattr(error, "_daft_flow_noted", False):
                error._daft_flow_noted = True  # type: ignore[attr-defined]
                error.add_note(f"[daft_flow] {error.batch_size if isinstance(error, BatchError) else 1} row(s) of "
                               f"flow {flow!r} were not written by {op}; first: row {rid} (input {i})")
            failed.append(RowFailure(int(i), rid, flow, op, "written_to", error))
        else:
            written.append((w, int(i), rid))
    failed.sort(key=lambda f: f.input_index)
    return written, failed


def _close_all(runs: "list[_SinkRun]") -> None:
    """Closes every sink, even when one fails to close; then raises the first failure."""
    first: BaseException | None = None
    for r in runs:
        try:
            r.sink.close()
        except BaseException as e:  # noqa: B036 - closing the others matters more; re-raised below
            if first is None:
                first = e
    if first is not None:
        raise first


class _SharedErrors:
    """Lets several output readers of one run see the same original exception of a failed row."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.errors: dict[int, Any] = {}

    def take_error(self, handle: int) -> Any:
        if handle not in self.errors:
            self.errors[handle] = self.run.take_error(handle)
        return self.errors[handle]


def run_sinks(sinks: "list[SinkFlow]", values: Iterable[Any], *, on_error: str = "raise",
              **options: Any) -> list[SinkResult]:
    """Runs sink flows of one root in a single pass and returns one ``SinkResult`` per sink (see
    ``_sink_batches``). Each result matches what is in its sink."""
    from daft_flow.execution.runner import failed_message

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    outcome = _SinkOutcome()
    for _ in _sink_batches(sinks, values, outcome=outcome, **options):
        pass
    results = []
    for i, r in enumerate(outcome.runs):
        results.append(SinkResult(r.sink.describe(), outcome.written[i], list(outcome.paths[i]), outcome.failures[i],
                                  r.sink.result()))
    if on_error == "raise":
        failed = [f for r in results for f in r.failures]
        if failed:
            names = ", ".join(r.sink for r in results if r.failures)
            raise FlowRunError(f"{names}: " + failed_message(failed, outcome.num_inputs, "had rows that were not written"),
                               failed, results)
    return results


class Multisink:
    """Several sink flows of one root flow, run together on the same inputs in one pass (what they
    share runs once): ``collect`` returns one ``SinkResult`` per sink, in order."""

    def __init__(self, sinks: Iterable[SinkFlow]) -> None:
        self.sinks = list(sinks)
        if not self.sinks:
            raise ValueError("Multisink needs at least one sink flow")
        for s in self.sinks:
            if not isinstance(s, SinkFlow):
                raise TypeError(f"Multisink takes the flows returned by write_sink(), got {type(s).__name__}")

    def __repr__(self) -> str:
        return f"Multisink({self.sinks!r})"

    def collect(self, value: Any, *, on_error: str = "raise", **options: Any) -> list[SinkResult]:
        return run_sinks(self.sinks, [value], on_error=on_error, **options)

    def collect_batch(self, values: Iterable[Any], *, on_error: str = "raise", **options: Any) -> list[SinkResult]:
        return run_sinks(self.sinks, values, on_error=on_error, **options)


def collect(target: Any, value: Any, **options: Any) -> Any:
    """``target.collect(value)``: a Flow's rows, a SinkFlow's ``SinkResult``, or a Multisink's list
    of them (``s3_results, db_results = dflow.collect(multisink, url)``)."""
    if not hasattr(target, "collect"):
        raise TypeError(f"collect() needs a Flow, SinkFlow or Multisink, got {type(target).__name__}")
    return target.collect(value, **options)


def make_sink_flow(flow: "Flow", sink: Sink, spec: Any) -> SinkFlow:
    from daft_flow.expressions import Field, PythonCall
    from daft_flow.flow import Flow
    from daft_flow.ops.python_udf import BATCH, PythonUdf

    if not isinstance(sink, Sink):
        raise TypeError(f"write_sink() needs a sink (dflow.JSONFileSink, dflow.ParquetSink, ...), got "
                        f"{type(sink).__name__}")
    if spec is None:
        spec = flow._current_field()
    if isinstance(spec, Field):
        items = {spec.name: spec}
    elif isinstance(spec, dict):
        items = dict(spec)
        if not items:
            raise ValueError(f"write_sink({sink.describe()}) on flow {flow.name!r}: the mapping is empty")
    else:
        raise TypeError(f"write_sink() needs a field or a dict of column name -> field, got {type(spec).__name__}")
    ancestors = flow._level.ancestors()
    for name, f in items.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"write_sink(): column names must be non-empty str, got {name!r}")
        if not isinstance(f, Field):
            raise TypeError(f"write_sink(): column {name!r} needs a field (e.g. flow['x']), got {type(f).__name__}")
        if f.flow._level not in ancestors:
            raise ValueError(f"write_sink() on flow {flow.name!r}: column {name!r} is field {f.name!r} of flow "
                             f"{f.flow.name!r}, which is neither flow {flow.name!r} nor one of its parents")
    # The flow's own input anchors the op at this flow's level, whatever levels the columns come from.
    anchor = flow[flow._level.input_field]
    fields = [*items.values(), anchor]
    sink.check_columns({name: f.dtype for name, f in items.items()})
    writer = SinkWriter(sink, list(items), [f.dtype for f in items.values()])
    udf = PythonUdf(fn=writer, mode=BATCH, return_type=DataType("str"), builtin="write_sink",
                    builtin_detail=sink.describe())
    expr = PythonCall(udf, tuple(f._expr for f in fields))
    return SinkFlow(Flow._make(flow._level, {"written_to": expr}, "written_to"), writer)
