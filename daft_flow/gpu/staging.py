"""The GPU stage of a class function: Arrow columns to device tensors and results back, with copies
overlapping compute.

A batch is cut into chunks. Each chunk's columns are copied into one of two pinned staging buffers
(the one host copy: the DMA engine reads only page-locked memory), moved to the device on a copy
stream, computed on the instance's stream, and its result copied back on the copy stream; events
order the three, and the two buffers alternate, so chunk k+1 crosses the bus while chunk k computes.
Arrow buffers become host tensors through DLPack (no copy, no Python objects).
On CPU the same chunks run directly (no streams): that path is what runs and is tested without a GPU.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def arrow_to_tensor(array: Any, where: str) -> Any:
    """A host torch tensor over an Arrow column without copying: primitive numeric arrays -> ``[n]``,
    fixed-size lists of numbers (``dflow.Embedding``) -> ``[n, dim]``. Nulls are an error naming the
    first null row."""
    import pyarrow as pa
    import torch

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        first = array.is_null().to_pylist().index(True)
        raise ValueError(f"{where}: row {first} is null; a GPU stage needs a value in every row")
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        values = array.values.slice(array.offset * width, len(array) * width)
        if values.null_count:
            raise ValueError(f"{where}: a fixed-size list holds null elements")
        return torch.from_dlpack(values).view(len(array), width)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return torch.from_dlpack(array)
    if pa.types.is_boolean(array.type):
        return torch.from_numpy(array.to_numpy(zero_copy_only=False))  # bit-packed in Arrow: one unpacking copy
    raise TypeError(f"{where}: a GPU stage takes numeric columns or fixed-size lists of numbers, got {array.type}")


def tensor_to_arrow(tensor: Any, where: str) -> Any:
    """A host tensor ``[n]`` to a primitive Arrow array, ``[n, dim]`` to a fixed-size list array."""
    import numpy as np
    import pyarrow as pa

    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    flat = pa.array(np.ascontiguousarray(t.reshape(-1).numpy()))
    if t.dim() == 1:
        return flat
    if t.dim() == 2:
        return pa.FixedSizeListArray.from_arrays(flat, t.shape[1])
    raise ValueError(f"{where}: a GPU stage's result must be [n] or [n, dim], got shape {tuple(t.shape)}")


def chunk_ranges(n: int, chunk_rows: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + chunk_rows)) for s in range(0, n, max(1, chunk_rows))]


class DeviceStage:
    """Runs ``fn`` over a batch's tensors chunk by chunk, on ``device`` (a CUDA ordinal) with
    ``compute_stream`` as the instance's stream, or on CPU when ``device`` is None."""

    def __init__(self, device: int | None, compute_stream: Any = None, chunk_rows: int = 4096) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.device, self.compute_stream, self.chunk_rows = device, compute_stream, chunk_rows
        self._copy_stream: Any = None
        self._staging: list[list[Any]] = [[], []]  # per slot: pinned host buffers, one per input
        self._device_bufs: list[list[Any]] = [[], []]

    def run(self, inputs: Sequence[Any], fn: Callable[..., Any]) -> Any:
        """``fn(*chunk_tensors) -> tensor`` with the chunk's rows first; returns the results of all
        chunks concatenated, on the host."""
        import torch

        n = int(inputs[0].shape[0]) if inputs else 0
        if any(int(x.shape[0]) != n for x in inputs):
            raise ValueError("a GPU stage's inputs must have the same number of rows")
        chunks = chunk_ranges(n, self.chunk_rows)
        if not chunks:
            return torch.empty((0,))
        if self.device is None:
            outs = [self._checked(fn(*[x[s:e] for x in inputs]), e - s) for s, e in chunks]
            return torch.cat(outs) if len(outs) > 1 else outs[0]
        return self._run_cuda(inputs, fn, chunks)

    @staticmethod
    def _checked(out: Any, rows: int) -> Any:
        if int(out.shape[0]) != rows:
            raise ValueError(f"a GPU stage's function returned {int(out.shape[0])} rows for a chunk of {rows}")
        return out

    def _buffers(self, slot: int, inputs: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        import torch

        rows = self.chunk_rows
        staging, device_bufs = self._staging[slot], self._device_bufs[slot]
        wanted = [((rows, *x.shape[1:]), x.dtype) for x in inputs]
        if [(tuple(b.shape), b.dtype) for b in staging] != wanted:
            if staging and self._copy_stream is not None:
                self._copy_stream.synchronize()  # the old buffers may still be read by a copy
                torch.cuda.synchronize(self.device)
            staging[:] = [torch.empty(shape, dtype=dtype, pin_memory=True) for shape, dtype in wanted]
            device_bufs[:] = [torch.empty(shape, dtype=dtype, device=self.device) for shape, dtype in wanted]
        return staging, device_bufs

    def _run_cuda(self, inputs: Sequence[Any], fn: Callable[..., Any], chunks: list[tuple[int, int]]) -> Any:
        import torch

        compute = self.compute_stream or torch.cuda.current_stream(self.device)
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(device=self.device)
        copy = self._copy_stream
        h2d_done: list[Any] = [None, None]
        computed: list[Any] = [None, None]
        pending: list[tuple[Any, Any]] = []  # (pinned host result, its copy-back event) per chunk
        for k, (s, e) in enumerate(chunks):
            slot, rows = k % 2, e - s
            # This slot's staging buffer was last read by chunk k-2's host->device copy: wait for it
            # before overwriting (the copies of chunk k-1 and the compute of k-2 go on meanwhile).
            if h2d_done[slot] is not None:
                h2d_done[slot].synchronize()
            staging, device_bufs = self._buffers(slot, inputs)
            for buf, x in zip(staging, inputs):
                buf[:rows].copy_(x[s:e])
            with torch.cuda.stream(copy):
                if computed[slot] is not None:
                    copy.wait_event(computed[slot])  # chunk k-2's compute is done with these device buffers
                for dev, buf in zip(device_bufs, staging):
                    dev[:rows].copy_(buf[:rows], non_blocking=True)
                h2d_done[slot] = torch.cuda.Event()
                h2d_done[slot].record(copy)
            compute.wait_event(h2d_done[slot])
            with torch.cuda.stream(compute):
                out = self._checked(fn(*[dev[:rows] for dev in device_bufs]), rows)
                computed[slot] = torch.cuda.Event()
                computed[slot].record(compute)
            with torch.cuda.stream(copy):
                copy.wait_event(computed[slot])
                host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
                host.copy_(out, non_blocking=True)
                out.record_stream(copy)  # allocated on the compute stream, read by the copy stream
                done = torch.cuda.Event()
                done.record(copy)
            pending.append((host, done))
        for _, done in pending:
            done.synchronize()
        outs = [host for host, _ in pending]
        return torch.cat(outs) if len(outs) > 1 else outs[0]
