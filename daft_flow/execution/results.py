"""Turning finished batches into what the user asked for: rows, failures, Arrow tables."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from daft_flow import _core
from daft_flow.errors import RowFailure
from daft_flow.convert import arrow_to_values
from daft_flow.plan.trace import TracedPlan, dtype_from_ir

_BUILTIN_ERRORS = {"TypeError": TypeError, "ValueError": ValueError, "ZeroDivisionError": ZeroDivisionError,
                   "OverflowError": OverflowError}


def _exception_from_message(message: str) -> BaseException:
    kind, _, text = message.partition(": ")
    return _BUILTIN_ERRORS.get(kind, RuntimeError)(text if kind in _BUILTIN_ERRORS else message)


class BatchOutput:
    """The output level's rows of one batch: values per output field, for the rows that survived.

    Lineage (input index, row ids) is computed on first use: the bulk path never pays for it.
    """

    def __init__(self, batch: Any, level: int, keep: "np.ndarray | None", n: int, columns: list[pa.Array],
                 failures: list[RowFailure], filtered: int = 0) -> None:
        self._batch, self._level, self._keep, self._n = batch, level, keep, n
        self.first_input: int = batch.first_input
        self.num_inputs: int = batch.num_rows(0)
        self.columns = columns
        self.failures = failures
        self.filtered = filtered  # rows a filter() dropped, on the output flow or its parents

    @property
    def root_filtered(self) -> np.ndarray:
        """Per input of the batch: whether a filter() dropped it."""
        mask = np.frombuffer(self._batch.failed_mask(0), dtype=np.uint8)
        return mask == 3 if len(mask) else np.zeros(self.num_inputs, dtype=bool)

    def truncate(self, rows: int) -> None:
        """Keeps the first ``rows`` rows (limit()); the batch then ends at the last input they came from."""
        if rows >= len(self.row_positions):
            return
        last_input = int(self.input_index[rows - 1]) if rows else self.first_input - 1
        self._keep = self.row_positions[:rows]
        self.columns = [c.slice(0, rows) for c in self.columns]
        self.failures = [f for f in self.failures if f.input_index <= last_input]
        self.num_inputs = last_input - self.first_input + 1

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
    def root_row_ids(self) -> np.ndarray:
        """Per input of the batch: its root row id."""
        return self._batch.row_ids(0).to_numpy()

    @property
    def row_ids(self) -> np.ndarray:
        ids = self._batch.row_ids(self._level).to_numpy()
        return ids if self._keep is None else ids[self._keep]


class OutputReader:
    def __init__(self, traced: TracedPlan, run: Any) -> None:
        plan = traced.plan
        self.run = run
        self.level = plan.output_level
        self.names = list(plan.output_names)
        self.nodes = list(plan.output_nodes)
        self.node_levels = [plan.nodes[n].level for n in self.nodes]
        self.types = [dtype_from_ir(plan.nodes[n].type) for n in self.nodes]
        self.flows = [lvl.flow for lvl in plan.levels]
        path, lvl = [], self.level
        while lvl >= 0:
            path.append(lvl)
            lvl = plan.levels[lvl].parent
        self.path = path[::-1]
        self._noted: set[int] = set()

    def read(self, batch: Any) -> BatchOutput:
        out = self.level
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
        columns = []
        for node, lvl in zip(self.nodes, self.node_levels):
            col = batch.column(lvl, node)
            if lvl == out and keep is None:
                columns.append(col)
            else:
                index = index_to(lvl) if keep is None else index_to(lvl)[keep]
                columns.append(self._take(batch, lvl, node, col, index))
        failures = self._failures(batch) if keep is not None else []
        filtered = sum(batch.filtered(lvl) for lvl in self.path) if keep is not None else 0
        return BatchOutput(batch, out, keep, n, columns, failures, filtered)

    @staticmethod
    def _take(batch: Any, level: int, node: int, col: pa.Array, index: np.ndarray) -> pa.Array:
        # Natively, without the GIL, into memory of the runtime's allocator (pyarrow's take holds
        # the GIL and, through its allocator's huge pages, stalled for up to 100 ms per batch).
        try:
            return batch.take(level, node, np.ascontiguousarray(index, dtype=np.int64))
        except ValueError:  # a layout the native take does not know
            return col.take(pa.array(index, type=pa.int64()))

    def _failures(self, batch: Any) -> list[RowFailure]:
        failures = []
        for lvl in self.path:
            entries = batch.failures(lvl)
            if not entries:
                continue
            ids = batch.row_ids(lvl).to_numpy()
            to_root = None if lvl == 0 else batch.ancestor_index(lvl, 0).to_numpy()
            for row, _node, op, field, message, handle in entries:
                error = self.run.take_error(handle) if handle >= 0 else None
                if error is None:
                    error = _exception_from_message(message)
                input_index = batch.first_input + (row if to_root is None else int(to_root[row]))
                row_id = f"{int(ids[row]):016x}"
                if id(error) not in self._noted and hasattr(error, "add_note"):
                    self._noted.add(id(error))
                    error.add_note(f"[daft_flow] row {row_id} (input {input_index}) of flow {self.flows[lvl]!r} "
                                   f"failed in {op} computing field {field!r}")
                failures.append(RowFailure(input_index, row_id, self.flows[lvl], op, field, error))
        failures.sort(key=lambda f: f.input_index)
        return failures

    def rows(self, output: BatchOutput) -> list[dict[str, Any]]:
        values = [arrow_to_values(col, t) for col, t in zip(output.columns, self.types)]
        return _core.make_rows(self.names, values) if values else []


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
