"""Runs on a cluster, seen from the caller: the same results code as local runs.

``cluster_outputs`` cuts the inputs into morsels, has the cluster run them and yields, per runtime
batch, one ``RemoteOutput`` per output of the plan: what ``OutputReader.read`` gives a local run
(surviving rows, failures, lineage with global input indices). ``collect_batch``, ``stream`` and
``collect_arrow`` consume it unchanged.

Sink writes happen here, on the client, in input order (``cluster_sink_outputs``): a worker
computes the columns each sink writes, the client writes a morsel's rows once the whole morsel has
come back. A worker that dies mid-morsel has written nothing, so re-sending its morsel can never
write a row twice. (Writes on the workers need a sink that stages a batch under a key and commits
it once the client accepted the morsel: the checkpoint work's staging + commit. Until a sink offers
that, writes stay here.) Dead letters likewise: workers make the records (they hold the rows and
errors), send them back with the morsel, and the client writes them (``ClientDeadLetters``).
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

from daft_flow.cluster.client import Backend
from daft_flow.cluster.dispatch import Dispatcher, Monitor, Morsel
from daft_flow.cluster.morsel import client_options, plan_key
from daft_flow.cluster.wire import MorselResult, RemoteOutput, arrow_morsel, encode_inputs
from daft_flow.errors import RowFailure
from daft_flow.plan.trace import TracedPlan, dtype_from_ir
from daft_flow.types import DataType

_SIZED = (str, bytes, bytearray)


class BoundCluster:
    """A backend with a job's monitor (progress and cancel) attached."""

    def __init__(self, backend: Backend, monitor: Monitor) -> None:
        self.backend, self.monitor = backend, monitor


def _backend(cluster: Any) -> tuple[Backend, Monitor]:
    if isinstance(cluster, BoundCluster):
        return cluster.backend, cluster.monitor
    if not isinstance(cluster, Backend):
        raise TypeError(f"cluster= takes a dflow.Cluster or dflow.RayCluster, got {type(cluster).__name__}")
    return cluster, Monitor()


def _output_names(plan: Any) -> list[tuple[list[str], list[pa.DataType]]]:
    outs = plan.outputs if len(plan.outputs) else [plan]
    result = []
    for out in outs:
        nodes = out.nodes if len(plan.outputs) else plan.output_nodes
        names = out.names if len(plan.outputs) else plan.output_names
        result.append((list(names), [dtype_from_ir(plan.nodes[n].type).to_arrow() for n in nodes]))
    return result


class _Root:
    """What a row failed on the client needs: the root flow, its field and type, the plan's outputs."""

    def __init__(self, flow: str, field: str, dtype: DataType, outputs: list[tuple[list[str], list[pa.DataType]]]) -> None:
        self.flow, self.field, self.dtype, self.outputs = flow, field, dtype, outputs


def _morsels(values: Iterable[Any], root: _Root, backend: Backend, limit: int) -> Iterator[Morsel]:
    """Consecutive morsels of at most ``morsel_rows`` rows / ``morsel_bytes`` bytes (str/bytes
    values counted by length); a morsel that encodes over ``limit`` (the workers' smallest limit)
    is halved, and a single input over it fails its row here."""
    return _indexed_morsels(enumerate(values), root, backend, limit)


def _indexed_morsels(pairs: Iterable[tuple[int, Any]], root: _Root, backend: Backend, limit: int) -> Iterator[Morsel]:
    """``_morsels`` of (input index, value) pairs: a morsel never spans a gap in the indexes (the
    inputs a resumed checkpoint has done)."""
    it = iter(pairs)
    seq = 0
    rows, max_bytes = backend.morsel_rows, backend.morsel_bytes
    held: tuple[int, Any] | None = None
    while True:
        chunk: list[Any] = []
        first = size = 0
        for index, v in itertools.chain([held] if held is not None else [], it):
            held = None
            if chunk and index != first + len(chunk):
                held = (index, v)  # the next morsel starts after the gap
                break
            if not chunk:
                first = index
            chunk.append(v)
            if isinstance(v, _SIZED):
                size += len(v)
            if len(chunk) >= rows or size >= max_bytes:
                break
        if not chunk:
            return
        for part_first, part in _fit(chunk, first, root, limit):
            if isinstance(part, MorselResult):
                yield Morsel(seq, part_first, 1, None, result=part)
            else:
                yield Morsel(seq, part_first, part.num_rows, part)
            seq += 1


def _not_done(values: Iterable[Any], skip: Any, dtype: DataType) -> Iterator[tuple[int, Any]]:
    """(index, value) of the inputs a resumed checkpoint has not done. Done ones are read past and
    checked against the checkpoint by the sum of their row ids, as a local source does."""
    from daft_flow.convert import root_id_array

    it = iter(values)
    index = 0
    while True:
        done = skip.range_at(index)
        if done is not None:
            total = got = 0
            while got < done.stop - index:
                part = list(itertools.islice(it, min(done.stop - index - got, 65536)))
                if not part:
                    break
                total += int(root_id_array(part, dtype, index + got).sum(dtype=np.uint64))
                got += len(part)
            index += got
            skip.check(done, total, got, index)
            continue
        stop = skip.next_start(index)
        n = 0
        for v in itertools.islice(it, stop - index):
            yield index + n, v
            n += 1
        index += n
        if index < stop:  # the inputs ended
            skip.note_end(index)
            return


def morsel_root_ids(morsel: Morsel, dtype: DataType) -> np.ndarray:
    """The root row ids of a morsel's inputs (what a checkpoint sums for its done ranges)."""
    from daft_flow.cluster.wire import decode_inputs
    from daft_flow.convert import root_id_array

    return root_id_array(decode_inputs(morsel.batch), dtype, morsel.first_input)


def _arrow_morsels(chunks: Iterable[pa.Array], root: _Root, backend: Backend, limit: int,
                   max_inputs: int | None) -> Iterator[Morsel]:
    """Morsels of an Arrow input already of the field's type: slices of its chunks, never Python values."""
    seq = first = 0
    for chunk in chunks:
        n = len(chunk)
        if max_inputs is not None:
            n = min(n, max_inputs - first)
        per_row = max(1.0, chunk.nbytes / max(1, len(chunk)))
        step = max(1, min(backend.morsel_rows, int(backend.morsel_bytes / per_row)))
        for start in range(0, n, step):
            piece = chunk.slice(start, min(step, n - start))
            batch = arrow_morsel(piece)
            parts = [(first, batch)] if batch.nbytes <= limit else _fit(piece.to_pylist(), first, root, limit)
            for part_first, part in parts:
                if isinstance(part, MorselResult):
                    yield Morsel(seq, part_first, 1, None, result=part)
                else:
                    yield Morsel(seq, part_first, part.num_rows, part)
                seq += 1
            first += len(piece)
        if max_inputs is not None and first >= max_inputs:
            return


def _fit(values: list[Any], first: int, root: _Root, limit: int) -> Iterator[tuple[int, Any]]:
    batch = encode_inputs(values, root.dtype)
    if batch.nbytes <= limit:
        yield first, batch
    elif len(values) > 1:
        half = len(values) // 2
        yield from _fit(values[:half], first, root, limit)
        yield from _fit(values[half:], first + half, root, limit)
    else:
        yield first, _too_large(values[0], first, batch.nbytes, limit, root)


def _too_large(value: Any, index: int, nbytes: int, limit: int, root: _Root) -> MorselResult:
    """An input no worker accepts fails its row (in every output) with the sizes named."""
    from daft_flow.convert import root_row_ids, values_to_arrow

    array, _ = values_to_arrow([value], root.dtype)
    row_id = f"{int(pa.array(root_row_ids(array, root.dtype))[0].as_py()):016x}"
    error = ValueError(f"input {index} is {nbytes} bytes once encoded, over the workers' limit of {limit} bytes per "
                       "morsel (dflow-worker --max-morsel-bytes)")
    failure = RowFailure(index, row_id, root.flow, "send to worker", root.field, error)
    outputs = [RemoteOutput(index, 1, [pa.array([], type=t) for t in types], [failure], np.zeros(0, dtype=np.int64),
                            np.zeros(0, dtype=np.uint64)) for _, types in root.outputs]
    return MorselResult([outputs], {})


class MorselDone:
    """Yielded by ``cluster_outputs(morsel_ends=True)`` after the last batch of each morsel: a
    checkpoint commits the morsel's inputs then (every retry of their rows came back in it)."""

    def __init__(self, morsel: Morsel, dtype: DataType) -> None:
        self.morsel, self.dtype = morsel, dtype
        self.first_input, self.num_inputs = morsel.first_input, morsel.num_inputs

    def root_ids(self) -> np.ndarray | None:
        """Its inputs' root row ids (None for an input the client failed itself: never done)."""
        return None if self.morsel.batch is None else morsel_root_ids(self.morsel, self.dtype)


def cluster_outputs(cluster: Any, traced: TracedPlan, values: Iterable[Any], options: dict[str, Any], *,
                    ordered: bool = True, usage_owner: Any = None, skip: Any = None,
                    morsel_ends: bool = False) -> Iterator[Any]:
    """Runs ``traced`` on the cluster; yields, per runtime batch, one ``RemoteOutput`` per output
    (and a ``MorselDone`` after each morsel with ``morsel_ends``). ``skip``: a resumed
    checkpoint's done inputs, not sent."""
    from daft_flow.execution.options import get_options
    from daft_flow.execution.runner import _inputs
    from daft_flow.io.sources import arrow_column
    from daft_flow.cluster.report import ReportMerger
    from daft_flow.execution.dead_letters import ClientDeadLetters
    from daft_flow.execution.policies import level_policies
    from daft_flow.execution.report import RunEnding, set_last as set_last_run
    from daft_flow.llm.usage import UsageReport, set_last
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.serialize import plan_to_bytes

    backend, monitor = _backend(cluster)
    plan = traced.plan
    opts = get_options(**options)
    if opts.max_cost_usd is not None:
        raise ValueError("max_cost_usd is enforced by the process that makes the requests; on a cluster each worker "
                         "would hold the whole budget, so it is refused: run with a budget locally, or without one "
                         "on the cluster")
    data = plan_to_bytes(traced)
    fingerprint = ir.Plan.FromString(data).fingerprint
    key = plan_key(fingerprint, data)
    outputs = _output_names(plan)
    executors = backend.executors(data, key, [names for names, _ in outputs], client_options(opts))
    root = _Root(plan.levels[0].flow, plan.root_field, dtype_from_ir(plan.root_type), outputs)
    limit = backend.max_morsel_bytes(executors)
    max_inputs = plan.levels[0].input_limit if plan.levels[0].HasField("input_limit") else None  # limit()
    column = (arrow_column(values, plan.root_field, root.dtype.to_arrow())
              if root.dtype.arrow_format and skip is None else None)
    if skip is not None:  # a resumed checkpoint: its done inputs are read past here, never sent
        python_values = _inputs(plan.root_field, values)
        if max_inputs is not None:
            python_values = itertools.islice(python_values, max_inputs)
        morsels = _indexed_morsels(_not_done(python_values, skip, root.dtype), root, backend, limit)
    elif column is not None:
        morsels = _arrow_morsels(column.chunks, root, backend, limit, max_inputs)
    else:
        python_values: Iterable[Any] = _inputs(plan.root_field, values)
        if max_inputs is not None:
            python_values = itertools.islice(python_values, max_inputs)
        morsels = _morsels(python_values, root, backend, limit)
    usage = UsageReport()
    reports = ReportMerger(plan.levels[plan.output_level].flow, root.flow, fingerprint)
    letters = ClientDeadLetters(level_policies(traced))  # workers compute dead letters, this process writes
    letters.open()
    dispatcher = Dispatcher(executors, morsels, ordered=ordered, monitor=monitor, max_attempts=backend.max_attempts,
                            heartbeat_s=backend.heartbeat)
    ending = RunEnding()
    try:
        with ending:
            for morsel, result in dispatcher:
                if result.usage:
                    usage.merge(result.usage)
                if result.dead_letters:
                    letters.write(result.dead_letters, [f for outs in result.batches for o in outs for f in o.failures],
                                  result.report)
                reports.add(result.report, morsel.num_inputs)
                yield from result.batches
                if morsel_ends:
                    yield MorselDone(morsel, root.dtype)
    finally:
        letters.close()
        if usage.ops:
            usage.finish()
            set_last(usage)
            if usage_owner is not None:
                usage_owner._last_usage = usage
        report = reports.report(ending.status, ending.error, usage if usage.ops else None)
        set_last_run(report)
        if usage_owner is not None:
            usage_owner._last_run = report


def cluster_execute(flow: Any, traced: TracedPlan, values: Iterable[Any], cluster: Any, ordered: bool,
                    options: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """``runner._execute`` on a cluster: (reader, output) per runtime batch, and (reader,
    ``MorselDone``) after each morsel of a checkpointed run."""
    from daft_flow.execution.results import OutputReader

    reader = OutputReader(traced, None)
    options = dict(options)
    skip = options.pop("skip", None)  # a checkpoint's: done inputs are not sent, morsels are committed whole
    options.pop("journal", None)
    for outs in cluster_outputs(cluster, traced, values, options, ordered=ordered, usage_owner=flow, skip=skip,
                                morsel_ends=skip is not None):
        yield reader, (outs if isinstance(outs, MorselDone) else outs[0])


# -- sinks ---------------------------------------------------------------------------------------------

def _capture(sink_flow: Any) -> Any:
    """The flow of what a sink writes: the write_sink op's columns as fields, without the write."""
    from daft_flow.flow import Flow

    rows = sink_flow.rows
    call = rows._fields["written_to"]
    names = sink_flow._writer.names
    return Flow._make(rows._level, dict(zip(names, call.args[:len(names)])), names[0])


class SinkOutput:
    """What one sink did with one runtime batch, as ``OutputReader.read`` gives a local run:
    ``columns[0]`` is where each surviving row went (or the mark of a failed write)."""

    def __init__(self, written_to: pa.Array, out: RemoteOutput) -> None:
        self.columns = [written_to]
        self.failures = out.failures
        self.input_index, self.row_ids = out.input_index, out.row_ids
        self.first_input, self.num_inputs = out.first_input, out.num_inputs


def _write(run: Any, out: RemoteOutput) -> SinkOutput:
    """Writes a morsel's rows of one sink through the run's ``SinkRun`` (retries, marks of failed
    writes, as a local write_sink op)."""
    from daft_flow.convert import arrow_to_values

    if not len(out.input_index):
        return SinkOutput(pa.array([], type=pa.large_string()), out)
    columns = [arrow_to_values(col, t) for col, t in zip(out.columns, run.columns.values())]
    inputs = out.input_index.tolist()
    if run.skip_rows:  # rows a checkpoint committed for inputs being redone are not written again
        from daft_flow.io.write import COMMITTED_MARK

        keep = [k for k, (i, rid) in enumerate(zip(inputs, out.row_ids.tolist()))
                if not (i in run.skip_rows and rid in run.skip_rows[i])]
        where = [COMMITTED_MARK] * len(inputs)
        if keep:
            written = run.write([[col[k] for k in keep] for col in columns], [inputs[k] for k in keep], out.tag)
            for k, w in zip(keep, written):
                where[k] = w
        return SinkOutput(pa.array(where, type=pa.large_string()), out)
    where = run.write(columns, inputs, out.tag)
    return SinkOutput(pa.array(where, type=pa.large_string()), out)


def cluster_sink_outputs(sinks: list[Any], runs: list[Any], values: Iterable[Any], cluster: Any, owner: Any,
                         options: dict[str, Any]) -> Iterator[list[SinkOutput]]:
    """Per runtime batch, each sink's output: workers compute the columns each sink writes (its
    write_sink op's inputs), this process writes them once the whole morsel is back (see the module)."""
    from daft_flow.plan.trace import trace_outputs

    options = dict(options)
    ordered = options.pop("ordered", True)
    traced, _ = trace_outputs([_capture(s) for s in sinks])
    skip = options.pop("skip", None)
    options.pop("journal", None)  # (LLM answers are not journaled on a cluster: see the checkpoint notes)
    for outs in cluster_outputs(cluster, traced, values, options, ordered=ordered, usage_owner=owner, skip=skip,
                                morsel_ends=skip is not None):
        yield outs if isinstance(outs, MorselDone) else [_write(run, out) for run, out in zip(runs, outs)]
