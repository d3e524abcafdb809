"""write_sink: running a flow into sinks, and what the run reports (``SinkResult``).

``flow.write_sink(sink, fields)`` adds a batch op (a ``SinkWriter``) at the flow's level that hands
each batch of rows to the sink, retrying failed writes with exponential backoff and jitter; rows
whose batch still cannot be written fail with a ``SinkWriteError`` naming the sink and the rows.
Sinks make each write all-or-nothing, so a retry never writes a row twice.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from daft_flow.errors import BatchError, FlowRunError, RowFailure
from daft_flow.io.sinks import Sink
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow


class SinkWriteError(BatchError):
    """A sink could not write a batch after its retries; ``rows`` rows were not written."""


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


class SinkWriter:
    """The batch function of a write_sink op: rows of a batch -> where each row was written."""

    def __init__(self, sink: Sink, names: list[str], types: list[DataType], retries: int = 3,
                 backoff: float = 0.05) -> None:
        self.sink, self.names, self.types = sink, names, types
        self.retries, self.backoff = retries, backoff
        self.written = 0
        self.attempts = 0

    def begin(self) -> None:
        self.written = 0
        self.attempts = 0
        self.sink.begin(dict(zip(self.names, self.types)))

    def finish(self) -> None:
        self.sink.close()

    def __call__(self, *columns: list[Any]) -> list[str]:
        k = len(self.names)
        rows = [dict(zip(self.names, values)) for values in zip(*columns[:k])]
        attempt = 0
        while True:
            self.attempts += 1
            try:
                where = self.sink.write(rows)
                break
            except Exception as e:
                if attempt >= self.retries or isinstance(e, _NOT_RETRYABLE):
                    tries = f"after {attempt + 1} attempts" if attempt else "(not retried)"
                    err = SinkWriteError(f"{self.sink.describe()} could not write a batch of {len(rows)} row(s) "
                                         f"{tries}: {type(e).__name__}: {e}", batch_size=len(rows))
                    raise err from e
                time.sleep(self.backoff * (2 ** attempt) * (0.5 + random.random()))
                attempt += 1
        if len(where) != len(rows):
            raise SinkWriteError(f"{self.sink.describe()} reported {len(where)} locations for {len(rows)} rows",
                                 batch_size=len(rows))
        self.written += len(rows)
        return list(where)


class SinkFlow:
    """A flow that writes to a sink. ``collect(x)`` / ``collect_batch(xs)`` run it and return a
    ``SinkResult``; ``rows`` is the underlying flow, one row per written row with field
    ``written_to`` (where it went), for ``stream``/``collect_arrow`` with lineage."""

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

    def stream(self, values: Iterable[Any], **options: Any) -> Iterator[dict[str, Any]]:
        """Runs the flow and yields, per row written, ``{"written_to": location}`` as rows finish
        (options as for ``Flow.stream``); the sink is flushed when the stream ends or is closed."""
        self._writer.begin()
        try:
            yield from self.rows.stream(values, **options)
        finally:
            self._writer.finish()

    def estimate(self, inputs: Iterable[Any], **kwargs: Any) -> Any:
        """The cost of writing ``inputs`` (see ``Flow.estimate``); nothing is written."""
        from daft_flow.execution.estimate import estimate

        return estimate(self, inputs, **kwargs)

    def last_run(self) -> Any:
        """The ``dflow.RunReport`` of the most recent run of this sink flow, or None."""
        return getattr(self, "_last_run", None)

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


class _Owners:
    """Hands a run's report and usage to every sink flow of the run (``sink.last_run()``)."""

    def __init__(self, sinks: "list[SinkFlow]") -> None:
        object.__setattr__(self, "_sinks", sinks)

    def __setattr__(self, name: str, value: Any) -> None:
        for s in self._sinks:
            setattr(s, name, value)


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
    """Runs sink flows of one root in a single pass: what they share (fetches, LLM calls) runs once,
    and each sink gets each of its rows once."""
    from daft_flow.execution.results import OutputReader
    from daft_flow.execution.runner import run_batches
    from daft_flow.plan.trace import trace_outputs, with_output

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    if len({id(s._writer) for s in sinks}) != len(sinks):
        raise ValueError("the same sink flow appears twice; each would write every row twice")
    traced, outputs = trace_outputs([s.rows for s in sinks])

    def make_readers(run: Any) -> tuple[_SharedErrors, list[OutputReader]]:
        shared = _SharedErrors(run)
        return shared, [OutputReader(with_output(traced, *out), shared) for out in outputs]

    paths: list[dict[str, None]] = [{} for _ in sinks]
    failures: list[list[RowFailure]] = [[] for _ in sinks]
    written = [0] * len(sinks)
    for s in sinks:
        s._writer.begin()
    try:
        for (shared, readers), batch in run_batches(traced, values, make_readers, usage_owner=_Owners(sinks),
                                                    **options):
            for i, reader in enumerate(readers):
                out = reader.read(batch)
                where = out.columns[0].to_pylist()
                written[i] += len(where)
                for p in where:
                    paths[i].setdefault(p, None)
                failures[i].extend(out.failures)
            shared.errors.clear()
    finally:
        for s in sinks:
            s._writer.finish()
    results = []
    for i, s in enumerate(sinks):
        assert written[i] == s._writer.written, (written[i], s._writer.written)
        results.append(SinkResult(s.sink.describe(), written[i], list(paths[i]), failures[i], s.sink.result()))
    if on_error == "raise":
        failed = [f for r in results for f in r.failures]
        if failed:
            bad = [r for r in results if r.failures]
            n_inputs = len({f.input_index for f in failed})
            names = ", ".join(r.sink for r in bad)
            raise FlowRunError(f"{names}: {len(failed)} row(s) of {n_inputs} input(s) were not written; first: "
                               f"{failed[0]}", failed, results)
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

    def estimate(self, inputs: Iterable[Any], **kwargs: Any) -> Any:
        """The cost of running the sinks on ``inputs`` (see ``Flow.estimate``); nothing is written."""
        from daft_flow.execution.estimate import estimate

        return estimate(self, inputs, **kwargs)

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
    writer = SinkWriter(sink, list(items), [f.dtype for f in items.values()])
    udf = PythonUdf(fn=writer, mode=BATCH, return_type=DataType("str"), builtin="write_sink",
                    builtin_detail=sink.describe())
    expr = PythonCall(udf, tuple(f._expr for f in fields))
    return SinkFlow(Flow._make(flow._level, {"written_to": expr}, "written_to"), writer)
