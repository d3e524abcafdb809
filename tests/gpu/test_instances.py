"""Device planning, instance lifecycles and out-of-memory splitting: the GPU logic that runs on CPU."""
from __future__ import annotations

import threading

import pytest

from daft_flow.gpu import (ClassInitError, GpuOutOfMemoryError, GpuUnavailableError, InstancePool,
                           call_splitting_on_oom, current_device, current_stream, plan_devices, visible_gpus)


def test_plan_devices_whole_and_fractional_gpus():
    assert [s.devices for s in plan_devices("op", 2, 0, available=0)] == [(), ()]
    assert [s.devices for s in plan_devices("op", 2, 1, available=2)] == [(0,), (1,)]
    assert [s.devices for s in plan_devices("op", 2, 2, available=4)] == [(0, 1), (2, 3)]
    half = plan_devices("op", 3, 0.5, available=2)
    assert [s.devices for s in half] == [(0,), (0,), (1,)] and half[0].share == 0.5
    assert half[0].describe() == "cuda:0 (0.5 of it)"
    assert [s.devices for s in plan_devices("op", 4, 0.25, available=1)] == [(0,)] * 4


def test_asking_for_more_gpus_than_visible_is_a_clear_error():
    with pytest.raises(GpuUnavailableError, match=r"run_python\(M\): 3 instance\(s\) x gpus=0.5 need 2 GPU\(s\), 1 "
                                                  r"visible"):
        plan_devices("run_python(M)", 3, 0.5, available=1)
    if visible_gpus() == 0:
        with pytest.raises(GpuUnavailableError, match="0 visible"):
            plan_devices("run_python(M)", 1, 1)


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, float("nan"), float("inf")])
def test_bad_gpus_values(bad):
    with pytest.raises(ValueError, match="gpus"):
        plan_devices("op", 1, bad, available=8)


class Counting:
    inits = 0
    closes = 0
    lock = threading.Lock()

    def __init__(self):
        with Counting.lock:
            Counting.inits += 1
        self.calls = 0

    def __call__(self, xs):
        self.calls += 1
        return [x * 2 for x in xs]

    def close(self):
        with Counting.lock:
            Counting.closes += 1


def test_each_instance_is_made_once_used_by_one_caller_at_a_time_and_closed():
    Counting.inits = Counting.closes = 0
    pool = InstancePool(Counting, plan_devices("op", 2, 0, available=0), "run_python(Counting)")
    busy: set[int] = set()
    clash = []

    def worker():
        for _ in range(20):
            with pool.acquire() as model:
                if id(model) in busy:
                    clash.append(model)
                busy.add(id(model))
                assert model([1, 2]) == [2, 4]
                assert current_stream() is None and current_device() is None  # CPU instances
                busy.discard(id(model))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not clash and pool.instances_made == Counting.inits <= 2
    assert pool.close() == [] and Counting.closes == Counting.inits
    with pytest.raises(RuntimeError, match="closed"):
        with pool.acquire():
            pass


def test_init_that_raises_is_one_error_for_every_caller():
    inits = []

    class Broken:
        def __init__(self):
            inits.append(1)
            raise OSError("weights not found: /models/x.safetensors")

    pool = InstancePool(Broken, plan_devices("op", 2, 0, available=0), "run_python(Broken)")
    errors = []

    def worker():
        try:
            with pool.acquire():
                pass
        except ClassInitError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inits) == 1 and len(errors) == 4 and len({id(e) for e in errors}) == 1
    assert "Broken.__init__ failed on instance 0 (cpu): OSError: weights not found" in str(errors[0])
    assert isinstance(errors[0].__cause__, OSError)


def test_close_errors_are_returned_and_other_instances_still_close():
    closed = []

    class Closing:
        n = 0

        def __init__(self):
            Closing.n += 1
            self.i = Closing.n

        def close(self):
            closed.append(self.i)
            if self.i == 1:
                raise RuntimeError("close failed")

    pool = InstancePool(Closing, plan_devices("op", 2, 0, available=0), "op")
    with pool.acquire():
        with pool.acquire():
            pass
    errors = pool.close()
    assert sorted(closed) == [1, 2] and [str(e) for e in errors] == ["close failed"]


def test_out_of_memory_splits_the_batch_then_fails_single_rows():
    torch = pytest.importorskip("torch")
    sizes = []

    def call(start, stop):
        rows = list(range(start, stop))
        sizes.append(len(rows))
        if len(rows) > 3 or 7 in rows:  # batches over 3 rows, and row 7 alone, do not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [r * 10 for r in rows]

    results, failures = call_splitting_on_oom(call, 10, "run_python(Model)")
    assert [r for i, r in enumerate(results) if i != 7] == [i * 10 for i in range(10) if i != 7]
    assert [i for i, _ in failures] == [7]
    err = failures[0][1]
    assert isinstance(err, GpuOutOfMemoryError) and isinstance(err.__cause__, torch.cuda.OutOfMemoryError)
    assert "run_python(Model): row 7 does not fit in GPU memory even alone (the batch of 10 was split" in str(err)
    assert sizes[0] == 10 and max(sizes[1:]) <= 5


def test_other_errors_and_wrong_lengths_propagate():
    def boom(start, stop):
        raise KeyError("not an OOM")

    with pytest.raises(KeyError):
        call_splitting_on_oom(boom, 4, "op")
    with pytest.raises(ValueError, match="returned 1 results for a batch of 4 rows"):
        call_splitting_on_oom(lambda a, b: [0], 4, "op")
