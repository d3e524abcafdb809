"""The Triton kernels. Imported only when Triton is installed and a kernel runs on a CUDA tensor, or
on a CPU tensor under Triton's interpreter (``TRITON_INTERPRET=1`` set before this module is first
imported: Triton decides between compiling and interpreting when a kernel is defined)."""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from daft_flow.kernels.reference import COUNT_EPS, NORM_EPS, packed_width

INTERPRETED = bool(triton.knobs.runtime.interpret)


@triton.jit
def _pack_tokens_kernel(offsets_ptr, values_ptr, ids_ptr, mask_ptr, width, pad_id, end_id,
                        HAS_END: tl.constexpr, BLOCK: tl.constexpr):
    # One program per (row, block of columns): a row's tokens are contiguous in `values`, so each
    # program does one coalesced load and two coalesced stores.
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    length = tl.load(offsets_ptr + row + 1).to(tl.int64) - start
    inside = cols < width
    valid = inside & (cols < length)
    tok = tl.load(values_ptr + start + cols, mask=valid, other=pad_id).to(tl.int32)
    if HAS_END:
        # A truncated row keeps its end token ([SEP]) in the last column.
        tok = tl.where((cols == width - 1) & (length > width), end_id, tok)
    out = row.to(tl.int64) * width + cols
    tl.store(ids_ptr + out, tok, mask=inside)
    tl.store(mask_ptr + out, valid.to(tl.int32), mask=inside)


@triton.jit
def _mean_pool_l2_kernel(hidden_ptr, mask_ptr, out_ptr, seq_len, hidden, stride_hb, stride_hs, stride_mb,
                         count_eps, norm_eps, BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr):
    # One program per row: the whole hidden vector stays in registers, so the masked sum, the mean
    # and the L2 normalisation are one pass over the hidden states with one store of the result.
    row = tl.program_id(0).to(tl.int64)
    hcols = tl.arange(0, BLOCK_H)
    hin = hcols < hidden
    acc = tl.zeros((BLOCK_H,), dtype=tl.float32)
    count = tl.zeros((BLOCK_S,), dtype=tl.float32)
    for s0 in range(0, seq_len, BLOCK_S):
        srows = s0 + tl.arange(0, BLOCK_S)
        sin = srows < seq_len
        m = tl.load(mask_ptr + row * stride_mb + srows, mask=sin, other=0).to(tl.float32)
        x = tl.load(hidden_ptr + row * stride_hb + srows[:, None] * stride_hs + hcols[None, :],
                    mask=sin[:, None] & hin[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(x * m[:, None], axis=0)
        count += m
    mean = acc / tl.maximum(tl.sum(count, axis=0), count_eps)
    norm = tl.sqrt(tl.sum(mean * mean, axis=0))
    tl.store(out_ptr + row * hidden + hcols, mean / tl.maximum(norm, norm_eps), mask=hin)


def pack_tokens(offsets: Any, values: Any, max_len: int, pad_id: int, end_id: int | None,
                multiple_of: int, width: int | None = None) -> tuple[Any, Any]:
    import torch

    n = offsets.shape[0] - 1
    if width is None:
        lengths_max = int((offsets[1:] - offsets[:-1]).max()) if n else 0  # a device sync: sizes the output
        width = packed_width(lengths_max, max_len, multiple_of)
    ids = torch.empty((n, width), dtype=torch.int32, device=values.device)
    mask = torch.empty((n, width), dtype=torch.int32, device=values.device)
    if n and width:
        block = min(1024, triton.next_power_of_2(width))
        _pack_tokens_kernel[(n, triton.cdiv(width, block))](
            offsets, values, ids, mask, width, pad_id, 0 if end_id is None else end_id,
            HAS_END=end_id is not None, BLOCK=block)
    return ids, mask


def mean_pool_l2(hidden: Any, mask: Any) -> Any:
    import torch

    if hidden.stride(-1) != 1:
        hidden = hidden.contiguous()
    if mask.stride(-1) != 1:
        mask = mask.contiguous()
    b, s, h = hidden.shape
    out = torch.empty((b, h), dtype=torch.float32, device=hidden.device)
    if b:
        block_h = triton.next_power_of_2(h)
        # Keep a (BLOCK_S x BLOCK_H) tile around 8K elements: registers on a GPU, speed in the interpreter.
        block_s = max(1, min(triton.next_power_of_2(max(s, 1)), 8192 // block_h))
        _mean_pool_l2_kernel[(b,)](hidden, mask, out, s, h, hidden.stride(0), hidden.stride(1), mask.stride(0),
                                   COUNT_EPS, NORM_EPS, BLOCK_S=block_s, BLOCK_H=block_h)
    return out
