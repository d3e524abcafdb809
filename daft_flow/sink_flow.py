"""Sink flows: ``flow.write_sink(sink, fields)`` (a ``SinkFlow``), several of them run together
(``Multisink``) and ``dflow.collect``. Builders like ``Flow``: nothing runs until ``collect``,
``collect_batch`` or ``stream`` (``daft_flow/execution/sinks.py`` runs them); the write_sink op's
function is a ``SinkWriter`` (``daft_flow/io/write.py``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

from daft_flow.io.sinks import Sink
from daft_flow.io.write import SinkResult, SinkWriter
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow


class _SinkPlans:
    """What SinkFlow and Multisink share: their plan (one plan for all their sink flows), its
    fingerprint, and travelling as bytes (see ``Flow.to_bytes``; sinks travel with their settings)."""

    _KIND = 0  # ir.Plan.Kind

    def _sink_flows(self) -> "list[SinkFlow]":
        raise NotImplementedError

    def _traced(self) -> Any:
        from daft_flow.plan.trace import trace_outputs

        traced, _ = trace_outputs([s.rows for s in self._sink_flows()])
        traced.plan.kind = self._KIND
        return traced

    def to_ir(self) -> Any:
        """The plan its sink flows run as (a ``daft_flow.ir.Plan`` listing each in ``outputs``), fingerprinted."""
        from daft_flow.plan.fingerprint import fingerprint_plan

        return fingerprint_plan(self._traced())

    def explain(self) -> str:
        """A readable description of the plan that would run."""
        from daft_flow.plan.explain import explain

        return explain(self.to_ir())

    def fingerprint(self) -> str:
        """The identity of what the sink flows compute and where they write (see ``Flow.fingerprint``)."""
        return str(self.to_ir().fingerprint)

    def to_bytes(self) -> bytes:
        """Bytes that ``from_bytes`` of this class turns back into this object in another process."""
        from daft_flow.plan.serialize import plan_to_bytes

        return plan_to_bytes(self._traced())

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """The object whose ``to_bytes()`` made ``data``."""
        from daft_flow.plan.serialize import restore

        return restore(data, cls._KIND)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_sink_plans_from_bytes, (type(self), self.to_bytes()))

    def estimate(self, inputs: Iterable[Any], **kwargs: Any) -> Any:
        """What running on ``inputs`` would cost (see ``Flow.estimate``); nothing is written."""
        from daft_flow.execution.estimate import estimate

        return estimate(self, inputs, **kwargs)

    def last_run(self) -> Any:
        """The ``dflow.RunReport`` of the most recent run of this object, or None."""
        return getattr(self, "_last_run", None)


class SinkFlow(_SinkPlans):
    """A flow that writes to a sink. ``collect(x)`` / ``collect_batch(xs)`` run it and return a
    ``SinkResult``; ``stream(xs)`` yields ``{"written_to": location}`` per row written. ``rows`` is
    the underlying flow (its plan)."""

    _KIND = 1  # ir.Plan.SINK_FLOW

    def __init__(self, rows: "Flow", writer: SinkWriter) -> None:
        self.rows = rows
        self._writer = writer

    def _sink_flows(self) -> "list[SinkFlow]":
        return [self]

    @property
    def sink(self) -> Sink:
        return self._writer.sink

    def __repr__(self) -> str:
        return f"SinkFlow({self.sink.describe()} <- flow {self.rows.name!r})"

    def stream(self, values: Iterable[Any], *, ordered: bool = True, on_error: str = "raise", lineage: bool = False,
               **options: Any) -> Any:
        """Runs the flow and yields, per row written, ``{"written_to": location}`` (with
        ``_input_index`` and ``_row_id`` when ``lineage=True``) as rows finish. ``on_error="raise"``
        raises the first row that failed (upstream or in the sink); ``"skip"`` records failures on
        the stream's ``failures`` list. The sink is closed when the stream ends or is closed."""
        from daft_flow.execution.results import FlowStream
        from daft_flow.execution.sinks import sink_batches

        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        failures: list[Any] = []

        def rows() -> Iterator[dict[str, Any]]:
            for batch in sink_batches([self], values, ordered=ordered, **options):
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
        ``on_error="return"`` they are listed in ``SinkResult.failures``.

        ``checkpoint="dir"`` (or a URL) makes the sink stage its writes and commit them per batch:
        called again after a crash, finished inputs are skipped and every row ends in the sink
        exactly once (file sinks); the result then counts what every attempt committed."""
        from daft_flow.execution.sinks import run_sinks

        (outcome,) = run_sinks([self], values, on_error=on_error, **options)
        return outcome


class Multisink(_SinkPlans):
    """Several sink flows of one root flow, run together on the same inputs in one pass (what they
    share runs once): ``collect`` returns one ``SinkResult`` per sink, in order."""

    _KIND = 2  # ir.Plan.MULTISINK

    def __init__(self, sinks: Iterable[SinkFlow]) -> None:
        self.sinks = list(sinks)
        if not self.sinks:
            raise ValueError("Multisink needs at least one sink flow")
        for s in self.sinks:
            if not isinstance(s, SinkFlow):
                raise TypeError(f"Multisink takes the flows returned by write_sink(), got {type(s).__name__}")

    def __repr__(self) -> str:
        return f"Multisink({self.sinks!r})"

    def _sink_flows(self) -> "list[SinkFlow]":
        return self.sinks

    def collect(self, value: Any, *, on_error: str = "raise", **options: Any) -> list[SinkResult]:
        return self.collect_batch([value], on_error=on_error, **options)

    def collect_batch(self, values: Iterable[Any], *, on_error: str = "raise", **options: Any) -> list[SinkResult]:
        from daft_flow.execution.sinks import run_sinks

        return run_sinks(self.sinks, values, on_error=on_error, owner=self, **options)


def _sink_plans_from_bytes(cls: type[_SinkPlans], data: bytes) -> Any:
    return cls.from_bytes(data)


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
        if not any(f.flow._level.same_rows(lvl) for lvl in ancestors):
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
