"""GPU ownership for class functions: device planning, instance lifecycles, per-instance CUDA streams,
out-of-memory splitting. Nothing here needs a GPU, torch or a CUDA toolkit to import; the GPU lines
run only when a class function asks for ``gpus`` and a device is there."""
from daft_flow.gpu.devices import DeviceSlot, GpuUnavailableError, check_gpus, plan_devices, visible_gpus
from daft_flow.gpu.instances import (ClassInitError, GpuOutOfMemoryError, InstancePool, call_splitting_on_oom,
                                     current_device, current_stream, is_class_function, is_out_of_memory)

__all__ = ["DeviceSlot", "GpuUnavailableError", "check_gpus", "plan_devices", "visible_gpus", "ClassInitError",
           "GpuOutOfMemoryError", "InstancePool", "call_splitting_on_oom", "current_device", "current_stream",
           "is_class_function", "is_out_of_memory"]
