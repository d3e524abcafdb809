"""Reference implementations of the kernels in numpy and torch: what the Triton kernels are tested
against, and what runs where Triton or a GPU is absent. Same contracts as :mod:`daft_flow.kernels`."""
from __future__ import annotations

from typing import Any

import numpy as np

# ε of sentence-transformers' pooling (clamp of the token count) and of torch.nn.functional.normalize.
COUNT_EPS = 1e-9
NORM_EPS = 1e-12


def packed_width(lengths_max: int, max_len: int, multiple_of: int) -> int:
    """Columns of a packed batch: the longest row, capped at max_len, rounded up to multiple_of
    (without passing max_len)."""
    width = min(int(lengths_max), max_len)
    if multiple_of > 1 and width % multiple_of:
        width = min(max_len, width + multiple_of - width % multiple_of)
    return width


def pack_tokens_numpy(offsets: np.ndarray, values: np.ndarray, max_len: int, pad_id: int, end_id: int | None,
                      multiple_of: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.diff(offsets)
    n = lengths.shape[0]
    if width is None:
        width = packed_width(lengths.max() if n else 0, max_len, multiple_of)
    cols = np.arange(width, dtype=np.int64)[None, :]
    valid = cols < np.minimum(lengths, width)[:, None]
    ids = np.full((n, width), pad_id, dtype=np.int32)
    ids[valid] = values[(offsets[:-1, None] + cols)[valid]]
    if end_id is not None and width:
        ids[lengths > width, width - 1] = end_id
    return ids, valid.astype(np.int32)


def pack_tokens_torch(offsets: Any, values: Any, max_len: int, pad_id: int, end_id: int | None,
                      multiple_of: int, width: int | None = None) -> tuple[Any, Any]:
    import torch

    offsets = offsets.to(torch.int64)
    lengths = offsets[1:] - offsets[:-1]
    n = lengths.shape[0]
    if width is None:
        width = packed_width(int(lengths.max()) if n else 0, max_len, multiple_of)
    cols = torch.arange(width, dtype=torch.int64, device=values.device)[None, :]
    valid = cols < torch.clamp(lengths, max=width)[:, None]
    ids = torch.full((n, width), pad_id, dtype=torch.int32, device=values.device)
    ids[valid] = values[(offsets[:-1, None] + cols)[valid]].to(torch.int32)
    if end_id is not None and width:
        ids[lengths > width, width - 1] = end_id
    return ids, valid.to(torch.int32)


def mean_pool_l2_numpy(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h = hidden.astype(np.float32, copy=False)
    m = mask.astype(np.float32)[:, :, None]
    summed = (h * m).sum(axis=1)
    mean = summed / np.maximum(m.sum(axis=1), COUNT_EPS)
    norm = np.sqrt((mean * mean).sum(axis=1, keepdims=True))
    return (mean / np.maximum(norm, NORM_EPS)).astype(np.float32, copy=False)


def mean_pool_l2_torch(hidden: Any, mask: Any) -> Any:
    import torch

    h = hidden.to(torch.float32)
    m = mask.to(torch.float32).unsqueeze(-1)
    mean = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=COUNT_EPS)
    return torch.nn.functional.normalize(mean, p=2.0, dim=1, eps=NORM_EPS)
