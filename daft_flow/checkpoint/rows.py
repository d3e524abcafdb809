"""Checkpoints of a flow's rows (``collect_batch``, ``collect_arrow``, ``stream``): each finished
batch's rows of done inputs are stored as an Arrow IPC file, and a resumed call returns them with
the rows it computes, in input order.

An input is done when none of its rows failed, or every failed row was dead-lettered (a filtered
input is done and has no rows). Inputs with another failure are not done: a resumed call runs them
again (a failure may be a server that was down, or a spent budget: ``errors.NOT_DONE``). A
dead-lettered row's failure is kept in its commit record (as the cluster's wire carries failures),
so a resumed ``collect_batch`` has it in its input's place as a first attempt had.
"""
from __future__ import annotations

import base64
import heapq
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from daft_flow.checkpoint.manifest import MASK64
from daft_flow.checkpoint.run import Checkpoint

INDEX, ROW_ID = "_input_index", "_row_id"


def dead_letter_record(failure: Any) -> dict[str, Any]:
    """A dead-lettered row's failure as JSON for a commit record."""
    from daft_flow.cluster.wire import encode_failure

    d = encode_failure(failure)
    d["pickle"] = base64.b64encode(d["pickle"]).decode() if d["pickle"] else None
    return d


def stored_dead_letters(ckpt: Checkpoint, records: list[dict[str, Any]]) -> list[Any]:
    """The dead-lettered failures earlier attempts committed (``RowFailure``s, in input order)."""
    from daft_flow.cluster.wire import decode_failure

    out = []
    for r in records:
        for d in r.get("dead_letters", ()):
            d = dict(d, pickle=base64.b64decode(d["pickle"]) if d.get("pickle") else None)
            out.append(decode_failure(d, f"an earlier attempt of the checkpoint at {ckpt.storage}"))
    out.sort(key=lambda f: f.input_index)
    return out


def done_ranges(first: int, count: int, not_done: set[int], batch: Any) -> list[tuple[int, int, int]]:
    """The runs of consecutive done inputs of a batch, with the sum of their root row ids."""
    def run(a: int, b: int) -> tuple[int, int, int]:
        return first + a, first + b, int(batch.row_id_sum(0, a, b)) & MASK64

    bounds = sorted(i - first for i in not_done if first <= i < first + count)
    out, start = [], 0
    for k in bounds:  # (the few failed inputs split the batch's range)
        if k > start:
            out.append(run(start, k))
        start = k + 1
    if start < count:
        out.append(run(start, count))
    return out


def _rows_table(out: Any, names: list[str]) -> pa.Table:
    """A batch output's rows as stored: its fields, ``_input_index`` and ``_row_id``."""
    arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in out.columns]
    arrays += [pa.array(np.asarray(out.input_index, dtype=np.int64)),
               pa.array(np.asarray(out.row_ids, dtype=np.uint64), type=pa.uint64())]
    return pa.Table.from_arrays(arrays, names=[*names, INDEX, ROW_ID])


def commit_rows(ckpt: Checkpoint, out: Any, names: list[str]) -> None:
    """Commits a flow's batch output: its done inputs and their rows (with a retry policy, an
    input's rows once its retries are back: ``checkpoint/retries.py``)."""
    first, count = out.first_input, out.num_inputs
    # A dead-lettered row is handled (its flow's policy recorded it): its input is done.
    not_done = {f.input_index for f in out.failures if not f.dead_lettered}
    retries, later = ckpt.retries, []
    if retries is not None:
        waiting, later = retries.update(out.batch, not_done)
        not_done |= waiting
    # (an input whose retry came back before its first batch is done by ``later``, not by its range)
    done = (done_ranges(first, count, not_done | {d[0] for d in later}, out.batch) if not out.tag else []) + later
    table = None
    if out.columns and len(out.row_positions):
        index = np.asarray(out.input_index, dtype=np.int64)
        table = _rows_table(out, names)
        if retries is not None and (retries.pending or later):
            table = _retried_rows(retries, table, out, not_done, {d[0] for d in later})
        elif not_done:
            table = table.filter(pa.array(~np.isin(index, np.fromiter(not_done, dtype=np.int64))))
    elif retries is not None and later:
        table = _retried_rows(retries, None, out, not_done, {d[0] for d in later})
    dead = [dead_letter_record(f) for f in out.failures if f.dead_lettered]
    ckpt.add((first, first + count), done, results=table, dead_letters=dead)


_ORDER = "_order"


class MorselBatch:
    """A cluster's morsel as ``commit_batch`` sees a batch: its inputs, their root row ids (summed
    by the client from the inputs it sent), and any retry tag (its retries came back in it)."""

    tag = None

    def __init__(self, first_input: int, num_inputs: int, root_ids: Any) -> None:
        self.first_input, self.num_inputs, self.ids = first_input, num_inputs, root_ids

    def num_rows(self, level: int) -> int:
        return self.num_inputs

    def row_id_sum(self, level: int, begin: int, end: int) -> int:
        return int(self.ids[begin:end].sum(dtype="uint64"))


def commit_morsel_rows(ckpt: Checkpoint, done: Any, outs: list[Any], names: list[str]) -> None:
    """Commits a cluster morsel of a flow's rows (``cluster.execute.MorselDone``; ``outs``: its
    batches' outputs, retries included): its inputs without a failure are done, their rows stored
    in input order (a retried input's rows in a fresh run's order)."""
    first, n = done.first_input, done.num_inputs
    not_done = {f.input_index for o in outs for f in o.failures if not f.dead_lettered}
    ranges = done_ranges(first, n, not_done, MorselBatch(first, n, done.root_ids()))
    parts = []
    keys: list[tuple[int, ...]] = []
    for o in outs:
        if not len(o.input_index) or not o.columns:
            continue
        parts.append(_rows_table(o, names))
        keys += o.order_keys()
    table = None
    if parts:
        table = pa.concat_tables(parts)
        index = table.column(INDEX).to_numpy()
        if any(o.tag for o in outs):  # retried rows came later: back in their places
            order = sorted(range(len(keys)), key=lambda k: (int(index[k]), keys[k]))
            table = table.take(pa.array(order, type=pa.int64()))
            index = table.column(INDEX).to_numpy()
        if not_done:
            table = table.filter(pa.array(~np.isin(index, np.fromiter(not_done, dtype=np.int64))))
    dead = [dead_letter_record(f) for o in outs for f in o.failures if f.dead_lettered]
    ckpt.add((first, first + n), ranges, results=table, dead_letters=dead)


def _retried_rows(retries: Any, table: pa.Table | None, out: Any, not_done: set[int],
                  completed: set[int]) -> pa.Table | None:
    """The rows to store now: those of done inputs, plus the held rows of inputs whose retries just
    came back, in the order a fresh run gives them (their position under the input). Rows of
    inputs still waiting for a retry are held."""
    if table is not None:
        keys = out.order_keys()
        order = pa.array([list(k) for k in keys], type=pa.list_(pa.int64()))
        table = table.append_column(_ORDER, order)
        index = table.column(INDEX).to_numpy()
        for i in {int(x) for x in index} & (set(retries.count) | completed):
            retries.held.setdefault(i, []).append(table.filter(pa.array(index == i)))
        held = not_done | completed | set(retries.count)
        stored = table.filter(pa.array(~np.isin(index, np.fromiter(held, dtype=np.int64))))
        parts = [stored]
    else:
        parts = []
    for i in sorted(completed):
        held = retries.held.pop(i, [])
        if held:
            rows = pa.concat_tables(held)
            keys = rows.column(_ORDER).to_pylist()
            parts.append(rows.take(pa.array(sorted(range(len(keys)), key=keys.__getitem__), type=pa.int64())))
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return None
    return pa.concat_tables(parts).drop_columns([_ORDER])


class StoredRows:
    """Rows an earlier attempt committed, read back in input order: records are loaded one at a
    time, when the cursor reaches their first input (so a resumed ``stream`` holds about one
    batch of them at a time)."""

    def __init__(self, ckpt: Checkpoint, records: list[dict[str, Any]], names: list[str], types: list[Any],
                 lineage: bool = False) -> None:
        self.ckpt = ckpt
        self.pending = sorted((r for r in records if r["results"]), key=lambda r: r["span"][0])
        self.names, self.types, self.lineage = names, types, lineage
        self.heap: list[tuple[int, int, list[dict[str, Any]]]] = []
        self._n = 0

    def _load(self, record: dict[str, Any]) -> None:
        from daft_flow import _core
        from daft_flow.convert import arrow_to_values

        data = self.ckpt.storage.read(record["results"])
        if data is None:
            from daft_flow.checkpoint.manifest import CheckpointError

            raise CheckpointError(f"the checkpoint at {self.ckpt.storage} lost its results file "
                                  f"{self.ckpt.storage.url(record['results'])}")
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        values = [arrow_to_values(table.column(n).combine_chunks(), t) for n, t in zip(self.names, self.types)]
        rows = _core.rows(self.names, values, table.num_rows) if values else [{} for _ in range(table.num_rows)]
        by_input: dict[int, list[dict[str, Any]]] = {}
        for i, rid, row in zip(table.column(INDEX).to_pylist(), table.column(ROW_ID).to_pylist(), rows):
            if self.lineage:
                row[INDEX], row[ROW_ID] = i, f"{rid:016x}"
            by_input.setdefault(i, []).append(row)
        for i, group in by_input.items():
            heapq.heappush(self.heap, (i, self._n, group))
            self._n += 1

    def before(self, limit: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(input, its rows) of stored inputs below ``limit``, in input order."""
        while True:
            while self.pending and self.pending[0]["span"][0] < limit and (
                    not self.heap or self.pending[0]["span"][0] <= self.heap[0][0]):
                self._load(self.pending.pop(0))
            if self.heap and self.heap[0][0] < limit:
                i, _, group = heapq.heappop(self.heap)
                yield i, group
            elif self.pending and self.pending[0]["span"][0] < limit:
                self._load(self.pending.pop(0))
            else:
                return


def stored_table(ckpt: Checkpoint, records: list[dict[str, Any]], traced: Any) -> pa.Table | None:
    """Every row an earlier attempt committed, as one table with ``_input_index`` and ``_row_id``
    (hex, as ``collect_arrow(lineage=True)`` gives it)."""
    tables = []
    for r in records:
        if r["results"]:
            data = ckpt.storage.read(r["results"])
            if data is None:
                from daft_flow.checkpoint.manifest import CheckpointError

                raise CheckpointError(f"the checkpoint at {ckpt.storage} lost its results file "
                                      f"{ckpt.storage.url(r['results'])}")
            t = pa.ipc.open_file(pa.py_buffer(data)).read_all()
            hexed = pa.array([f"{x:016x}" for x in t.column(ROW_ID).to_pylist()], type=pa.string())
            tables.append(t.set_column(t.schema.get_field_index(ROW_ID), ROW_ID, hexed))
    return pa.concat_tables(tables) if tables else None
