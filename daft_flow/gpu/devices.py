"""Which GPUs a class function's instances get: counted before any work starts, shared by fractions.

Ownership is an explicit device context per instance, in the runtime's threads (see
docs/architecture.md, "GPU class functions"): the runtime is one process, and CUDA_VISIBLE_DEVICES
only takes effect in a process that has not initialised CUDA yet, so it is what a worker process
(``dflow-worker``, a Ray actor) is started with, not how threads of one process are separated.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from fractions import Fraction


class GpuUnavailableError(RuntimeError):
    """A flow asks for more GPUs than this process can see; raised before any work starts."""


@dataclass(frozen=True)
class DeviceSlot:
    """Where one instance of a class function runs: CUDA device ordinals (empty on CPU) and the share
    of each it was given (0.5: it shares the device with another instance)."""

    instance: int
    devices: tuple[int, ...] = ()
    share: float = 0.0

    @property
    def device(self) -> int | None:
        """The instance's main device (the current device while it runs), None on CPU."""
        return self.devices[0] if self.devices else None

    def describe(self) -> str:
        if not self.devices:
            return "cpu"
        names = ",".join(f"cuda:{d}" for d in self.devices)
        return names if self.share >= 1 else f"{names} ({self.share:g} of it)"


def visible_gpus() -> int:
    """CUDA devices this process can use (torch's count, else CuPy's; 0 without either or a driver)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        except Exception:  # noqa: BLE001 - no driver or no device: no GPU
            return 0
    return 0


def check_gpus(gpus: object, where: str) -> float:
    """Validates a ``gpus=`` value: 0 (CPU), a fraction in (0, 1) of one GPU, or a whole number."""
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not math.isfinite(gpus) or gpus < 0:
        raise ValueError(f"{where}: gpus must be a number >= 0 (0: CPU, 0.5: half a GPU, 2: two GPUs), got {gpus!r}")
    if gpus > 1 and gpus != int(gpus):
        raise ValueError(f"{where}: gpus above 1 must be a whole number of GPUs, got {gpus!r}")
    return float(gpus)


def plan_devices(where: str, concurrency: int, gpus: float, available: int | None = None) -> list[DeviceSlot]:
    """Assigns devices to ``concurrency`` instances asking for ``gpus`` each: whole GPUs in order,
    fractions packed onto as few devices as hold them (0.5 x 2 instances: one GPU). Raises
    GpuUnavailableError, naming the op, when the GPUs visible are not enough."""
    gpus = check_gpus(gpus, where)
    if concurrency < 1:
        raise ValueError(f"{where}: concurrency must be a positive int, got {concurrency!r}")
    if gpus == 0:
        return [DeviceSlot(i) for i in range(concurrency)]
    share = Fraction(gpus).limit_denominator(1000)
    if share >= 1:
        per = int(share)
        needed = per * concurrency
        slots = [DeviceSlot(i, tuple(range(i * per, (i + 1) * per)), 1.0) for i in range(concurrency)]
    else:
        per_device = int(1 / share)  # instances that fit on one device
        needed = -(-concurrency // per_device)
        slots = [DeviceSlot(i, (i // per_device,), float(share)) for i in range(concurrency)]
    available = visible_gpus() if available is None else available
    if needed > available:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f"{available} visible" + (f" (CUDA_VISIBLE_DEVICES={mask!r})" if mask is not None else "")
        raise GpuUnavailableError(f"{where}: {concurrency} instance(s) x gpus={gpus:g} need {needed} GPU(s), {seen}; "
                                  "lower concurrency or gpus, or use gpus=0 to run on CPU")
    return slots
