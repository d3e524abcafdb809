"""Running sink flows: one pass over the inputs for every sink of a SinkFlow or Multisink (what
they share runs once), each sink getting each of its rows once, and a ``SinkResult`` per sink.

Each run writes through its own ``SinkRun`` per sink (swapped into the traced plan in place of the
sink's ``SinkWriter``), claims the sinks' targets before anything is written, runs every sink's
``prepare`` (checks that may refuse the run) before any sink's ``begin``, and closes every sink
however the run ends. A sink's failed writes come back as markers in its own column
(``SinkRun.error_of``), so they never touch the other sinks' rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daft_flow.errors import BatchError, FlowRunError, RowFailure
from daft_flow.io.write import COMMITTED_MARK, FAILED_MARK, SinkResult, SinkRun, claim_targets, release_targets

if TYPE_CHECKING:
    from daft_flow.sink_flow import SinkFlow


class Written:
    """The rows a sink wrote in one batch: (location, input index, row id) per row, made on demand.
    Most runs only count them and list their files (``locations``), so a million rows cost no
    Python object per row unless someone iterates them (``stream``, a checkpoint's partial inputs)."""

    __slots__ = ("where", "inputs", "ids")

    def __init__(self, where: pa.Array, inputs: np.ndarray, ids: np.ndarray) -> None:
        self.where, self.inputs, self.ids = where, inputs, ids

    def __len__(self) -> int:
        return len(self.where)

    def __iter__(self) -> Iterator[tuple[str, int, str]]:
        for w, i, rid in zip(self.where.to_pylist(), self.inputs.tolist(), self.ids.tolist()):
            yield w, i, f"{rid:016x}"

    def locations(self) -> list[str]:
        """The distinct locations, in the order rows first reached them."""
        return pc.unique(self.where).to_pylist() if len(self.where) else []


class SharedErrors:
    """Lets several output readers of one run see the same original exception of a failed row."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.errors: dict[int, Any] = {}
        self.policies = getattr(run, "policies", None)

    def take_error(self, handle: int) -> Any:
        if handle not in self.errors:
            self.errors[handle] = self.run.take_error(handle)
        return self.errors[handle]


class _Owners:
    """Hands a run's report and usage to every object it ran for (``sink.last_run()``)."""

    def __init__(self, owners: list[Any]) -> None:
        object.__setattr__(self, "_owners", owners)

    def __setattr__(self, name: str, value: Any) -> None:
        for o in self._owners:
            setattr(o, name, value)


class _Outcome:
    """What the runs of a set of sinks wrote, filled batch by batch."""

    def __init__(self) -> None:
        self.start([])

    def start(self, runs: "list[SinkRun]") -> None:
        self.runs = runs
        self.num_inputs = 0
        self.written = [0] * len(runs)
        self.paths: list[dict[str, None]] = [{} for _ in runs]
        self.failures: list[list[RowFailure]] = [[] for _ in runs]
        self.write_failures = [0] * len(runs)  # rows each sink could not write (not failed upstream)
        self.checkpoint: Any = None  # the run's open checkpoint, if it has one


def sink_batches(sinks: "list[SinkFlow]", values: Iterable[Any], *, outcome: "_Outcome | None" = None,
                 owner: Any = None, checkpoint: Any = None, resume: Any = True,
                 **options: Any) -> Iterator[list[tuple[Written, list[RowFailure]]]]:
    """Runs sink flows of one root in a single pass; yields per batch, per sink: (rows written,
    rows failed). Every sink is closed and its target released when the run ends, however it ends.
    The run's report goes to each sink flow and to ``owner`` (the Multisink). With ``checkpoint``
    (a directory or URL) the sinks stage their writes and each batch is committed before it is
    yielded (``daft_flow/checkpoint/sinks.py``)."""
    from daft_flow.execution.results import OutputReader
    from daft_flow.plan.trace import trace_outputs, with_output

    if len({id(s._writer) for s in sinks}) != len(sinks):
        raise ValueError("the same sink flow appears twice; each would write every row twice")
    traced, outputs = trace_outputs([s.rows for s in sinks])
    runs = [SinkRun(s._writer) for s in sinks]
    ckpt = None
    if checkpoint is not None:
        from daft_flow.checkpoint.sinks import open_for_sinks
        from daft_flow.execution.runner import refuse_cluster_checkpoint
        from daft_flow.plan.fingerprint import fingerprint_plan

        from daft_flow.plan import flow_pb2 as ir

        refuse_cluster_checkpoint(options)
        # As the sink flow's / Multisink's fingerprint() has it.
        traced.plan.kind = ir.Plan.MULTISINK if owner is not None else ir.Plan.SINK_FLOW
        fingerprint_plan(traced)  # before the sinks' run copies replace the writers in the table
        ckpt = open_for_sinks(checkpoint, resume, traced.plan.fingerprint, runs, traced.plan.levels[0].flow)
        from daft_flow.checkpoint.retries import track_retries

        track_retries(ckpt, traced)
        options.update(skip=ckpt.done, journal=ckpt.journal())
    elif resume is not True:
        raise ValueError("resume= applies to a checkpoint: pass checkpoint='dir' (or 's3://bucket/run') too")
    by_writer = {id(r.writer): r for r in runs}
    traced.objects = [by_writer.get(id(o), o) for o in traced.objects]
    outcome = outcome if outcome is not None else _Outcome()
    outcome.start(runs)
    outcome.checkpoint = ckpt

    cluster = options.pop("cluster", None)
    claimed = claim_targets(runs)  # before anything is written: a busy target raises here
    try:
        if ckpt is None or ckpt.fresh:  # a resumed checkpoint's files are its own: error_if_exists passes
            for r in runs:
                r.sink.prepare(r.columns)
        begun: list[SinkRun] = []
        batches = None
        waiting: list[Any] = []
        try:
            if ckpt is not None:
                from daft_flow.checkpoint.sinks import begin_sinks, commit_batch, finish_sinks

                begin_sinks(ckpt, runs, begun)
            else:
                for r in runs:
                    r.sink.begin(r.columns)
                    begun.append(r)
            owners = _Owners([*sinks, owner] if owner is not None else list(sinks))
            if cluster is None:
                batches = _local_outputs(traced, outputs, values, owners, options)
            else:  # workers compute, this process writes (see daft_flow/cluster/execute.py)
                from daft_flow.cluster.execute import cluster_sink_outputs

                batches = ((outs, None) for outs in cluster_sink_outputs(sinks, runs, values, cluster, owners, options))
            readers = [OutputReader(with_output(traced, *out), None) for out in outputs]  # how rows are named
            for outs, batch in batches:
                per_sink = []
                for i, (reader, out) in enumerate(zip(readers, outs)):
                    if i == 0:
                        outcome.num_inputs += out.num_inputs
                    written, failed = _split(out, reader, runs[i])
                    outcome.write_failures[i] += len(failed) - len(out.failures)
                    outcome.written[i] += len(written)
                    for where in written.locations():
                        outcome.paths[i].setdefault(where, None)
                    outcome.failures[i].extend(failed)
                    per_sink.append((written, failed))
                if ckpt is None:
                    yield per_sink
                    continue
                waiting.append(per_sink)  # handed on once committed: only then are its files there
                if commit_batch(ckpt, runs, batch, per_sink):
                    yield from waiting
                    waiting = []
            if ckpt is not None:
                finish_sinks(ckpt, runs)
                yield from waiting
                waiting = []
        finally:
            if ckpt is not None and ckpt._pending:  # left early: what finished is committed all the same
                from daft_flow.checkpoint.sinks import promote

                try:
                    promote(runs, ckpt.commit_pending())
                except Exception as e:  # noqa: BLE001 - the run's own error (if any) matters more
                    import logging

                    logging.getLogger("daft_flow").warning("could not commit the last batches: %s", e)
            if batches is not None:
                batches.close()  # the run stops (its threads joined) before the sinks close
                if cluster is None:  # a cluster's report names the workers' ops; writes happened here
                    _report_write_failures(getattr(sinks[0], "_last_run", None), outputs, outcome)
            _close_all(begun)
    finally:
        release_targets(claimed)


def _local_outputs(traced: Any, outputs: list[Any], values: Iterable[Any], owners: _Owners,
                   options: dict[str, Any]) -> Iterator[tuple[list[Any], Any]]:
    """Per finished batch of a local run, each sink's output (``written_to`` per row, failures)
    and the batch (a checkpoint commits it)."""
    from daft_flow.execution.results import OutputReader
    from daft_flow.execution.runner import run_batches
    from daft_flow.plan.trace import with_output

    def make_readers(run: Any) -> tuple[SharedErrors, list[OutputReader]]:
        shared = SharedErrors(run)
        return shared, [OutputReader(with_output(traced, *out), shared) for out in outputs]

    batches = run_batches(traced, values, make_readers, usage_owner=owners, **options)
    try:
        for (shared, readers), batch in batches:
            yield [reader.read(batch) for reader in readers], batch
            shared.errors.clear()
    finally:
        batches.close()


def _split(out: Any, reader: Any, run: SinkRun) -> tuple[Written, list[RowFailure]]:
    """A sink output's rows: those written and those that failed, upstream (already in
    ``out.failures``) or in the sink (marked in its written_to column). Rows an earlier attempt of
    a checkpointed run committed are neither."""
    where = out.columns[0]
    if not isinstance(where, (pa.Array, pa.ChunkedArray)):
        where = pa.array(where, type=pa.large_string())
    if isinstance(where, pa.ChunkedArray):
        where = where.combine_chunks()
    failed = list(out.failures)
    inputs = np.asarray(out.input_index, dtype=np.int64)
    ids = np.asarray(out.row_ids, dtype=np.uint64)
    if not len(where):
        return Written(where, inputs, ids), failed
    marked = pc.starts_with(where, FAILED_MARK)
    skipped = pc.equal(where, COMMITTED_MARK)
    if not pc.any(pc.or_(marked, skipped)).as_py():  # every row written: no per-row work
        return Written(where, inputs, ids), failed
    keep = pc.invert(pc.or_(marked, skipped))
    op = f"write_sink({run.sink.describe()})"
    flow = reader.flows[reader.level]
    bad = np.flatnonzero(marked.to_numpy(zero_copy_only=False))
    for k, w in zip(bad.tolist(), where.take(pa.array(bad)).to_pylist()):
        error = run.error_of(w)
        i, rid = int(inputs[k]), f"{int(ids[k]):016x}"
        if not getattr(error, "_daft_flow_noted", False):
            error._daft_flow_noted = True  # type: ignore[attr-defined]
            n = error.batch_size if isinstance(error, BatchError) else 1
            error.add_note(f"[daft_flow] {n} row(s) of flow {flow!r} were not written by {op}; first: row {rid} "
                           f"(input {i})")
        failed.append(RowFailure(i, rid, flow, op, "written_to", error))
    failed.sort(key=lambda f: f.input_index)
    mask = keep.to_numpy(zero_copy_only=False)
    return Written(where.filter(keep), inputs[mask], ids[mask]), failed


def _report_write_failures(report: Any, outputs: list[Any], outcome: _Outcome) -> None:
    """The run report counts rows a sink could not write as failed, by the sink's op and in its flow's
    accounting: the runtime saw them succeed (the sink marks them in its own column, see ``SinkRun``).
    A row that two sinks of a Multisink could not write is one failed row of its flow."""
    if report is None:
        return
    by_node = {op.node: op for op in report.ops.values()}
    unwritten: dict[int, set[str]] = {}
    for (level, nodes, _names), n, failures in zip(outputs, outcome.write_failures, outcome.failures):
        unwritten.setdefault(level, set()).update(f.row_id for f in failures if f.field == "written_to")
        op = by_node.get(nodes[0])
        if op is not None and n:
            op.rows_out -= n
            op.rows_failed += n
            op.failures_by_type["SinkWriteError"] = op.failures_by_type.get("SinkWriteError", 0) + n
    for flow in report.flows.values():
        n = len(unwritten.get(flow.level, ()))
        flow.succeeded -= n
        flow.failed += n


def _close_all(runs: "list[SinkRun]") -> None:
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


def run_sinks(sinks: "list[SinkFlow]", values: Iterable[Any], *, on_error: str = "raise",
              **options: Any) -> list[SinkResult]:
    """Runs sink flows of one root in a single pass and returns one ``SinkResult`` per sink (see
    ``sink_batches``); each result matches what is in its sink."""
    from daft_flow.execution.runner import failed_message

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    outcome = _Outcome()
    for _ in sink_batches(sinks, values, outcome=outcome, **options):
        pass
    ckpt = outcome.checkpoint
    if ckpt is not None:  # what the sinks hold: every attempt's committed rows and files
        from daft_flow.checkpoint.sinks import committed_paths

        results = [SinkResult(r.sink.describe(), int(ckpt.manifest.sinks[i].get("rows", 0)),
                              committed_paths(ckpt, i), outcome.failures[i], None)
                   for i, r in enumerate(outcome.runs)]
    else:
        results = [SinkResult(r.sink.describe(), outcome.written[i], list(outcome.paths[i]), outcome.failures[i],
                              r.sink.result()) for i, r in enumerate(outcome.runs)]
    if on_error == "raise":
        failed = [f for r in results for f in r.failures if not f.dead_lettered]  # dead letters are handled
        if failed:
            names = ", ".join(r.sink for r in results if r.failures)
            raise FlowRunError(f"{names}: " + failed_message(failed, outcome.num_inputs, "had rows that were not written"),
                               failed, results)
    return results
