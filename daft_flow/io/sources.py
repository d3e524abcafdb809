"""Inputs besides Python iterables: Arrow tables/batches/readers, daft DataFrames and globs.

Arrow inputs are read a record batch at a time (a RecordBatchReader is never loaded whole); the
column used is the one named like the flow's initial field, else the first.
"""
from __future__ import annotations

import glob as _glob
import itertools
from typing import Any, Iterable, Iterator

import pyarrow as pa


def _is_daft_frame(values: Any) -> bool:
    return type(values).__module__.startswith("daft") and hasattr(values, "to_arrow")


def _column_index(schema: pa.Schema, field: str) -> int:
    if len(schema) == 0:
        raise ValueError("the input table has no columns")
    names = schema.names
    return names.index(field) if field in names else 0


def python_values(array: pa.Array) -> list[Any]:
    """The values of an Arrow column. A string that is not valid UTF-8 becomes an
    ``UnreadableInput`` (its row fails, naming the row and field) instead of failing the call."""
    t = array.type
    is_string = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not is_string or _offsets_in_order(array):
        try:
            return array.to_pylist()
        except UnicodeDecodeError:
            pass
    if is_string:
        return _string_values_by_offsets(array)
    from daft_flow.convert import UnreadableInput

    values: list[Any] = []
    for i in range(len(array)):  # nested strings (list<string>, struct): value by value
        try:
            values.append(array[i].as_py())
        except UnicodeDecodeError as e:
            values.append(UnreadableInput(f"a string in it is not valid UTF-8 ({e.reason})"))
    return values


def _offsets(array: pa.Array) -> Any:
    import numpy as np

    width = np.int32 if pa.types.is_string(array.type) else np.int64
    buf = array.buffers()[1]
    if buf is None:
        return np.zeros(len(array) + 1, dtype=width)
    return np.frombuffer(buf, dtype=width)[array.offset:array.offset + len(array) + 1]


def _offsets_in_order(array: pa.Array) -> bool:
    import numpy as np

    offsets = _offsets(array)
    data = array.buffers()[2]
    return bool(len(offsets) == len(array) + 1 and (np.diff(offsets) >= 0).all()
                and (not len(offsets) or 0 <= offsets[0] and offsets[-1] <= (data.size if data is not None else 0)))


def _string_values_by_offsets(array: pa.Array) -> list[Any]:
    """A string column pyarrow cannot read whole (a value that is not UTF-8, or offsets out of
    order in a corrupt array): each value read on its own, a broken one an ``UnreadableInput``."""
    from daft_flow.convert import UnreadableInput

    offsets = _offsets(array).tolist()
    data = array.buffers()[2]
    raw = memoryview(data) if data is not None else memoryview(b"")
    nulls = array.is_null().to_pylist()  # (the validity bitmap only: a value's scalar would read bad offsets)
    values: list[Any] = []
    for i in range(len(array)):
        if nulls[i]:
            values.append(None)
            continue
        start, stop = offsets[i], offsets[i + 1]
        if not 0 <= start <= stop <= len(raw):
            values.append(UnreadableInput(f"its offsets are out of order ({start}..{stop}): a corrupt Arrow array"))
            continue
        try:
            values.append(bytes(raw[start:stop]).decode("utf-8"))
        except UnicodeDecodeError as e:
            values.append(UnreadableInput(f"the string is not valid UTF-8 ({e.reason} at byte {e.start})"))
    return values


def _batches_values(batches: Iterable[pa.RecordBatch], field: str) -> Iterator[Any]:
    index = None
    for batch in batches:
        if index is None:
            index = _column_index(batch.schema, field)
        yield from python_values(batch.column(index))


class ArrowColumn:
    """An Arrow input whose column is handed to the runtime as Arrow slices (zero-copy), never as
    Python values: ``chunks`` yields arrays of the root field's canonical Arrow type."""

    def __init__(self, chunks: Iterator[pa.Array]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[Any]:
        for chunk in self.chunks:
            yield from chunk.to_pylist()


def arrow_column(values: Any, field: str, arrow_type: pa.DataType) -> "ArrowColumn | None":
    """The input as Arrow chunks of ``arrow_type`` when it is an Arrow table/batch/reader/array
    whose column has that type (or casts to it without loss: string -> large_string), else None."""
    if _is_daft_frame(values):
        return None
    if isinstance(values, pa.Table):
        batches: Iterable[pa.RecordBatch] = values.to_batches()
    elif isinstance(values, pa.RecordBatch):
        batches = [values]
    elif isinstance(values, pa.RecordBatchReader):
        batches = values
    elif isinstance(values, pa.ChunkedArray):
        return _column_chunks(values.chunks, arrow_type)
    elif isinstance(values, pa.Array):
        return _column_chunks([values], arrow_type)
    else:
        return None
    schema = values.schema
    column = _column_index(schema, field)
    return _column_chunks((b.column(column) for b in batches), arrow_type, schema.field(column).type)


_CASTABLE = {pa.large_string(): (pa.string(),), pa.large_binary(): (pa.binary(),)}


def _column_chunks(chunks: Iterable[pa.Array], arrow_type: pa.DataType,
                   column_type: pa.DataType | None = None) -> "ArrowColumn | None":
    chunks = iter(chunks)
    if column_type is None:
        first = next(chunks, None)
        if first is None:
            return ArrowColumn(iter(()))
        column_type = first.type
        chunks = itertools.chain([first], chunks)
    if column_type == arrow_type:
        return ArrowColumn(chunks)
    if column_type in _CASTABLE.get(arrow_type, ()):
        return ArrowColumn(c.cast(arrow_type) for c in chunks)
    return None


def arrow_inputs(values: Any, field: str) -> "Iterable[Any] | None":
    """Python values for an Arrow-like or daft input, or None if ``values`` is neither."""
    if _is_daft_frame(values):
        if hasattr(values, "to_arrow_iter"):
            batches = (b for t in values.to_arrow_iter() for b in (t.to_batches() if isinstance(t, pa.Table) else [t]))
            return _batches_values(batches, field)
        values = values.to_arrow()
    if isinstance(values, pa.Table):
        return _batches_values(values.to_batches(), field)
    if isinstance(values, pa.RecordBatch):
        return _batches_values([values], field)
    if isinstance(values, pa.RecordBatchReader):
        return _batches_values(values, field)
    if isinstance(values, pa.ChunkedArray):
        return itertools.chain.from_iterable(python_values(c) for c in values.chunks)
    if isinstance(values, pa.Array):
        return python_values(values)
    # A data frame (pandas, polars) iterates its column names: read it as the table it is.
    if hasattr(values, "__arrow_c_stream__") and (not hasattr(values, "__iter__") or hasattr(values, "columns")):
        return _batches_values(pa.RecordBatchReader.from_stream(values), field)
    return None


def from_glob(pattern: str) -> list[str]:
    """The paths or URLs matching ``pattern`` (``"docs/*.md"``, ``"s3://bucket/docs/**/*.md"``),
    sorted; URLs keep their scheme so they can be opened with ``open_file()``."""
    from daft_flow.io.locations import (_LOCAL, _default_timeout, _filesystem, _with_url, call_with_deadline,
                                        check_protocol, local_path, split_url)
    from daft_flow.secrets import redact_url

    protocol, url = split_url(pattern)
    if protocol in _LOCAL:
        found = sorted(_glob.glob(local_path(url), recursive=True))
        return [f"file://{p}" for p in found] if url.startswith("file://") else found
    check_protocol(protocol, url)
    timeout = _default_timeout()  # listing a bucket that never answers must not hang the caller
    try:
        matches = call_with_deadline(lambda: _filesystem(protocol, url, timeout=timeout, shared=False).glob(url),
                                     timeout.total, f"from_glob(): {redact_url(url)}: no listing within "
                                     f"{timeout.total:g} s; raise it with dflow.set_options(read_timeout=...)")
    except Exception as e:
        err = _with_url(e, url, "from_glob()", timeout)
        if err is e:
            raise
        raise err from None
    return sorted(m if "://" in m else f"{protocol}://{m}" for m in matches)
