"""The runtime's side of class functions: the Python runner of ``run_python(MyModel, ...)``.

Each of the stage's ``concurrency`` worker threads takes an instance from the op's pool for a batch
(made on first use with its device and stream current), calls it per batch (``batch=True``) or per
row, splits batches that run out of device memory, and gives it back. With ``__call__`` annotated to
take ``torch.Tensor``, columns arrive as tensors on the instance's device through the GPU stage
(:class:`daft_flow.gpu.staging.DeviceStage`). The instances are closed when the run ends.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import pyarrow as pa

from daft_flow.convert import values_to_arrow
from daft_flow.errors import BatchError
from daft_flow.execution.python_runners import Args, Failures, _alive, _arg_values
from daft_flow.gpu.devices import plan_devices
from daft_flow.gpu.instances import (InstancePool, call_splitting_on_oom, current_device, current_stream,
                                     is_out_of_memory, kept_instances)
from daft_flow.gpu.staging import DeviceStage, arrow_to_tensor, tensor_to_arrow
from daft_flow.types import DataType
from daft_flow.user_errors import describe, row_error, stops_run

logger = logging.getLogger("daft_flow")


class ClassRunner:
    def __init__(self, fn: Callable[..., Any], name: str, arg_types: list[DataType], out: DataType, arg_kind: str,
                 batch_size: int, *, batch: bool, concurrency: int, gpus: float) -> None:
        self.name, self.arg_types, self.out = name, arg_types, out
        self.arg_kind, self.batch_size, self.batch = arg_kind, batch_size, batch
        slots = plan_devices(name, concurrency, gpus)
        kept = kept_instances()  # on a worker: instances stay loaded across runs of the plan
        self._owns_pool = kept is None
        self.pool = (InstancePool(fn, slots, name) if kept is None
                     else kept.pool((id(fn), name, concurrency, gpus), lambda: InstancePool(fn, slots, name)))
        self._stages: dict[int, DeviceStage] = {}
        self._cancelled = False

    def cancel(self) -> None:
        """The run is stopping: no further chunk is started."""
        self._cancelled = True

    def close(self) -> None:
        """Closes the instances (after the run's threads stopped) unless they are kept beyond the
        run; what close() raised is logged."""
        if not self._owns_pool:
            return
        for e in self.pool.close():
            logger.warning("%s: close() raised %s: %s", self.name, type(e).__name__, e)

    def _columns(self, args: Args, mask: bytes, n: int, failures: Failures) -> tuple[list[int], list[Any]]:
        """The rows to compute and their argument columns. Values that cannot be read back (a stored
        object that fails to unpickle) fail their own row through ``failures``."""
        if self.arg_kind in ("arrow", "tensor"):
            rows = _alive(mask, n)
            all_alive = len(rows) == n
            columns = []
            for array, index in args:
                if index is not None:
                    array = array.take(index)
                columns.append(array if all_alive else array.take(pa.array(rows, type=pa.int64())))
            return rows, columns
        values = _arg_values(args, self.arg_types, failures)
        rows = _alive(mask, n, failures)
        return rows, (values if len(rows) == n else [[v[i] for i in rows] for v in values])

    def _call(self, obj: Any, chunk: list[Any]) -> Any:
        """Results of one call: a host tensor in tensor mode, else a list."""
        if self.arg_kind == "tensor":
            stage = self._stages.get(id(obj))
            if stage is None:
                stage = self._stages[id(obj)] = DeviceStage(current_device(), current_stream())
            return stage.run([arrow_to_tensor(c, self.name) for c in chunk], obj)
        out = obj(*chunk)
        return out.to_pylist() if hasattr(out, "to_pylist") else list(out)

    def _call_list(self, obj: Any, chunk: list[Any]) -> list[Any]:
        out = self._call(obj, chunk)
        return out.tolist() if self.arg_kind == "tensor" else out

    def _batch_error(self, e: Exception, rows: int) -> BatchError:
        err = BatchError(f"{self.name} failed on a batch of {rows} rows: {describe(e)}", batch_size=rows,
                         index=getattr(e, "index", None))
        err.__cause__ = e
        return err

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        failures: Failures = []
        rows, columns = self._columns(args, mask, n, failures)
        results: list[Any] = [None] * n
        if not self.batch:
            with self.pool.acquire() as obj:  # a ClassInitError stops the run: it is not a row's fault
                for j, r in enumerate(rows):
                    try:
                        results[r] = obj(*[c[j] for c in columns])
                    except BaseException as e:
                        if stops_run(e):
                            raise
                        failures.append((r, row_error(e, self.name)))
            array, problems = values_to_arrow(results, self.out)
            return array, failures + list(problems)
        tensors: list[tuple[list[int], Any]] = []  # tensor mode: (rows, host result) per whole chunk
        step = self.batch_size or max(len(rows), 1)
        for start in range(0, len(rows), step):
            if self._cancelled:
                raise RuntimeError("run cancelled")
            chunk_rows = rows[start:start + step]
            chunk = [c[start:start + step] for c in columns] if step < len(rows) else columns
            with self.pool.acquire() as obj:  # a ClassInitError stops the run: it is not a row's fault
                if self.arg_kind == "tensor":
                    # The whole chunk as one tensor result stays out of Python objects; only a
                    # chunk that runs out of memory goes the splitting way below.
                    try:
                        out = self._call(obj, chunk)
                        if int(out.shape[0]) != len(chunk_rows):
                            raise ValueError(f"returned {int(out.shape[0])} results for {len(chunk_rows)} rows")
                        tensors.append((chunk_rows, out))
                        continue
                    except Exception as e:
                        if not is_out_of_memory(e):
                            failures.extend((r, self._batch_error(e, len(chunk_rows))) for r in chunk_rows)
                            continue
                try:
                    values, oom = call_splitting_on_oom(
                        lambda s, e, obj=obj, chunk=chunk: self._call_list(obj, [c[s:e] for c in chunk]),
                        len(chunk_rows), self.name)
                except Exception as e:
                    failures.extend((r, self._batch_error(e, len(chunk_rows))) for r in chunk_rows)
                    continue
            failed = {i for i, _ in oom}
            failures.extend((chunk_rows[i], err) for i, err in oom)
            for i, (r, v) in enumerate(zip(chunk_rows, values)):
                if i not in failed:
                    results[r] = v
        if tensors and not failures and len(rows) == n and sum(len(r) for r, _ in tensors) == n:
            array = self._tensors_to_arrow([t for _, t in tensors])
            if array is not None:
                return array, []
        for chunk_rows, t in tensors:
            for r, v in zip(chunk_rows, t.tolist()):
                results[r] = v
        array, problems = values_to_arrow(results, self.out)
        failures.extend((r, msg) for r, msg in problems)
        return array, failures

    def _tensors_to_arrow(self, parts: list[Any]) -> Any:
        """Every row's result as one Arrow array of the op's type, or None where the tensor does not
        convert to it (then the rows go through the checked Python path, which names bad rows)."""
        import torch

        try:
            array = tensor_to_arrow(torch.cat(parts) if len(parts) > 1 else parts[0], self.name)
            wanted = self.out.to_arrow()
            return array if array.type == wanted else array.cast(wanted)
        except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
