"""Kernels for the token and embedding steps around a model: packing Arrow token lists into a padded
batch, and masked mean pooling with L2 normalisation.

Each kernel takes numpy arrays or torch tensors and returns the same kind:

- torch CUDA tensors run the Triton kernel (when ``triton`` is installed; else the torch reference);
- torch CPU tensors run the Triton kernel under Triton's interpreter when ``TRITON_INTERPRET=1`` was
  set before the first kernel ran (how the kernels are tested on machines without a GPU), else
  the torch reference;
- numpy arrays run the numpy reference.

``backend=`` forces one of ``"triton"``, ``"torch"``, ``"numpy"``. Triton and torch are optional:
importing this package needs neither. The Triton sources are in ``_triton.py``; the references they
are tested against in ``reference.py``.
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

from daft_flow.kernels import reference

__all__ = ["pack_tokens", "mean_pool_l2", "token_buffers", "triton_available"]

_BACKENDS = ("triton", "torch", "numpy")


@functools.cache
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (it is needed for the Triton kernels)."""
    return importlib.util.find_spec("triton") is not None


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def _triton_module() -> Any:
    from daft_flow.kernels import _triton

    return _triton


def _choose(x: Any, backend: str | None) -> str:
    if backend is not None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if backend != "numpy" and not _is_torch(x):
            raise TypeError(f"backend={backend!r} needs torch tensors, got {type(x).__name__}")
        if backend == "triton" and not triton_available():
            raise ModuleNotFoundError("backend='triton' needs the package 'triton' (pip install \"daft-flow[gpu]\")")
        return backend
    if not _is_torch(x):
        return "numpy"
    if triton_available():
        if x.device.type == "cuda":
            return "triton"
        if x.device.type == "cpu" and _interpreting():
            return "triton"
    return "torch"


def _interpreting() -> bool:
    """Whether the Triton kernels are (or, once defined, will be) run by Triton's interpreter."""
    import os
    import sys

    loaded = sys.modules.get("daft_flow.kernels._triton")
    if loaded is not None:
        return bool(loaded.INTERPRETED)
    return os.environ.get("TRITON_INTERPRET") == "1"


def token_buffers(tokens: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, values)`` of an Arrow ``list<int32>`` / ``large_list<int32>`` array (or a chunked
    array of one), without copying the values. Null lists are an error (naming the first one)."""
    import pyarrow as pa

    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    if not isinstance(tokens, (pa.ListArray, pa.LargeListArray)):
        raise TypeError(f"token_buffers() needs an Arrow list<int32> or large_list<int32> array, got {tokens.type}")
    if not pa.types.is_integer(tokens.type.value_type):
        raise TypeError(f"token_buffers() needs integer token ids, got {tokens.type}")
    if tokens.null_count:
        first = tokens.is_null().to_pylist().index(True)
        raise ValueError(f"token_buffers(): row {first} is null (a list of token ids is needed in every row)")
    offsets = tokens.offsets.to_numpy(zero_copy_only=True)
    values = tokens.values.to_numpy(zero_copy_only=True)
    return offsets, values


def _check_pack_args(offsets: Any, values: Any, max_len: int, multiple_of: int) -> None:
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"pack_tokens(): max_len must be a positive int, got {max_len!r}")
    if not isinstance(multiple_of, int) or multiple_of < 1:
        raise ValueError(f"pack_tokens(): multiple_of must be a positive int, got {multiple_of!r}")
    if len(offsets.shape) != 1 or offsets.shape[0] < 1:
        raise ValueError(f"pack_tokens(): offsets must be 1-D with n + 1 entries, got shape {tuple(offsets.shape)}")
    if len(values.shape) != 1:
        raise ValueError(f"pack_tokens(): values must be 1-D, got shape {tuple(values.shape)}")
    for name, a in (("offsets", offsets), ("values", values)):
        floating = a.dtype.is_floating_point or a.dtype.is_complex if _is_torch(a) else np.asarray(a[:0]).dtype.kind not in "iu"
        if floating:
            raise TypeError(f"pack_tokens(): {name} must be an integer array, got {a.dtype}")
    if _is_torch(offsets) and offsets.device.type != "cpu":
        return  # checking device data would wait for the device; the caller's buffers are trusted
    o = offsets.numpy() if _is_torch(offsets) else np.asarray(offsets)
    steps = o[1:] < o[:-1]
    if o[0] < 0 or o[-1] > values.shape[0] or steps.any():
        where = f" (row {int(np.flatnonzero(steps)[0])} ends before it starts)" if steps.any() else ""
        raise ValueError(f"pack_tokens(): offsets must be non-decreasing within [0, {values.shape[0]}]{where}")


def pack_tokens(offsets: Any, values: Any, max_len: int, *, pad_id: int = 0, end_id: int | None = None,
                multiple_of: int = 1, width: int | None = None, backend: str | None = None) -> tuple[Any, Any]:
    """Token lists (Arrow ``list<int32>`` buffers: ``n + 1`` offsets into ``values``) to a padded
    batch ``ids [n, width]`` (int32) and an attention ``mask [n, width]`` (int32, 1 = token).

    The number of columns is the longest row, capped at ``max_len`` and rounded up to ``multiple_of``
    (``width=`` sets it instead, at most ``max_len``: on a device that saves waiting for the row
    lengths). Longer rows are truncated to their first columns; with ``end_id`` the last kept id of
    a truncated row is replaced by it (BERT keeps ``[SEP]`` at the end). Padding is ``pad_id``.
    Offsets on a device are trusted (checking them would wait for the device).
    """
    _check_pack_args(offsets, values, max_len, multiple_of)
    if width is not None:
        if not isinstance(width, int) or not 0 <= width <= max_len:
            raise ValueError(f"pack_tokens(): width must be an int in [0, max_len={max_len}], got {width!r}")
    chosen = _choose(values, backend)
    if chosen == "numpy":
        return reference.pack_tokens_numpy(np.asarray(offsets, dtype=np.int64), np.asarray(values), max_len,
                                           pad_id, end_id, multiple_of, width)
    if chosen == "torch":
        return reference.pack_tokens_torch(offsets, values, max_len, pad_id, end_id, multiple_of, width)
    return _triton_module().pack_tokens(offsets, values, max_len, pad_id, end_id, multiple_of, width)


def mean_pool_l2(hidden: Any, mask: Any, *, backend: str | None = None) -> Any:
    """Mean of ``hidden [n, seq, dim]`` over the positions where ``mask [n, seq]`` is non-zero, then
    L2-normalised: ``[n, dim]`` float32 (sentence-transformers' mean pooling + Normalize). A row
    without tokens gives a zero vector. Half-precision input is accumulated in float32."""
    if len(hidden.shape) != 3 or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mean_pool_l2(): hidden must be [n, seq, dim] and mask [n, seq], got "
                         f"{tuple(hidden.shape)} and {tuple(mask.shape)}")
    chosen = _choose(hidden, backend)
    if chosen == "numpy":
        return reference.mean_pool_l2_numpy(np.asarray(hidden), np.asarray(mask))
    if chosen == "torch":
        return reference.mean_pool_l2_torch(hidden, mask)
    return _triton_module().mean_pool_l2(hidden, mask)
