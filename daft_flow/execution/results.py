"""Turning finished batches into what the user asked for: rows, failures, Arrow tables."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from daft_flow import _core
from daft_flow.errors import RowFailure
from daft_flow.convert import arrow_to_values
from daft_flow.plan.trace import TracedPlan, dtype_from_ir
from daft_flow.user_errors import add_note

_BUILTIN_ERRORS = {"TypeError": TypeError, "ValueError": ValueError, "ZeroDivisionError": ZeroDivisionError,
                   "OverflowError": OverflowError}


def _exception_from_message(message: str) -> BaseException:
    kind, _, text = message.partition(": ")
    return _BUILTIN_ERRORS.get(kind, RuntimeError)(text if kind in _BUILTIN_ERRORS else message)


def _op_name(node: Any, objects: list[Any]) -> str:
    """How errors name the op that computed a node (as its lowering names it)."""
    from daft_flow.ops.python_udf import callable_name

    kind = node.WhichOneof("op")
    if kind == "python_udf":
        return node.python_udf.builtin or f"run_python({callable_name(objects[node.python_udf.fn_ref])})"
    if kind == "llm_call":
        return "embed_text" if node.llm_call.kind == node.llm_call.EMBED else "prompt"
    return {"level_input": "input", "as_list": "flat_map"}.get(kind, kind)


# stream() turns a batch into Python rows a slice at a time: a batch whose output level holds
# millions of child rows (a large flat_map fan-out) never exists whole as Python objects.
SLICE_ROWS = 4096
SLICE_BYTES = 4 << 20

# Rows of batches whose Python objects take this much have their memory faulted in ahead by another
# thread (_core.ArenaPrefault; from the batch half as large before them): below it, the thread is
# not worth starting.
PREFAULT_MIN_BYTES = 4 << 20


def python_row_bytes(rows: int, fields: int, arrow_bytes_per_row: int) -> int:
    """About the memory ``rows`` dicts of ``fields`` keys take (dict and its key table, and a new
    object per value, whose bytes the Arrow bytes approximate)."""
    return rows * (200 + 24 * fields + 56 * fields + arrow_bytes_per_row)


def _take(batch: Any, level: int, node: int, col: pa.Array, index: np.ndarray) -> pa.Array:
    """``col`` (node ``node`` of ``level``) at ``index``. Natively, without the GIL, into memory of
    the runtime's allocator (pyarrow's take holds the GIL and, through its allocator's huge pages,
    stalled for up to 100 ms per batch)."""
    try:
        return batch.take(level, node, np.ascontiguousarray(index, dtype=np.int64))
    except ValueError:  # a layout the native take does not know
        return col.take(pa.array(index, type=pa.int64()))


_RETRYING = 4  # batch.h kRowRetrying: the row (or an ancestor) went to a retry batch

class BatchOutput:
    """The output level's rows of one batch: values per output field, for the rows that survived.

    Columns are taken lazily: a field of an ancestor level is read per output row through an index
    (a parent's document is not copied once per child until asked for), whole (``columns``) or a
    slice at a time (``column_slice``). Lineage (input index, row ids) is computed on first use:
    the bulk path never pays for it.
    """

    def __init__(self, batch: Any, level: int, keep: "np.ndarray | None", n: int,
                 sources: list[tuple[pa.Array, "np.ndarray | None", int, int]], failures: list[RowFailure],
                 filtered: int = 0, parents: "list[int] | None" = None) -> None:
        self._parents = parents or []
        self._batch, self._level, self._keep, self._n = batch, level, keep, n
        self.first_input: int = batch.first_input
        # A retry batch brings rows of an input seen before: no new inputs, and rows that belong
        # to the input at first_input (see retry.h).
        self.tag: int = batch.tag
        self.num_inputs: int = batch.num_rows(0) if not self.tag else 0
        # Per field: (column, row index into it per surviving row or None: as is, its level, its node).
        self._sources = sources
        self._columns: list[pa.Array] | None = None
        # (inputs as the caller passed them, offset of this batch's first, the root field's node)
        self.root_objects: tuple[list[Any], int, int] | None = None
        # Per field: the objects a row function returned for its column (aligned with the column's
        # rows, see _core.Batch.result_objects), or None.
        self.result_objects: list[list[Any] | None] = [None] * len(sources)
        self.failures = failures
        self.filtered = filtered  # rows a filter() dropped, on the output flow or its parents

    @property
    def root_filtered(self) -> np.ndarray:
        """Per input of the batch: whether a filter() dropped it."""
        mask = np.frombuffer(self._batch.failed_mask(0), dtype=np.uint8)
        return mask == 3 if len(mask) else np.zeros(self.num_inputs, dtype=bool)

    def order_keys(self) -> list[tuple[int, ...]]:
        """Per surviving row: its position under its input (its and its ancestors' child
        indexes, top down), which orders an input's child rows whatever batch they came in."""
        if self._level == 0:
            return [()] * self.num_rows
        columns = []
        level = self._level
        parents = self._parents
        while level > 0:
            index = self._batch.child_index(level).to_numpy()
            to_level = (np.arange(self._n) if level == self._level
                        else self._batch.ancestor_index(self._level, level).to_numpy())
            columns.append(index[to_level])
            level = parents[level]
        keys = np.stack(columns[::-1], axis=1) if columns else np.zeros((self._n, 0), dtype=np.int64)
        if self._keep is not None:
            keys = keys[self._keep]
        return [tuple(k) for k in keys.tolist()]

    def truncate(self, rows: int) -> None:
        """Keeps the first ``rows`` rows (limit()); the batch then ends at the last input they came from."""
        if rows >= len(self.row_positions):
            return
        last_input = int(self.input_index[rows - 1]) if rows else self.first_input - 1
        self._keep = self.row_positions[:rows]
        self._sources = [(col, (np.arange(rows) if index is None else index[:rows]), lvl, node)
                         for col, index, lvl, node in self._sources]
        self._columns = None
        self.failures = [f for f in self.failures if f.input_index <= last_input]
        self.num_inputs = last_input - self.first_input + 1

    @property
    def num_rows(self) -> int:
        """Surviving rows."""
        return self._n if self._keep is None else len(self._keep)

    @property
    def columns(self) -> list[pa.Array]:
        if self._columns is None:
            self._columns = [col if index is None else _take(self._batch, lvl, node, col, index)
                             for col, index, lvl, node in self._sources]
        return self._columns

    def column_slice(self, k: int, start: int, stop: int) -> pa.Array:
        col, index, lvl, node = self._sources[k]
        if index is None:
            return col.slice(start, stop - start)
        return _take(self._batch, lvl, node, col, index[start:stop])

    def held_objects(self, k: int, start: int, stop: int) -> "tuple[list[Any], int, np.ndarray | None] | None":
        """Python objects that already hold field ``k``'s values: the caller's inputs for the root
        field, or a row function's own results. (objects, offset, index) such that surviving row
        ``start + i`` has value ``objects[offset + index[i]]`` (``offset + start + i`` when index is
        None); None when there are none. (``_core.rows`` still checks each object's type.)"""
        col, index, lvl, node = self._sources[k]
        objects, offset = self.result_objects[k], 0
        if objects is None:
            if self.root_objects is None:
                return None
            objects, offset, root_node = self.root_objects
            if lvl != 0 or node != root_node:
                return None
        if index is None:
            return objects, offset + start, None
        return objects, offset, np.ascontiguousarray(index[start:stop], dtype=np.int64)

    def bytes_per_row(self) -> int:
        """About how many Arrow bytes one surviving row reads (ancestor values counted per row)."""
        total = 0.0
        for col, *_ in self._sources:
            if len(col):
                total += col.nbytes / len(col)
        return int(total)

    @property
    def row_positions(self) -> np.ndarray:
        """Per surviving row: its position among all rows of the batch's output level."""
        return np.arange(self._n) if self._keep is None else self._keep

    @property
    def input_index(self) -> np.ndarray:
        """Per surviving row: the index of the input it came from."""
        if self._level == 0:
            base = np.arange(self._n)
        else:
            base = self._batch.ancestor_index(self._level, 0).to_numpy()
        return self.first_input + (base if self._keep is None else base[self._keep])

    @property
    def batch(self) -> Any:
        """The runtime's batch these rows come from (``_core.Batch``)."""
        return self._batch

    @property
    def row_ids(self) -> np.ndarray:
        ids = self._batch.row_ids(self._level).to_numpy()
        return ids if self._keep is None else ids[self._keep]

    def exclude(self, surviving: list[int]) -> None:
        """Drops rows (indexes among the surviving rows) whose values could not be read back; their
        failures were added to ``failures``."""
        if not surviving:
            return
        self._keep = np.delete(self.row_positions, surviving)
        identity = None
        sources = []
        for col, index, lvl, node in self._sources:
            if index is None:
                identity = np.arange(len(col)) if identity is None else identity
                index = identity
            sources.append((col, np.delete(index, surviving), lvl, node))
        self._sources, self._columns = sources, None
        self.failures.sort(key=lambda f: f.input_index)


class OutputReader:
    def __init__(self, traced: TracedPlan, run: Any) -> None:
        plan = traced.plan
        self.run = run
        self.level = plan.output_level
        self.names = list(plan.output_names)
        self.nodes = list(plan.output_nodes)
        self.node_levels = [plan.nodes[n].level for n in self.nodes]
        self.types = [dtype_from_ir(plan.nodes[n].type) for n in self.nodes]
        self.ops = [_op_name(plan.nodes[n], traced.objects) for n in self.nodes]
        self.flows = [lvl.flow for lvl in plan.levels]
        self.parents = [lvl.parent for lvl in plan.levels]
        self.policies = getattr(run, "policies", None)  # the run's PolicyResolver: attempts of failed rows
        # Rows of a retrying policy come back in later (retry) batches; from the plan, so a
        # cluster's client, which has no PolicyResolver, knows it too.
        self.retrying = any(lvl.HasField("policy") and lvl.policy.HasField("retry") for lvl in plan.levels)
        path, lvl = [], self.level
        while lvl >= 0:
            path.append(lvl)
            lvl = plan.levels[lvl].parent
        self.path = path[::-1]
        self._noted: set[int] = set()
        self.root_node = plan.levels[0].element_node
        # first_input -> (list, offset) of the caller's input objects (set by the run for list inputs):
        # output rows reuse them for the root field instead of decoding the same values from Arrow.
        self.root_objects: Callable[[int], Any] | None = None
        # Whether the rows become Python objects (collect, collect_batch, stream): the run's row
        # functions then keep their result objects for the output fields (see build_run).
        self.python_rows = False
        # The run's _core.ArenaPrefault (set by run_batches for Python rows): large batches have
        # the memory of their rows faulted in ahead.
        self.prefault: Any = None

    def read(self, batch: Any) -> BatchOutput:
        out = self.level
        if batch.tag and batch.is_context(out):  # a retry batch redoing rows that are not this output's
            return BatchOutput(batch, out, np.zeros(0, dtype=np.int64), 0,
                               [(pa.array([], type=t.to_arrow()), None, out, n) for t, n in zip(self.types, self.nodes)],
                               [], 0, self.parents)
        n = batch.num_rows(out)
        masks = [(lvl, np.frombuffer(batch.failed_mask(lvl), dtype=np.uint8)) for lvl in self.path]
        ancestor: dict[int, np.ndarray] = {}

        def index_to(lvl: int) -> np.ndarray:
            if lvl not in ancestor:
                ancestor[lvl] = np.arange(n) if lvl == out else batch.ancestor_index(out, lvl).to_numpy()
            return ancestor[lvl]

        keep = None
        if any(len(mask) for _, mask in masks):
            dead = np.zeros(n, dtype=bool)
            for lvl, mask in masks:
                if len(mask):
                    dead |= mask[index_to(lvl)] != 0
            keep = np.flatnonzero(~dead)
        sources: list[tuple[pa.Array, np.ndarray | None]] = []
        for node, lvl in zip(self.nodes, self.node_levels):
            col = batch.column(lvl, node)
            if lvl == out and keep is None:
                sources.append((col, None, lvl, node))
            else:
                sources.append((col, index_to(lvl) if keep is None else index_to(lvl)[keep], lvl, node))
        failures = self._failures(batch) if keep is not None else []
        filtered = sum(batch.filtered(lvl) for lvl in self.path) if keep is not None else 0
        output = BatchOutput(batch, out, keep, n, sources, failures, filtered, self.parents)
        if self.python_rows:
            output.result_objects = [batch.result_objects(lvl, node) if t.arrow_format else None
                                     for (_, _, lvl, node), t in zip(sources, self.types)]
        if self.root_objects is not None and any(lvl == 0 and node == self.root_node for _, _, lvl, node in sources):
            found = self.root_objects(batch.first_input)
            if found is not None:
                output.root_objects = (*found, self.root_node)
        return output

    def _failures(self, batch: Any) -> list[RowFailure]:
        failures = []
        for lvl in self.path:
            entries = batch.failures(lvl)
            if not entries:
                continue
            ids = batch.row_ids(lvl).to_numpy()
            to_root = None if lvl == 0 else batch.ancestor_index(lvl, 0).to_numpy()
            for row, _node, op, field, message, handle, dead_lettered in entries:
                error = self.run.take_error(handle) if handle >= 0 else None
                if error is None:
                    error = _exception_from_message(message)
                input_index = batch.first_input + (row if to_root is None else int(to_root[row]))
                row_id = f"{int(ids[row]):016x}"
                attempts = self.policies.attempts_of(lvl, int(ids[row])) if self.policies is not None else 1
                if id(error) not in self._noted:
                    self._noted.add(id(error))
                    tries = f" after {attempts} attempts" if attempts > 1 else ""
                    add_note(error, f"[daft_flow] row {row_id} (input {input_index}) of flow {self.flows[lvl]!r} "
                                    f"failed in {op} computing field {field!r}{tries}")
                failures.append(RowFailure(input_index, row_id, self.flows[lvl], op, field, error, attempts,
                                           bool(dead_lettered)))
        failures.sort(key=lambda f: f.input_index)
        return failures

    def retried_inputs(self, output: Any) -> "set[int] | None":
        """The inputs of a (first-attempt) batch some of whose rows left it for a retry: their rows
        come back in a later batch. None when that is not known (a cluster's output): any input may."""
        batch = getattr(output, "_batch", None)
        if batch is None:
            return None
        inputs: set[int] = set()
        for lvl in self.path:
            mask = np.frombuffer(batch.failed_mask(lvl), dtype=np.uint8)
            rows = np.flatnonzero(mask == _RETRYING) if len(mask) else ()
            if len(rows):
                to_root = rows if lvl == 0 else batch.ancestor_index(lvl, 0).to_numpy()[rows]
                inputs.update((batch.first_input + to_root).tolist())
        return inputs

    def rows(self, output: BatchOutput) -> list[dict[str, Any]]:
        """All surviving rows as dicts (one conversion for the whole batch). A row with a value that
        cannot be read back (a pickled object whose class fails to unpickle) becomes a failure of
        ``output`` instead, and lineage stays aligned with the rows returned."""
        rows: list[dict[str, Any]] = []
        for chunk in self.row_slices(output, max_rows=None):  # one slice
            rows = chunk if not rows else rows + chunk
        return rows

    def row_slices(self, output: BatchOutput, max_rows: int | None = SLICE_ROWS,
                   max_bytes: int = SLICE_BYTES, lineage: bool = False) -> Iterator[list[dict[str, Any]]]:
        """The surviving rows as dicts, converted at most ``max_rows`` (and about ``max_bytes`` of
        Arrow data) at a time. Rows whose values cannot be read back are added to
        ``output.failures`` as their slice is converted. With ``lineage``, each row also has
        ``_input_index`` and ``_row_id`` (as ``collect_arrow(lineage=True)``)."""
        n = output.num_rows
        if n == 0 or not self.types:
            if n and not self.types:
                yield [{} for _ in range(n)]
            return
        bytes_per_row = output.bytes_per_row()
        if self.prefault is not None:
            need = python_row_bytes(n, len(self.types), bytes_per_row)
            # (Batches grow to their full size doubling: a batch half as large opens the session,
            # so the pool is full when the first large one comes.)
            if 2 * need >= PREFAULT_MIN_BYTES:
                self.prefault.reserve(need)
        step = n if max_rows is None else max(1, min(max_rows, max_bytes // max(1, bytes_per_row)))
        dropped: list[int] = []
        input_index, row_ids = (output.input_index, output.row_ids) if lineage else (None, None)
        try:
            for start in range(0, n, step):
                stop = min(n, start + step)
                # Per field: an Arrow slice the native pass reads values from (str, int, ...: see
                # _core.rows), with the objects that already hold its values (the caller's inputs,
                # a row function's results) where there are some, or Python values for types only
                # Python converts (JSON, pickled objects, File, lists).
                fields: list[Any] = []
                unreadable: dict[int, tuple[int, BaseException]] = {}
                for k, t in enumerate(self.types):
                    column = output.column_slice(k, start, stop)
                    if t.arrow_format:
                        held = output.held_objects(k, start, stop)
                        fields.append(column if held is None else (*held, column))
                        continue
                    bad: list[tuple[int, BaseException]] = []
                    fields.append(arrow_to_values(column, t, bad))
                    for j, error in bad:
                        unreadable.setdefault(j, (k, error))
                names = self.names
                if lineage:
                    names = names + ["_input_index", "_row_id"]
                    fields.append(input_index[start:stop].tolist())
                    fields.append([f"{rid:016x}" for rid in row_ids[start:stop].tolist()])
                if unreadable:
                    output.failures.extend(self._unreadable(output, start, unreadable))
                    dropped.extend(start + j for j in sorted(unreadable))
                    rows = _core.rows(names, fields, stop - start)
                    yield [row for j, row in enumerate(rows) if j not in unreadable]
                    continue
                # Untracked by the collector: the list is the callers' (rows(), collect_batch,
                # stream), who take its rows out of it and never hand it on.
                yield _core.rows(names, fields, stop - start, track=False)
        finally:
            output.exclude(dropped)

    def _unreadable(self, output: BatchOutput, start: int,
                    unreadable: dict[int, tuple[int, BaseException]]) -> list[RowFailure]:
        input_index, row_ids = output.input_index, output.row_ids
        failures = []
        for j in sorted(unreadable):
            k, error = unreadable[j]
            row_id = f"{int(row_ids[start + j]):016x}"
            index = int(input_index[start + j])
            add_note(error, f"[daft_flow] row {row_id} (input {index}) of flow {self.flows[self.level]!r}: the "
                            f"value of field {self.names[k]!r} could not be read back")
            failures.append(RowFailure(index, row_id, self.flows[self.level], self.ops[k], self.names[k], error))
        return failures


class FlowStream:
    """An iterator over a flow's rows as they finish. ``failures`` collects failed rows when the
    stream was opened with ``on_error="skip"``. Closing it (or breaking out of a for loop over it)
    stops the run."""

    def __init__(self, rows: Iterator[dict[str, Any]], failures: list[RowFailure]) -> None:
        self._rows = rows
        self.failures = failures

    def __iter__(self) -> "FlowStream":
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "FlowStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
