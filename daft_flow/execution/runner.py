"""collect / collect_batch / stream / collect_arrow: one run of the native pipeline each."""
from __future__ import annotations

import atexit
import os
from collections.abc import Mapping, Sized
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

import daft_flow.execution.event_loop  # noqa: F401 - its exit hook must be registered before ours (atexit is LIFO)
from daft_flow.errors import FlowRunError, RowFailure
from daft_flow.execution.options import get_options
from daft_flow.execution.physical import build_run
from daft_flow.execution.monitor import RunMonitor
from daft_flow.execution.report import RunEnding
from daft_flow.execution.progress import progress_for
from daft_flow.execution.results import SLICE_BYTES, BatchOutput, FlowStream, OutputReader
from daft_flow.execution.source import InputSource
from daft_flow.plan.trace import TracedPlan, dtype_from_ir, trace

if TYPE_CHECKING:
    from daft_flow.flow import Flow

_ON_ERROR = ("raise", "return", "skip")

# Runs still open (a stream the caller never finished). They are closed before the interpreter
# shuts down, so no runtime thread is left waiting for a GIL that no longer exists.
_live_runs: dict[int, Any] = {}


# How long interpreter exit waits for calls that runs left running when they were cancelled (a row
# function in the middle of a slow call at Ctrl-C): one still inside Python when the interpreter
# finalizes would be ended by it mid-call, unwinding through the runtime's frames.
EXIT_WAIT_SECONDS = 5.0


@atexit.register
def _close_live_runs() -> None:
    for run in list(_live_runs.values()):
        run.close()
    _live_runs.clear()
    from daft_flow import _core

    try:
        _core.wait_for_left_behind(EXIT_WAIT_SECONDS)
    except KeyboardInterrupt:  # a second Ctrl-C: exit now
        pass


def _forget_runs_after_fork() -> None:
    # A forked child inherits open runs without their threads: they are the parent's to close.
    _live_runs.clear()


os.register_at_fork(after_in_child=_forget_runs_after_fork)


def _check_not_on_the_loop(runners: list[Any]) -> None:
    """A run whose ops need the runtime's event loop cannot be waited for on that loop's thread."""
    from daft_flow.execution import event_loop
    from daft_flow.execution.python_runners import uses_event_loop

    if event_loop.in_loop_thread() and uses_event_loop(runners):
        raise RuntimeError(
            "collect()/stream() was called on daft_flow's event-loop thread (from an async function of a running "
            "flow), and this flow has async, LLM or read ops, which run on that same loop: it would wait for "
            "itself forever. Run it off the loop: `await asyncio.to_thread(flow.collect, value)`, or call it "
            "from a sync run_python function.")


def _check_on_error(value: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"on_error must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _check_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _inputs(flow_root_field: str, values: Iterable[Any], root_type: Any = None) -> Iterable[Any]:
    from daft_flow.io.sources import arrow_column, arrow_inputs

    if root_type is not None and root_type.arrow_format:
        column = arrow_column(values, flow_root_field, root_type.to_arrow())
        if column is not None:
            return column  # Arrow in, Arrow through: no Python values
    converted = arrow_inputs(values, flow_root_field)
    if converted is not None:
        values = converted
    if isinstance(values, (str, bytes)):
        raise TypeError("collect_batch/stream take an iterable of inputs; for one input use collect(value)")
    if isinstance(values, Mapping):  # would run on its keys
        raise TypeError("collect_batch/stream take an iterable of inputs, not a dict (it would run on its keys): "
                        "for one input use collect(value); for its values, collect_batch(d.values())")
    if not hasattr(values, "__iter__"):
        raise TypeError(f"inputs must be iterable, got {type(values).__name__}")
    return values


def _input_count(values: Any) -> int | None:
    """How many inputs ``values`` holds, when that is known without reading them (lists, Arrow
    tables and arrays, other sized collections); None for iterators and daft DataFrames."""
    if isinstance(values, (str, bytes)):
        return None
    if isinstance(values, (pa.Table, pa.RecordBatch)):
        return values.num_rows
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return len(values)
    if isinstance(values, Sized) and type(values).__module__.split(".")[0] != "daft":  # len(DataFrame) runs it
        try:
            return len(values)
        except TypeError:
            return None
    return None


def run_batches(traced: TracedPlan, values: Iterable[Any], make_readers: Callable[[Any], Any], *,
                ordered: bool = True, usage_owner: Any = None, record: bool = True, skip: Any = None,
                journal: Any = None, first_input: int = 0, dead_letters_to: list[Any] | None = None,
                python_rows: bool = False, held_results_bytes: int = -1,
                **options: Any) -> Iterator[tuple[Any, Any]]:
    """Runs a traced plan; yields (readers, batch) per finished batch, where ``readers`` is what
    ``make_readers(run)`` returned. The batch is released when the consumer asks for the next one.
    The run's report and LLM usage are kept on ``usage_owner`` (``_last_run``, ``_last_usage``)
    and, unless ``record`` is False (cost estimates), as ``dflow.last_run()`` / ``dflow.usage()``,
    with a progress display and OpenTelemetry spans. A checkpointed run passes ``skip`` (the
    inputs already done, see ``checkpoint/resume.py``) and ``journal`` (the cache its LLM ops
    save each answer to). ``first_input`` numbers the inputs from there (a worker running a
    morsel of a larger input names inputs by their index in it); a worker also passes
    ``dead_letters_to``, a list that collects the dead-letter records its client writes.
    ``python_rows``: the consumer makes the output rows into Python objects (its row functions
    keep their results for them, at most ``held_results_bytes`` of new objects per batch; -1: all)."""
    plan = traced.plan
    total = _input_count(values)
    values = _inputs(plan.root_field, values, dtype_from_ir(plan.root_type))
    opts = get_options(**options)
    root = plan.levels[0]
    out_level = plan.levels[plan.output_level]
    source = InputSource(values, dtype_from_ir(plan.root_type), root.element_node, plan.root_field, root.flow, opts,
                         max_inputs=root.input_limit if root.HasField("input_limit") else None,
                         first_rows=out_level.limit if out_level.HasField("limit") else 0, skip=skip)
    source.count = first_input  # a limit() counts global inputs too: a morsel past it reads nothing
    from daft_flow.llm.budget import CostBudget
    from daft_flow.llm.usage import UsageReport, set_last

    usage = UsageReport()
    monitor = RunMonitor(plan, budget=CostBudget(opts.max_cost_usd) if opts.max_cost_usd is not None else None,
                         total_inputs=total, progress=progress_for(opts.progress) if record else None,
                         plan_fingerprint=traced.plan.fingerprint or None)
    cancellables: list[Any] = []
    resources: list[Any] = []  # opened before the run starts, closed after it ends (dead-letter sinks)
    opened: list[Any] = []
    closers: list[Any] = []
    try:
        run = build_run(traced, source, opts, ordered, usage, cancellables, monitor, resources, journal, closers,
                        python_rows=python_rows, held_results_bytes=held_results_bytes)
        _check_not_on_the_loop(cancellables)
        readers = make_readers(run)
        # A resumed checkpoint keeps what its earlier attempts dead-lettered (their inputs are done).
        resumed = bool(getattr(skip, "ranges", None))
        for resource in resources:
            if dead_letters_to is not None and hasattr(resource, "defer_dead_letters"):
                resource.defer_dead_letters(dead_letters_to)
            resource.open(keep_existing=resumed)
            opened.append(resource)
        if python_rows:
            from daft_flow import _core

            prefault = _core.ArenaPrefault()
            closers.append(prefault.close)
        for reader in readers if isinstance(readers, (list, tuple)) else [readers]:
            if hasattr(reader, "root_objects"):  # rows reuse the caller's input objects
                reader.root_objects = source.objects_for
                reader.python_rows = python_rows
                if python_rows:
                    reader.prefault = prefault
        monitor.start()
        run.start()
    except BaseException:
        monitor.discard()
        _end_provider_runs(usage)
        _close(closers)
        _close_all(opened)
        raise
    _live_runs[id(run)] = run
    ending = RunEnding()
    try:
        with ending:
            while (batch := run.next()) is not None:
                monitor.batch_done(batch)
                yield readers, batch
                source.release(batch.first_input)
                run.release(batch)
    finally:
        _live_runs.pop(id(run), None)
        try:
            for runner in cancellables:  # a run that ends early must not wait for in-flight requests
                runner.cancel()
        finally:  # also when a second Ctrl-C lands here
            try:
                run.close()
                for runner in cancellables:  # class functions close their instances once no stage runs
                    if hasattr(runner, "close"):
                        runner.close()
            finally:
                try:
                    _close_all(opened)
                finally:  # a dead-letter sink that fails to close still lets the run end its providers and caches
                    _end_provider_runs(usage)
                    _close(closers)
        # dflow.usage() is the last run's report, empty when that run had no LLM ops.
        usage.finish()
        if record:
            set_last(usage)
        if usage_owner is not None:
            usage_owner._last_usage = usage
        report = monitor.finish(ending.status, ending.error, usage if usage.ops else None, record=record)
        if usage_owner is not None:
            usage_owner._last_run = report


def _close_all(resources: list[Any]) -> None:
    """Closes every resource, even when one fails to; then raises the first failure."""
    first: BaseException | None = None
    for resource in resources:
        try:
            resource.close()
        except BaseException as e:  # noqa: B036 - closing the others matters more; re-raised below
            first = first or e
    if first is not None:
        raise first


def _close(closers: list[Any]) -> None:
    """Calls what the run registered for its end (caches storing their last writes). A failure is
    logged, not raised: the run's results are complete either way and must reach the caller."""
    import logging

    for close in closers:
        try:
            close()
        except Exception as e:  # noqa: BLE001 - the others must still close
            logging.getLogger("daft_flow").warning("after the run: %s: %s", type(e).__name__, e)


def _end_provider_runs(usage: Any) -> None:
    """This run no longer uses its providers: the last run using one closes its connections."""
    for provider in usage.providers:
        provider._end_run()
    usage.providers.clear()


def _execute(flow: "Flow", values: Iterable[Any], *, ordered: bool = True, usage_owner: Any = None,
             traced: TracedPlan | None = None, checkpoint: Any = None, python_rows: bool = False,
             held_results_bytes: int = -1, **options: Any) -> Iterator[tuple[OutputReader, BatchOutput]]:
    """``usage_owner``: the object whose ``last_usage()`` reports this run (default: ``flow``).
    ``python_rows``: the caller makes the rows into Python objects (``OutputReader.rows``);
    ``held_results_bytes``: see ``run_batches``.
    ``checkpoint`` (an open ``checkpoint.Checkpoint``): done inputs are read past, and each
    finished batch's rows are committed to it before they are handed on."""
    cluster = options.pop("cluster", None)
    traced = traced if traced is not None else trace(flow)
    out_level = traced.plan.levels[traced.plan.output_level]
    remaining = out_level.limit if out_level.HasField("limit") else -1  # a limit() only the consumer can apply
    if checkpoint is not None:
        from daft_flow.checkpoint.rows import commit_rows

        options.update(skip=checkpoint.done, journal=checkpoint.journal())
    if cluster is not None:  # the same results, computed by workers (daft_flow/cluster/)
        from daft_flow.cluster.execute import cluster_execute

        batches = cluster_execute(usage_owner or flow, traced, values, cluster, ordered, options)
    else:
        batches = _local_outputs(usage_owner or flow, traced, values, ordered,
                                 dict(options, python_rows=python_rows, held_results_bytes=held_results_bytes))
    morsel: list[Any] = []  # a checkpointed cluster run commits whole morsels
    try:
        for reader, output in batches:
            if cluster is not None and checkpoint is not None and not hasattr(output, "input_index"):
                from daft_flow.checkpoint.rows import commit_morsel_rows

                commit_morsel_rows(checkpoint, output, morsel, reader.names)  # (a MorselDone)
                morsel = []
                continue
            if remaining >= 0:
                output.truncate(remaining)
                remaining -= len(output.row_positions)
            if checkpoint is not None:
                if cluster is not None:
                    morsel.append(output)
                else:
                    commit_rows(checkpoint, output, reader.names)
            yield reader, output
            if remaining == 0:
                break
        batches.close()  # a limit() ends the run here: stop it (and its source) now, not when collected
        if checkpoint is not None:
            checkpoint.commit_pending()
            checkpoint.finish(checkpoint.done.end)
    finally:
        if checkpoint is not None and checkpoint._pending:  # left early: finished batches still count
            try:
                checkpoint.commit_pending()
            except Exception as e:  # noqa: BLE001 - the run's own error (if any) matters more
                import logging

                logging.getLogger("daft_flow").warning("could not commit the last batches: %s", e)


def _open_checkpoint(flow: "Flow", options: dict[str, Any]) -> tuple[Any, TracedPlan]:
    """Takes ``checkpoint=`` / ``resume=`` out of ``options``; checks the other options, then opens
    (or resumes) the checkpoint for the flow's traced plan, before anything runs."""
    location = options.pop("checkpoint", None)
    resume = options.pop("resume", True)
    traced = trace(flow)
    if location is not None:  # wrong options fail before an attempt is counted
        get_options(**{k: v for k, v in options.items() if k not in ("usage_owner", "traced", "cluster")})
    if location is None:
        if resume is not True:
            raise ValueError("resume= applies to a checkpoint: pass checkpoint='dir' (or 's3://bucket/run') too")
        return None, traced
    from daft_flow.checkpoint import Checkpoint
    from daft_flow.plan.fingerprint import fingerprint_plan

    fingerprint_plan(traced)
    from daft_flow.checkpoint.retries import track_retries

    ckpt = Checkpoint.open(location, fingerprint=traced.plan.fingerprint, kind="rows", flow=flow.name, resume=resume)
    if options.get("cluster") is None:  # (a cluster's morsels come back with their retries)
        track_retries(ckpt, traced)
    return ckpt, traced


def _local_outputs(owner: Any, traced: TracedPlan, values: Iterable[Any], ordered: bool,
                   options: dict[str, Any]) -> Iterator[tuple[OutputReader, BatchOutput]]:
    batches = run_batches(traced, values, lambda run: OutputReader(traced, run), ordered=ordered, usage_owner=owner,
                          **options)
    try:
        for reader, batch in batches:
            yield reader, reader.read(batch)
    finally:
        batches.close()


def _is_root(flow: "Flow") -> bool:
    return flow._level.parent is None


def collect_batch(flow: "Flow", values: Iterable[Any], *, on_error: str = "raise", **options: Any) -> list[Any]:
    _check_on_error(on_error, ("raise", "return"))
    ckpt, traced = _open_checkpoint(flow, options)
    if ckpt is not None:
        return _collect_batch_checkpointed(flow, values, ckpt, traced, on_error, **options)
    options["traced"] = traced
    root = _is_root(flow)
    results: list[Any] = []
    failures: list[RowFailure] = []
    # Root flows: one result per input that was not filtered out, in input order (`position` maps
    # an input index to its place when filter() dropped some).
    position: dict[int, int] | None = None
    num_inputs = 0
    # Child flows whose rows a policy may retry: retried rows come in later batches, so the rows of
    # inputs that had a retry are put back in order (by their position under the input) at the end.
    ordered: dict[int, list[tuple[tuple[int, ...], Any]]] | None = None
    for reader, out in _execute(flow, values, python_rows=True, **options):
        num_inputs += out.num_inputs
        base = len(results)
        rows = reader.rows(out)
        if ordered is None and not root and reader.retrying:
            ordered = {}
        if out.tag:  # a retry batch: rows and failures of inputs that came before
            for i, row, key in zip(out.input_index.tolist(), rows, out.order_keys() if ordered is not None else
                                   [()] * len(rows)):
                if root:
                    results[i if position is None else position[i]] = row
                elif ordered is not None:
                    ordered.setdefault(i, []).append((key, row))
        elif root:
            if len(rows) == out.num_inputs and position is None:  # nothing failed or filtered: rows are the inputs
                results.extend(rows)
            elif not out.filtered and position is None:
                results.extend([None] * out.num_inputs)
                for i, row in zip(out.input_index.tolist(), rows):
                    results[i] = row
            else:
                if position is None:
                    position = {i: i for i in range(len(results))}
                by_input = dict(zip(out.input_index.tolist(), rows))
                dropped = out.root_filtered
                for k in range(out.num_inputs):
                    i = out.first_input + k
                    if not dropped[k]:
                        position[i] = len(results)
                        results.append(by_input.get(i))
        else:
            # Each input's child rows in order. With on_error="return" its RowFailures follow them
            # (below): a failure may be of an ancestor row, which has no place among the children.
            results.extend([] for _ in range(out.num_inputs))
            retried = reader.retried_inputs(out) if ordered is not None else set()
            if retried or retried is None:  # only inputs that had a retry pay for their order keys
                keys = out.order_keys()
                for k, (i, row) in enumerate(zip(out.input_index.tolist(), rows)):
                    if retried is None or i in retried:
                        ordered.setdefault(i, []).append((keys[k], row))
                    else:
                        results[i].append(row)
            else:
                _group_children(results, out.input_index, rows)
        for f in out.failures:
            assert position is not None or f.input_index >= base or out.tag
            failures.append(f)
    if ordered:
        for i, items in ordered.items():
            items.sort(key=lambda item: item[0])
            # (rows already there: an input whose retry was not seen in its first batch, e.g. a
            # parent with no child rows then; they keep their place before the retried ones)
            results[i] = results[i] + [row for _, row in items]
    for f in failures:
        if on_error == "return":
            if root:
                results[f.input_index if position is None else position[f.input_index]] = f
            else:
                results[f.input_index].append(f)
    unhandled = [f for f in failures if not f.dead_lettered]
    if on_error == "raise" and failures:
        if root:
            for f in failures:
                results[f.input_index if position is None else position[f.input_index]] = None
        if unhandled:
            raise FlowRunError(failed_message(unhandled, num_inputs), unhandled, results)
    return results


def _group_children(results: list[Any], input_index: Any, rows: list[Any]) -> None:
    """Appends each child row to its input's list in ``results``. Child rows come in runs per input:
    one list slice per run, not one numpy scalar and append per row."""
    idx = np.asarray(input_index)
    if len(idx) == 0:
        return
    starts = np.flatnonzero(idx[1:] != idx[:-1]) + 1
    bounds = [0, *starts.tolist(), len(idx)]
    for k, i in enumerate(idx[bounds[:-1]].tolist()):
        results[i].extend(rows[bounds[k]:bounds[k + 1]])


def _collect_batch_checkpointed(flow: "Flow", values: Iterable[Any], ckpt: Any, traced: TracedPlan, on_error: str,
                                **options: Any) -> list[Any]:
    """collect_batch with a checkpoint: this call's rows and failures, and the rows earlier attempts
    committed (inputs this call read past), in input order."""
    from daft_flow.checkpoint.rows import StoredRows, stored_dead_letters

    earlier = list(ckpt.records)
    rows_of: dict[int, list[Any]] = {}
    failed: dict[int, list[RowFailure]] = {}
    failures: list[RowFailure] = []
    seen = 0
    reader = None
    # Child rows of a flow that retries come back in later batches: each input's rows are put in
    # the order a fresh run gives them (their position under the input).
    keyed: dict[int, list[tuple[tuple[int, ...], Any]]] = {}
    root = _is_root(flow)
    for reader, out in _execute(flow, values, traced=traced, checkpoint=ckpt, python_rows=True, **options):
        seen = max(seen, out.first_input + out.num_inputs)
        rows = reader.rows(out)
        if not root and reader.retrying:
            for i, key, row in zip(out.input_index.tolist(), out.order_keys(), rows):
                keyed.setdefault(i, []).append((key, row))
        else:
            for i, row in zip(out.input_index.tolist(), rows):
                rows_of.setdefault(i, []).append(row)
        for f in out.failures:
            failed.setdefault(f.input_index, []).append(f)
        failures.extend(out.failures)
    if reader is None:
        reader = OutputReader(traced, None)
    total = ckpt.done.end if ckpt.done.end is not None else max(
        [seen, *(r.stop for r in ckpt.done.ranges)])
    for i, group in StoredRows(ckpt, earlier, reader.names, reader.types).before(total):
        rows_of.setdefault(i, []).extend(group)
    for f in stored_dead_letters(ckpt, earlier):  # in their inputs' places, as the first attempt had them
        failed.setdefault(f.input_index, []).append(f)
        failures.append(f)
    for i, items in keyed.items():
        items.sort(key=lambda item: item[0])
        rows_of[i] = rows_of.get(i, []) + [row for _, row in items]
    results: list[Any] = []
    for i in range(total):
        if root:
            if i in failed:
                results.append(failed[i][0] if on_error == "return" else None)
            elif i in rows_of:
                results.append(rows_of[i][0])
            # neither: a filter() dropped the input
        else:
            entry: list[Any] = list(rows_of.get(i, []))
            if on_error == "return":
                entry.extend(failed.get(i, []))
            results.append(entry)
    unhandled = [f for f in failures if not f.dead_lettered]  # dead letters are handled by their policy
    if unhandled and on_error == "raise":
        raise FlowRunError(failed_message(unhandled, total), unhandled, results)
    return results


def failed_message(failures: list[RowFailure], num_inputs: int, what: str = "failed") -> str:
    """``"2 of 10 inputs failed (3 rows); first: ..."`` for a FlowRunError."""
    n_failed = len({f.input_index for f in failures})
    rows = f" ({len(failures)} rows)" if len(failures) != n_failed else ""
    return f"{n_failed} of {num_inputs} input{'s' if num_inputs != 1 else ''} {what}{rows}; first: {failures[0]}"


def collect_one(flow: "Flow", value: Any, **options: Any) -> Any:
    _check_single_input(flow, value)
    try:
        results = collect_batch(flow, [value], **options)
    except FlowRunError as e:
        raise e.failures[0].error from None
    return results[0] if results else None  # None: filter() dropped the input


def _check_single_input(flow: "Flow", value: Any) -> None:
    """collect(x) runs one input: a list (or other collection) given to a flow whose input is not a
    list is almost always meant for collect_batch."""
    import collections.abc as abc

    kind = flow._level.ancestors()[-1].input_type.kind
    if kind in ("list", "JSON", "any", "Embedding") or isinstance(value, (str, bytes, bytearray, memoryview, dict)):
        return
    many = isinstance(value, (abc.Sequence, abc.Set, abc.Iterator)) or type(value).__module__.split(".")[0] in (
        "pyarrow", "daft", "pandas")
    if many:
        root = flow._level.ancestors()[-1]
        size = f" of {len(value)} values" if isinstance(value, abc.Sized) else ""
        raise TypeError(f"collect() runs one input, but got a {type(value).__name__}{size}, and flow {root.name!r} "
                        f"takes {root.input_type} for field {root.input_field!r}; for many inputs use "
                        f"collect_batch(inputs) (or stream(inputs))")


def stream(flow: "Flow", values: Iterable[Any], *, ordered: bool = True, on_error: str = "raise",
           lineage: bool = False, **options: Any) -> FlowStream:
    _check_on_error(on_error, ("raise", "skip"))
    _check_bool(ordered, "ordered")
    failures: list[RowFailure] = []
    ckpt, traced = _open_checkpoint(flow, options)  # now, not at the first next(): a bad checkpoint fails here
    get_options(**{k: v for k, v in options.items() if k not in ("usage_owner", "cluster")})  # wrong ones fail here
    stored = None
    if ckpt is not None and ckpt.records:
        from daft_flow.checkpoint.rows import StoredRows

        probe = OutputReader(traced, None)
        stored = StoredRows(ckpt, list(ckpt.records), probe.names, probe.types, lineage=lineage)

    def report(new: list[RowFailure]) -> None:
        """Failures go to the stream's list; with on_error="raise" the first that was not
        dead-lettered is raised (a dead letter is a failure handled by its flow's policy)."""
        failures.extend(new)
        if on_error == "raise":
            for f in new:
                if not f.dead_lettered:
                    raise f.error

    def rows() -> Iterator[dict[str, Any]]:
        if stored is not None and not ordered:
            for _, group in stored.before(1 << 62):
                yield from group
        # A stream holds a slice of rows at a time: a batch's row functions keep their results
        # only while new objects among them take no more than a slice's bytes (else decoded per slice).
        for reader, out in _execute(flow, values, ordered=ordered, traced=traced, checkpoint=ckpt, python_rows=True,
                                    held_results_bytes=SLICE_BYTES, **options):
            if stored is not None and ordered:  # earlier attempts' rows in their place
                for _, group in stored.before(out.first_input):
                    yield from group
            reported = 0
            # A slice at a time: a batch with millions of child rows is never all Python objects at once.
            for chunk in reader.row_slices(out, lineage=lineage):  # lineage: as collect_arrow(lineage=True)
                if len(out.failures) > reported:  # failed upstream, or a value that could not be read back
                    new, reported = out.failures[reported:], len(out.failures)
                    report(new)
                yield from chunk
            if len(out.failures) > reported:
                report(out.failures[reported:])
        if stored is not None:
            for _, group in stored.before(1 << 62):
                yield from group

    return FlowStream(rows(), failures)


def collect_arrow(flow: "Flow", values: Iterable[Any], *, on_error: str = "raise", lineage: bool = False,
                  **options: Any) -> pa.Table:
    _check_on_error(on_error, ("raise", "skip"))
    _check_bool(lineage, "lineage")
    ckpt, traced = _open_checkpoint(flow, options)
    earlier = list(ckpt.records) if ckpt is not None else []
    with_lineage = lineage or bool(earlier)  # rows of earlier attempts are put in place by input index
    tables = []
    failures: list[RowFailure] = []
    names: list[str] = []
    num_inputs = 0
    for reader, out in _execute(flow, values, traced=traced, checkpoint=ckpt, **options):
        names = reader.names
        num_inputs += out.num_inputs
        failures.extend(out.failures)
        arrays = list(out.columns)
        cols = list(names)
        if with_lineage:
            arrays += [pa.array(out.input_index, type=pa.int64()),
                       pa.array([f"{int(x):016x}" for x in out.row_ids], type=pa.string())]
            cols += ["_input_index", "_row_id"]
        tables.append(pa.Table.from_arrays(arrays, names=cols))
    if earlier:
        from daft_flow.checkpoint.rows import stored_table

        stored = stored_table(ckpt, earlier, traced)
        if stored is not None:
            tables = _in_input_order([stored, *tables])
        if not lineage:
            tables = [t.drop_columns(["_input_index", "_row_id"]) for t in tables]
    unhandled = [f for f in failures if not f.dead_lettered]
    if unhandled and on_error == "raise":
        partial = pa.concat_tables(tables) if tables else None
        raise FlowRunError(failed_message(unhandled, num_inputs), unhandled, [partial])
    if not tables:
        plan = traced.plan
        fields = [pa.field(n, dtype_from_ir(plan.nodes[i].type).to_arrow())
                  for n, i in zip(plan.output_names, plan.output_nodes)]
        if lineage:
            fields += [pa.field("_input_index", pa.int64()), pa.field("_row_id", pa.string())]
        return pa.schema(fields).empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _in_input_order(tables: list[pa.Table]) -> list[pa.Table]:
    """One table of all rows, sorted by input (stable: an input's rows keep their order)."""
    from daft_flow.checkpoint import CheckpointError

    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as e:
        raise CheckpointError(f"rows of the checkpoint's earlier attempts do not have this flow's columns ({e}); "
                              "resume='force' cannot join them: start over with resume=False") from None
    import pyarrow.compute as pc

    order = pc.sort_indices(table, sort_keys=[("_input_index", "ascending")])
    return [table.take(order)]
