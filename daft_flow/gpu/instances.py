"""Class functions with a lifecycle: ``run_python(MyModel, batch=True, concurrency=2, gpus=1)``.

Each instance is made once (``__init__``: load weights) on the device it owns, called per batch
(``__call__``) with that device current and its own CUDA stream current, and closed at the end of
the run (``close()`` when it has one). A failing ``__init__`` is one error for the run, not one per
batch. An out-of-memory error on the device splits the batch in halves and retries them; a single
row that still does not fit fails alone, with a message saying so.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from daft_flow.gpu.devices import DeviceSlot

logger = logging.getLogger("daft_flow")

_current: contextvars.ContextVar[tuple[Any, int | None] | None] = contextvars.ContextVar("dflow_gpu_instance",
                                                                                        default=None)


def current_stream() -> Any:
    """The CUDA stream (``torch.cuda.Stream``) of the class-function instance running in this thread;
    None on CPU or outside a class function. Work queued on it overlaps with other instances'."""
    cur = _current.get()
    return cur[0] if cur is not None else None


def current_device() -> int | None:
    """The CUDA device ordinal the running class-function instance owns; None on CPU."""
    cur = _current.get()
    return cur[1] if cur is not None else None


def is_class_function(fn: Any) -> bool:
    """A class whose instances are callable (it defines ``__call__``), or a functools.partial of one
    (to pass ``__init__`` arguments), given to run_python. Other classes (``int``, ``str``, a
    dataclass) are plain callables: their constructor runs per row, as before."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.isclass(target) and any("__call__" in vars(k) for k in target.__mro__
                                           if k is not object and k is not type)


def class_name(fn: Any) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(target, "__qualname__", type(target).__name__)


class ClassInitError(RuntimeError):
    """A class function's ``__init__`` raised: the run stops with this one error (the original is its cause)."""


class GpuOutOfMemoryError(MemoryError):
    """A row did not fit in GPU memory even alone, after its batch was split."""


def _oom_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda") and hasattr(torch.cuda, "OutOfMemoryError"):
        types.append(torch.cuda.OutOfMemoryError)
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        with contextlib.suppress(AttributeError):
            types.append(cupy.cuda.memory.OutOfMemoryError)
    return tuple(types)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's or CuPy's out-of-memory error on a device (checked only for libraries already imported)."""
    types = _oom_types()
    return bool(types) and isinstance(exc, types)


def _free_cached_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def call_splitting_on_oom(call: Callable[[int, int], list[Any]], n: int, where: str
                          ) -> tuple[list[Any], list[tuple[int, BaseException]]]:
    """Runs ``call(start, stop)`` on rows [0, n) and returns (results, failures). When it runs out of
    device memory the range is split in halves and each is retried (cached blocks freed first); a
    single row that still runs out fails with a GpuOutOfMemoryError (original as cause) and the rest
    go on. Other exceptions propagate."""
    results: list[Any] = [None] * n
    failures: list[tuple[int, BaseException]] = []
    pending = [(0, n)]
    while pending:
        start, stop = pending.pop()
        try:
            out = call(start, stop)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            _free_cached_memory()
            if stop - start == 1:
                err = GpuOutOfMemoryError(f"{where}: row {start} does not fit in GPU memory even alone "
                                          f"(the batch of {n} was split down to it): {e}")
                err.__cause__ = e
                failures.append((start, err))
            else:
                mid = (start + stop) // 2
                logger.info("%s: out of GPU memory on %d rows, retrying as %d + %d", where, stop - start,
                            mid - start, stop - mid)
                pending += [(mid, stop), (start, mid)]
            continue
        if len(out) != stop - start:
            raise ValueError(f"{where}: returned {len(out)} results for a batch of {stop - start} rows")
        results[start:stop] = out
    return results, failures


class KeptInstances:
    """Instance pools that outlive a run: a dflow-worker (or Ray actor) keeps one per cached plan,
    so a model is loaded once and serves every morsel of every run of that plan. ``close()``
    closes them (the plan left the cache, the worker stops)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[Any, ...], "InstancePool"] = {}
        self._lock = threading.Lock()

    def pool(self, key: tuple[Any, ...], make: Callable[[], "InstancePool"]) -> "InstancePool":
        with self._lock:
            pool = self._pools.get(key)
            if pool is None or pool._init_error is not None or pool._closed:  # a failed __init__ is tried again
                pool = self._pools[key] = make()
            return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            for e in pool.close():
                logger.warning("%s: close() raised %s: %s", pool.where, type(e).__name__, e)


_kept: contextvars.ContextVar[KeptInstances | None] = contextvars.ContextVar("dflow_kept_instances", default=None)


@contextlib.contextmanager
def keep_instances(kept: KeptInstances) -> Iterator[None]:
    """Runs built inside this block take their class functions' instances from ``kept`` (made on
    first use, left open when the run ends) instead of making and closing their own."""
    token = _kept.set(kept)
    try:
        yield
    finally:
        _kept.reset(token)


def kept_instances() -> KeptInstances | None:
    return _kept.get()


class _Instance:
    __slots__ = ("obj", "slot", "stream")

    def __init__(self, obj: Any, slot: DeviceSlot, stream: Any) -> None:
        self.obj, self.slot, self.stream = obj, slot, stream


class InstancePool:
    """At most one instance per slot, made on first use in the thread that needs it, handed to one
    caller at a time. ``close()`` closes every instance made."""

    def __init__(self, factory: Callable[[], Any], slots: list[DeviceSlot], where: str) -> None:
        self.factory, self.slots, self.where = factory, slots, where
        self._cond = threading.Condition()
        self._idle: list[_Instance] = []
        self._free_slots = list(reversed(slots))
        self._made: list[_Instance] = []
        self._init_error: BaseException | None = None
        self._closed = False

    @property
    def instances_made(self) -> int:
        return len(self._made)

    @contextlib.contextmanager
    def _device_context(self, slot: DeviceSlot, stream: Any) -> Iterator[None]:
        token = _current.set((stream, slot.device))
        try:
            if slot.device is None:
                yield
                return
            import torch

            with torch.cuda.device(slot.device), torch.cuda.stream(stream):
                yield
        finally:
            _current.reset(token)

    def _make(self, slot: DeviceSlot) -> _Instance:
        stream = None
        if slot.device is not None:
            import torch

            stream = torch.cuda.Stream(device=slot.device)
        try:
            with self._device_context(slot, stream):
                obj = self.factory()
        except Exception as e:
            raise ClassInitError(f"{self.where}: {class_name(self.factory)}.__init__ failed on instance "
                                 f"{slot.instance} ({slot.describe()}): {type(e).__name__}: {e}") from e
        logger.info("%s: instance %d ready on %s", self.where, slot.instance, slot.describe())
        return _Instance(obj, slot, stream)

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Any]:
        """An instance for one call, with its device and stream current while the block runs."""
        inst = self._take()
        try:
            with self._device_context(inst.slot, inst.stream):
                yield inst.obj
            if inst.stream is not None:
                inst.stream.synchronize()  # results leave the block complete, whatever the caller reads
        finally:
            with self._cond:
                self._idle.append(inst)
                self._cond.notify()

    def _take(self) -> _Instance:
        with self._cond:
            while True:
                if self._init_error is not None:
                    raise self._init_error
                if self._closed:
                    raise RuntimeError(f"{self.where}: the instances were closed")
                if self._idle:
                    return self._idle.pop()
                # The first instance is made alone: an __init__ that fails, fails once.
                first_pending = not self._made and len(self._free_slots) < len(self.slots)
                if self._free_slots and not first_pending:
                    slot = self._free_slots.pop()
                    break
                self._cond.wait()
        try:
            inst = self._make(slot)
        except BaseException as e:
            with self._cond:
                # The first failure is the run's error; callers waiting for an instance get it too.
                if self._init_error is None:
                    self._init_error = e
                self._cond.notify_all()
            raise
        with self._cond:
            self._made.append(inst)
            self._cond.notify_all()
        return inst

    def close(self) -> list[BaseException]:
        """Calls ``close()`` on every instance made (in its device context); returns what they raised."""
        with self._cond:
            self._closed = True
            made, self._made, self._idle = self._made, [], []
            self._cond.notify_all()
        errors: list[BaseException] = []
        for inst in made:
            close = getattr(inst.obj, "close", None)
            if close is None:
                continue
            try:
                with self._device_context(inst.slot, inst.stream):
                    close()
            except Exception as e:  # noqa: BLE001 - reported to the caller, other instances still close
                logger.warning("%s: close() of instance %d raised %s: %s", self.where, inst.slot.instance,
                               type(e).__name__, e)
                errors.append(e)
        return errors
