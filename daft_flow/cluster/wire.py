"""What travels between a client and the process that runs a morsel (a ``dflow-worker`` or a Ray
actor): the morsel's inputs as one Arrow record batch, and back, per runtime batch, the surviving
rows of every output of the plan with their lineage, plus the failed rows with their errors, and
at the end the morsel's usage and run report.

Inputs of a type with a native Arrow layout (str, int, bytes, ...) travel as that column, built
by the same conversion the local source uses; any other input (or a morsel holding a value of the
wrong type) travels as one pickle per value, so the receiving source sees the very values the
caller passed and names bad ones exactly as a local run would.

Results: one stream schema for all outputs of a plan (a Flow has one output; sink flows have one
per sink). Output ``i``'s columns are named ``"{i}:{field}"``; a batch of output ``i`` carries
nulls in the other outputs' columns, and ``__input_index`` / ``__row_id`` give each row its
global input index and its row id. Each batch's app metadata (a pickle) names its output, its
inputs and its failures; a final metadata-only message carries the morsel's usage and report.
"""
from __future__ import annotations

import dataclasses
import pickle
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from daft_flow import _core
from daft_flow.errors import FlowError, RowFailure
from daft_flow.types import DataType

INPUT_COLUMN = "input"
_ENCODING = b"dflow.encoding"
INPUT_INDEX = "__input_index"
ROW_ID = "__row_id"


class RemoteError(FlowError):
    """An exception raised on a worker whose class cannot be rebuilt here (it is not importable in
    this process, or it does not pickle): its type name, message and traceback as text."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteError, (self.remote_type, str(self).partition(": ")[2], self.remote_traceback))


# -- inputs ------------------------------------------------------------------------------------------------

def encode_inputs(values: list[Any], dtype: DataType) -> pa.RecordBatch:
    """A morsel's inputs as one record batch (column ``input``)."""
    fmt = dtype.arrow_format
    if fmt:
        try:
            column = pa.array(_core.from_pylist(values, fmt))
            return _batch(column, b"arrow")
        except (TypeError, OverflowError, UnicodeEncodeError):
            pass  # a value of another type: it must reach the worker's source as it is, to fail there as locally
    return _batch(pa.array([_dumps(v) for v in values], type=pa.large_binary()), b"pickle")


def arrow_morsel(column: pa.Array) -> pa.RecordBatch:
    """A morsel of Arrow inputs already of the field's native type: sent as they are."""
    return _batch(column, b"arrow")


def _batch(column: pa.Array, encoding: bytes) -> pa.RecordBatch:
    schema = pa.schema([pa.field(INPUT_COLUMN, column.type)], metadata={_ENCODING: encoding})
    return pa.RecordBatch.from_arrays([column], schema=schema)


def _dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        return bytes(cloudpickle.dumps(value))


def decode_inputs(table: pa.Table | pa.RecordBatch) -> Any:
    """A morsel's inputs for ``run_batches``: its Arrow column, or the Python values that were
    pickled (the inverse of ``encode_inputs``)."""
    encoding = (table.schema.metadata or {}).get(_ENCODING)
    column = table.column(INPUT_COLUMN)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if encoding == b"arrow":  # the column the source would build: it goes to the runtime as it is
        return column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if encoding == b"pickle":
        return [pickle.loads(v) for chunk in chunks for v in chunk.to_pylist()]
    raise ValueError(f"not a morsel of inputs (encoding {encoding!r})")


# -- failures ----------------------------------------------------------------------------------------------

def _text(fn: Any, fallback: str) -> str:
    try:
        return str(fn())
    except Exception:  # an exception whose __str__ raises still travels
        return fallback


def encode_failure(f: RowFailure) -> dict[str, Any]:
    err = f.error
    kind = f"{type(err).__module__}.{type(err).__qualname__}"
    try:
        blob: bytes | None = _dumps(err)
    except Exception:
        blob = None
    return {"input_index": int(f.input_index), "row_id": f.row_id, "flow": f.flow, "op": f.op, "field": f.field,
            "type": kind, "message": _text(lambda: err, f"<{kind} whose str() failed>"),
            "traceback": _text(lambda: _traceback_text(err), ""), "pickle": blob,
            "attempts": int(f.attempts), "dead_lettered": bool(f.dead_lettered)}


def _traceback_text(err: BaseException) -> str:
    """The traceback as text, without the notes (they travel with the exception itself)."""
    tb = traceback.TracebackException.from_exception(err)
    tb.__notes__ = None
    return "".join(tb.format())


def decode_failure(d: dict[str, Any], where: str) -> RowFailure:
    err: BaseException | None = None
    if d.get("pickle"):
        try:
            err = pickle.loads(d["pickle"])
        except Exception:
            err = None
        if not isinstance(err, BaseException):
            err = None
    if err is None:
        err = RemoteError(d["type"], d["message"], d["traceback"])
    if d["traceback"]:
        err.add_note(f"[daft_flow] raised on {where}; its traceback there:\n{d['traceback'].rstrip()}")
    return RowFailure(d["input_index"], d["row_id"], d["flow"], d["op"], d["field"], err, d.get("attempts", 1),
                      d.get("dead_lettered", False))


# -- results -----------------------------------------------------------------------------------------------

def column_name(output: int, name: str) -> str:
    return f"{output}:{name}"


def results_schema(outputs: list[Any]) -> pa.Schema:
    """The stream schema for the first batch's outputs (one ``BatchOutput`` and reader per output)."""
    fields = []
    for i, (out, reader) in enumerate(outputs):
        fields += [pa.field(column_name(i, n), c.type) for n, c in zip(reader.names, out.columns)]
    return pa.schema(fields + [pa.field(INPUT_INDEX, pa.int64()), pa.field(ROW_ID, pa.uint64())])


def encode_output(schema: pa.Schema, i: int, out: Any, reader: Any) -> tuple[pa.RecordBatch, bytes]:
    """Output ``i`` of one runtime batch: its rows (other outputs' columns null) and its metadata."""
    n = len(out.row_positions)
    mine = {column_name(i, name): col for name, col in zip(reader.names, out.columns)}
    arrays = []
    for field in schema:
        if field.name == INPUT_INDEX:
            arrays.append(pa.array(np.asarray(out.input_index, dtype=np.int64)))
        elif field.name == ROW_ID:
            arrays.append(pa.array(np.asarray(out.row_ids, dtype=np.uint64)))
        elif field.name in mine:
            col = mine[field.name]
            arrays.append(col if col.type == field.type else col.cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    filtered = int(getattr(out, "filtered", 0))
    meta = {"output": i, "first_input": int(out.first_input), "num_inputs": int(out.num_inputs),
            "failures": [encode_failure(f) for f in out.failures], "filtered": filtered,
            "root_filtered": np.flatnonzero(out.root_filtered).tolist() if filtered else [],
            # Retry batches (failure policies) bring rows of earlier inputs: the client puts an
            # input's child rows back in order by these keys, as for a local run.
            "tag": int(getattr(out, "tag", 0)),
            "order_keys": out.order_keys() if getattr(reader, "retrying", False) and hasattr(out, "order_keys")
            else None}
    return pa.RecordBatch.from_arrays(arrays, schema=schema), pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass
class RemoteOutput:
    """One runtime batch's rows of one output, as a worker sent them: what ``BatchOutput`` gives a
    local run (columns, failures, lineage), so the same result code serves both."""

    first_input: int
    num_inputs: int
    columns: list[pa.Array]
    failures: list[RowFailure]
    input_index: np.ndarray
    row_ids: np.ndarray
    filtered: int = 0  # rows a filter() dropped
    dropped_inputs: tuple[int, ...] = ()  # positions (in this batch) of inputs a filter() dropped
    tag: int = 0  # a retry batch's number (failure policies): rows of earlier inputs, no new inputs
    keys: list[tuple[int, ...]] | None = None  # per row: its place under its input (policies that retry)

    def order_keys(self) -> list[tuple[int, ...]]:
        """Per row: its position under its input, as ``BatchOutput.order_keys``."""
        return self.keys if self.keys is not None else [()] * self.num_rows

    @property
    def row_positions(self) -> np.ndarray:
        return np.arange(len(self.input_index))

    @property
    def num_rows(self) -> int:
        return len(self.input_index)

    def column_slice(self, k: int, start: int, stop: int) -> pa.Array:
        return self.columns[k].slice(start, stop - start)

    def held_objects(self, k: int, start: int, stop: int) -> None:
        """No Python objects hold these values here (a worker read the inputs and ran the functions):
        rows decode every field."""
        return None

    def bytes_per_row(self) -> int:
        return int(sum(c.nbytes / len(c) for c in self.columns if len(c)))

    def exclude(self, rows: list[int]) -> None:
        """Drops rows whose values could not be read back here (their failures were added)."""
        if not rows:
            return
        keep = np.ones(self.num_rows, dtype=bool)
        keep[rows] = False
        mask = pa.array(keep)
        self.columns = [c.filter(mask) for c in self.columns]
        self.input_index, self.row_ids = self.input_index[keep], self.row_ids[keep]
        if self.keys is not None:
            self.keys = [k for k, kept in zip(self.keys, keep) if kept]
        self.failures.sort(key=lambda f: f.input_index)

    @property
    def root_filtered(self) -> np.ndarray:
        """Per input of the batch: whether a filter() dropped it."""
        mask = np.zeros(self.num_inputs, dtype=bool)
        mask[list(self.dropped_inputs)] = True
        return mask

    def truncate(self, rows: int) -> None:
        """Keeps the first ``rows`` rows (limit()), as ``BatchOutput.truncate`` does."""
        if rows >= len(self.input_index):
            return
        last_input = int(self.input_index[rows - 1]) if rows else self.first_input - 1
        self.columns = [c.slice(0, rows) for c in self.columns]
        self.input_index, self.row_ids = self.input_index[:rows], self.row_ids[:rows]
        if self.keys is not None:
            self.keys = self.keys[:rows]
        self.failures = [f for f in self.failures if f.input_index <= last_input]
        self.num_inputs = last_input - self.first_input + 1
        self.dropped_inputs = tuple(k for k in self.dropped_inputs if k < self.num_inputs)


def decode_output(batch: pa.RecordBatch, meta: dict[str, Any], names: list[list[str]], where: str) -> RemoteOutput:
    i = meta["output"]
    columns = [batch.column(column_name(i, n)) for n in names[i]]
    return RemoteOutput(meta["first_input"], meta["num_inputs"], columns,
                        [decode_failure(f, where) for f in meta["failures"]],
                        batch.column(INPUT_INDEX).to_numpy(), batch.column(ROW_ID).to_numpy(),
                        meta.get("filtered", 0), tuple(meta.get("root_filtered", ())), meta.get("tag", 0),
                        [tuple(k) for k in meta["order_keys"]] if meta.get("order_keys") is not None else None)


@dataclass
class MorselResult:
    """Everything a morsel produced: per runtime batch, one ``RemoteOutput`` per output of the plan
    (in order), and the morsel's usage (``UsageReport.as_dict()``)."""

    batches: list[list[RemoteOutput]]
    usage: dict[str, dict[str, Any]]
    report: dict[str, Any] | None = None  # the morsel's RunReport.to_dict() (None: settled on the client)
    # Its dead-letter records, (sink key, retry tag, records): the client writes them.
    dead_letters: list[Any] = dataclasses.field(default_factory=list)
