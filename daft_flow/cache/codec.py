"""How a row's result is stored in a cache: compact bytes per type, never a pickle where a typed
encoding exists.

==============================  ======================================================
type                            stored bytes
==============================  ======================================================
str, JSON (its text), HTML      the UTF-8 text
bytes, Image, PDF, Audio, ...   ``01`` + the bytes (``00`` for a null)
int / float                     8 bytes, little-endian int64 / float64
bool                            ``01`` / ``00``
Embedding                       the float32 values, little-endian
untyped (``any``)               the value's pickle, as the runtime already holds it
lists, File and other nested    ``01`` + one Arrow IPC record batch message of the row
==============================  ======================================================

A null value (a function that returned None) is ``NULL``: three bytes that are not UTF-8, not a
pickle, and no multiple of 4 or 8 bytes long, so they never equal a value of these types.
Encoding and decoding work on whole Arrow columns, so a batch of hits becomes its column with a
few C-level passes (no per-value Python objects besides the bytes themselves).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from daft_flow.types import DataType

NULL = b"\xff\xfe\xfd"
_TEXT = ("str", "JSON", "HTML")
_BINARY = ("bytes", "Image", "Video", "Audio", "PDF")
_FIXED = {"int": "<i8", "float": "<f8"}
VERSION = 1  # part of every key: a change of these encodings must not read old entries


# Arrays are built from buffers, not with pa.array(): its first call imports pandas (to check
# whether the values are a DataFrame), which made the first cached run of a process 0.5-0.8 s slower.
def _validity(valid: np.ndarray) -> "pa.Buffer | None":
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _fixed_array(data: np.ndarray, target: pa.DataType, valid: "np.ndarray | None" = None) -> pa.Array:
    nulls = 0 if valid is None else int(len(valid) - valid.sum())
    bitmap = None if valid is None else _validity(valid)
    return pa.Array.from_buffers(target, len(data), [bitmap, pa.py_buffer(np.ascontiguousarray(data))], null_count=nulls)


def _large_binary(values: "list[bytes | None]") -> pa.Array:
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(v) if v is not None else 0 for v in values), dtype=np.int64, count=n), out=offsets[1:])
    data = b"".join(v for v in values if v is not None)
    return pa.Array.from_buffers(pa.large_binary(), n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=int(n - valid.sum()))


def _rows(array: Any, rows: "list[int] | None") -> pa.Array:
    if not isinstance(array, pa.Array):  # a native column (Arrow C data interface)
        array = pa.array(array)
    if rows is not None:
        return array.take(_fixed_array(np.asarray(rows, dtype=np.int64), pa.int64()))
    return pa.concat_arrays([array]) if array.offset else array


def encode_column(array: pa.Array, dtype: DataType, rows: "list[int] | None" = None) -> list[bytes]:
    """The stored bytes of ``array[rows]`` (all rows when ``rows`` is None)."""
    sub = _rows(array, rows)
    k = dtype.kind
    if k in _TEXT or k == "any":
        values = sub.cast(pa.large_binary()).to_pylist()
        return [NULL if v is None else v for v in values] if sub.null_count else values
    if k in _BINARY:
        return [b"\x00" if v is None else b"\x01" + v for v in sub.cast(pa.large_binary()).to_pylist()]
    if k in _FIXED:
        buf = np.asarray(sub.fill_null(0)).astype(_FIXED[k]).tobytes()
        valid = np.asarray(sub.is_valid())
        return [buf[i * 8:(i + 1) * 8] if valid[i] else NULL for i in range(len(sub))]
    if k == "bool":
        return [NULL if v is None else (b"\x01" if v else b"\x00") for v in sub.to_pylist()]
    if k == "Embedding" and pa.types.is_fixed_size_list(sub.type):
        dim = sub.type.list_size
        flat = np.asarray(sub.values.cast(pa.float32()).fill_null(0.0), dtype="<f4")
        flat = flat[sub.offset * dim:(sub.offset + len(sub)) * dim].reshape(len(sub), dim)
        valid = np.asarray(sub.is_valid())
        return [flat[i].tobytes() if valid[i] else NULL for i in range(len(sub))]
    if k == "Embedding":
        return [NULL if v is None else np.asarray(v, dtype="<f4").tobytes() for v in sub.to_pylist()]
    schema = pa.schema([pa.field("v", sub.type)])
    out = []
    for i in range(len(sub)):
        if not sub[i].is_valid:
            out.append(b"\x00")
        else:
            batch = pa.RecordBatch.from_arrays([sub.slice(i, 1)], schema=schema)
            out.append(b"\x01" + batch.serialize().to_pybytes())
    return out


def decode_column(values: list["bytes | None"], dtype: DataType) -> pa.Array:
    """The column of ``values`` (stored bytes, or None for a null) as ``dtype``'s Arrow type."""
    k = dtype.kind
    target = dtype.to_arrow()
    if k in _TEXT or k == "any":
        cleaned = [None if v is None or v == NULL else v for v in values]
        binary = _large_binary(cleaned)
        return binary if k == "any" else binary.cast(target)  # the cast checks UTF-8
    if k in _BINARY:
        return _large_binary([v[1:] if v is not None and v[:1] == b"\x01" else None for v in values]).cast(target)
    if k in _FIXED:
        zero = bytes(8)
        valid = np.fromiter((v is not None and len(v) == 8 for v in values), dtype=bool, count=len(values))
        data = np.frombuffer(b"".join(v if ok else zero for v, ok in zip(values, valid)), dtype=_FIXED[k])
        return _fixed_array(data, target, valid)
    if k == "bool":
        return pa.array([None if v is None or v == NULL else v == b"\x01" for v in values], type=target)
    if k == "Embedding":
        valid = np.fromiter((v is not None and v != NULL for v in values), dtype=bool, count=len(values))
        if pa.types.is_fixed_size_list(target):
            dim = target.list_size
            zero = bytes(4 * dim)
            parts = [v if ok else zero for v, ok in zip(values, valid)]
            if any(len(p) != 4 * dim for p in parts):
                raise ValueError(f"cached embedding does not have {dim} values")
            flat = pa.array(np.frombuffer(b"".join(parts), dtype="<f4"), type=pa.float32())
            return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid) if not valid.all() else None)
        lists = [np.frombuffer(v, dtype="<f4").tolist() if ok else None for v, ok in zip(values, valid)]  # type: ignore[arg-type]
        return pa.array(lists, type=target)
    schema = pa.schema([pa.field("v", target)])
    parts = []
    for v in values:
        if v is None or v[:1] != b"\x01":
            parts.append(pa.nulls(1, type=target))
        else:
            parts.append(pa.ipc.read_record_batch(pa.py_buffer(v[1:]), schema).column(0))
    return pa.concat_arrays(parts) if parts else pa.array([], type=target)


def encode_value(value: Any, dtype: DataType) -> bytes | None:
    """The stored bytes of one Python value of ``dtype`` (None if it is not of that type: such a
    result fails its row and is never stored)."""
    from daft_flow.convert import values_to_arrow

    array, problems = values_to_arrow([value], dtype)
    if problems:
        return None
    return encode_column(array, dtype)[0]
