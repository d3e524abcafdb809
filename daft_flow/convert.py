"""Conversions between Python values and the canonical Arrow layout of each daft_flow type."""
from __future__ import annotations

import json
import pickle
from typing import Any

import pyarrow as pa

from daft_flow import _core
from daft_flow.user_errors import add_note, describe
from daft_flow.files import File
from daft_flow.types import DataType

Failures = list[tuple[int, str]]


class UnreadableInput:
    """Stands for an input value that could not be made into a Python value (invalid UTF-8 in an
    Arrow string column, say); its row fails with ``reason``, the other rows go on."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"UnreadableInput({self.reason!r})"


def _needs_element_conversion(t: DataType) -> bool:
    return t.kind in ("JSON", "any", "File") or (t.is_list and t.element is not None
                                                   and _needs_element_conversion(t.element))


def _to_storage(value: Any, t: DataType) -> Any:
    """A checked value -> what pyarrow stores for type ``t``."""
    if value is None:
        return None
    k = t.kind
    if k == "JSON":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if k == "any":
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            import cloudpickle

            return cloudpickle.dumps(value)
    if k == "File":
        return {"url": value.url if isinstance(value, File) else value}
    if k == "Embedding":
        return [float(x) for x in value]
    if k == "list":
        assert t.element is not None
        if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
            value = value.tolist()  # a numpy array
        return [_to_storage(v, t.element) for v in value]
    if k in ("bytes", "Image", "Video", "Audio", "PDF") and not isinstance(value, bytes):
        return bytes(value)
    if k == "int" and type(value) is not int:
        return int(value)  # a numpy integer
    if k == "float" and type(value) is not float:
        return float(value)
    if k == "bool" and type(value) is not bool:
        return bool(value)
    return value


def _from_storage(value: Any, t: DataType) -> Any:
    if value is None:
        return None
    k = t.kind
    if k == "JSON":
        return json.loads(value)
    if k == "any":
        return pickle.loads(value)
    if k == "File":
        return File(value["url"])
    if k == "list" and t.element is not None and _needs_element_conversion(t.element):
        return [_from_storage(v, t.element) for v in value]
    return value


def values_to_arrow(values: list[Any], t: DataType) -> tuple[Any, Failures]:
    """Converts Python values to an array of type ``t``; invalid values become null + a failure."""
    failures: Failures = []
    fmt = t.arrow_format
    if fmt:
        try:
            return _core.from_pylist(values, fmt), failures
        except (TypeError, OverflowError, UnicodeEncodeError):
            pass  # fall through to the checked path, which names each bad row
    clean: list[Any] = []
    for i, v in enumerate(values):
        # Anything a user's object raises here (a __len__, a __reduce__ that fails) fails its row only.
        try:
            problem = t.check_value(v)
        except Exception as e:
            problem = f"returned a {type(v).__name__} that cannot be checked as {t}: {describe(e)}"
        if problem is None:
            try:
                clean.append(_to_storage(v, t))
                continue
            except Exception as e:
                if t.kind == "any":
                    problem = (f"returned a {type(v).__name__} that cannot be pickled (results without a declared "
                               f"return type are stored pickled): {describe(e)}")
                else:
                    problem = f"returned a value that cannot be stored as {t}: {describe(e)}"
        failures.append((i, problem))
        clean.append(None)
    if fmt:
        try:
            return _core.from_pylist(clean, fmt), failures
        except (TypeError, OverflowError, UnicodeEncodeError):
            # Values that pass the type check but still cannot be stored (an int over 64 bits, a lone surrogate).
            out = []
            for i, v in enumerate(clean):
                try:
                    _core.from_pylist([v], fmt)
                    out.append(v)
                except (TypeError, OverflowError, UnicodeEncodeError) as err:
                    failures.append((i, f"returned a value that cannot be stored as {t}: {err}"))
                    out.append(None)
            return _core.from_pylist(out, fmt), failures
    if t.kind == "File":
        try:
            return _files_to_arrow(clean), failures
        except (TypeError, UnicodeEncodeError):
            pass  # a URL Arrow cannot hold as text: pyarrow says why below
    return pa.array(clean, type=t.to_arrow()), failures


def _files_to_arrow(clean: list[Any]) -> pa.Array:
    """Stored Files (``{"url": ...}`` or None) as a struct array, built from native columns: not with
    ``pa.array`` of a list or a numpy array, whose first call in a process imports pandas when it is
    installed (a fifth of a second, paid by the first read() of every process)."""
    urls = pa.array(_core.from_pylist([None if c is None else c["url"] for c in clean], "U"))
    nulls = [c is None for c in clean]
    return pa.StructArray.from_arrays([urls], fields=[pa.field("url", pa.large_string())],
                                      mask=pa.array(_core.from_pylist(nulls, "b")) if any(nulls) else None)


def arrow_to_values(array: pa.Array, t: DataType, unreadable: "list[tuple[int, BaseException]] | None" = None
                    ) -> list[Any]:
    """The Python values of an array of type ``t``.

    With ``unreadable`` given, a value that cannot be made (a pickled object whose class fails to
    unpickle) becomes None and ``(index, exception)`` is appended, so only its row fails; without
    it the exception propagates."""
    if t.arrow_format:
        return _core.to_pylist(array)
    values = array.to_pylist()
    if not _needs_element_conversion(t):
        return values
    if unreadable is None:
        return [_from_storage(v, t) for v in values]
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_from_storage(v, t))
        except Exception as e:
            add_note(e, f"[daft_flow] a stored {t} value could not be read back (unpickled/decoded)")
            unreadable.append((i, e))
            out.append(None)
    return out


def root_row_ids(array: Any, t: DataType, first_input: int = 0) -> Any:
    """Stable 64-bit ids for root inputs: a hash of each input value (its JSON/URL/pickle for others).
    A null input (None, or an input that failed conversion) hashes its position ``first_input + i``."""
    if t.arrow_format:
        return _core.hash_rows(array, first_input)
    arr = pa.array(array) if not isinstance(array, pa.Array) else array
    if t.kind in ("JSON", "any") or pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type):
        return _core.hash_rows(arr, first_input)
    texts = [None if v is None else json.dumps(v, sort_keys=True, default=str) for v in arr.to_pylist()]
    return _core.hash_rows(_core.from_pylist(texts, "U"), first_input)


def root_id_array(inputs: Any, t: DataType, first_input: int = 0) -> Any:
    """``root_row_ids`` of inputs given as Python values or as an Arrow array, as uint64 numpy."""
    import numpy as np

    if not isinstance(inputs, (pa.Array, pa.ChunkedArray)):
        inputs, _ = values_to_arrow(inputs, t)
    elif isinstance(inputs, pa.ChunkedArray):
        inputs = inputs.combine_chunks()
    return np.asarray(pa.array(root_row_ids(inputs, t, first_input)), dtype=np.uint64)
