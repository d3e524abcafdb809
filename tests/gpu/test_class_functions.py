"""run_python with a class: one __init__ per instance, __call__ per batch, close() at the end,
GPU requests checked before any work, out-of-memory batches split."""
from __future__ import annotations

import functools
import threading

import pytest

import daft_flow as dflow
from daft_flow.gpu import visible_gpus


class Doubler:
    inits: list[int] = []
    closes: list[int] = []
    streams: list[object] = []
    lock = threading.Lock()

    def __init__(self, scale: int = 2):
        with Doubler.lock:
            Doubler.inits.append(id(self))
        self.scale = scale

    def __call__(self, xs: list[int]) -> list[int]:
        Doubler.streams.append(dflow.current_stream())
        if any(x < 0 for x in xs):
            raise ValueError("negative input")
        return [x * self.scale for x in xs]

    def close(self):
        with Doubler.lock:
            Doubler.closes.append(id(self))


@pytest.fixture(autouse=True)
def _reset():
    Doubler.inits, Doubler.closes, Doubler.streams = [], [], []


def doubled(fn=Doubler, **kw):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(fn, batch=True, return_type=int, **kw)
    return flow


def test_one_init_per_instance_call_per_batch_close_at_the_end():
    flow = doubled(concurrency=2, gpus=0)
    assert [r["y"] for r in flow.collect_batch(range(5000))] == [2 * x for x in range(5000)]
    assert 1 <= len(Doubler.inits) <= 2 and sorted(Doubler.closes) == sorted(Doubler.inits)
    assert set(Doubler.streams) == {None}  # CPU: no stream
    # A second run makes (and closes) its own instances.
    flow.collect_batch(range(10))
    assert len(Doubler.closes) == len(Doubler.inits) and len(Doubler.inits) <= 4


def test_init_arguments_through_partial_and_close_after_failed_rows():
    flow = doubled(functools.partial(Doubler, scale=3), batch_size=1)  # a failing batch fails its rows
    out = flow.collect_batch([1, 2, -1], on_error="return")
    assert out[0]["y"] == 3 and out[1]["y"] == 6
    assert isinstance(out[2], dflow.RowFailure) and "negative input" in str(out[2].error)
    assert len(Doubler.closes) == len(Doubler.inits) == 1


@pytest.mark.skipif(visible_gpus() > 0, reason="checks the error on a machine without a GPU")
@pytest.mark.parametrize("gpus,needed", [(1, 1), (0.5, 1), (2, 2)])
def test_asking_for_a_gpu_that_is_not_there_fails_before_any_work(gpus, needed):
    flow = doubled(gpus=gpus)
    with pytest.raises(dflow.GpuUnavailableError, match=rf"need {needed} GPU\(s\), 0 visible"):
        flow.collect_batch(range(10))
    assert Doubler.inits == [] and Doubler.streams == []


def test_init_that_raises_is_one_error_for_the_run():
    calls = []

    class Broken:
        def __init__(self):
            calls.append(1)
            raise FileNotFoundError("model.safetensors")

        def __call__(self, xs):
            return xs

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Broken, batch=True, concurrency=2, return_type=int)
    with pytest.raises(dflow.ClassInitError, match=r"Broken.__init__ failed on instance 0 \(cpu\): "
                                                   r"FileNotFoundError: model.safetensors") as info:
        flow.collect_batch(range(1000))
    assert calls == [1] and isinstance(info.value.__cause__, FileNotFoundError)


def test_out_of_memory_splits_the_batch_and_fails_only_rows_that_never_fit():
    torch = pytest.importorskip("torch")

    class Hungry:
        def __call__(self, xs: list[int]) -> list[int]:
            if len(xs) > 4 or 13 in xs:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
            return [x + 1 for x in xs]

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Hungry, batch=True, return_type=int)
    out = flow.collect_batch(range(40), on_error="return")
    ok = {r["x"]: r["y"] for r in out if isinstance(r, dict)}
    assert ok == {x: x + 1 for x in range(40) if x != 13}
    with pytest.raises(dflow.FlowRunError) as info:
        flow.collect_batch(range(40))
    (failure,) = info.value.failures
    assert isinstance(failure.error, dflow.GpuOutOfMemoryError) and "does not fit in GPU memory" in str(failure.error)


def test_bad_class_function_arguments_fail_when_the_op_is_built():
    flow = dflow.Flow("x", int)
    with pytest.raises(ValueError, match="concurrency"):
        flow["x"].run_python(Doubler, batch=True, concurrency=0)
    with pytest.raises(ValueError, match="gpus"):
        flow["x"].run_python(Doubler, batch=True, gpus=-1)
    with pytest.raises(ValueError, match="gpus"):
        flow["x"].run_python(lambda xs: xs, batch=True, gpus=1)  # a plain function has no instances to place



def test_classes_without_call_are_plain_callables():
    # int, str or a dataclass: the constructor runs per row (no instances are kept).
    flow = dflow.Flow("x", int)
    flow["s"] = flow["x"].run_python(str, return_type=str)
    assert [r["s"] for r in flow.collect_batch([1, 22])] == ["1", "22"]
    with pytest.raises(ValueError, match="class functions"):
        flow["x"].run_python(str, gpus=1)


def test_tensor_columns_go_through_the_gpu_stage():
    torch = pytest.importorskip("torch")

    class Scale:
        def __init__(self):
            self.factor = torch.tensor(3.0, dtype=torch.float64)

        def __call__(self, x: torch.Tensor) -> list[float]:
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
            return x * self.factor

    flow = dflow.Flow("x", float)
    flow["y"] = flow["x"].run_python(Scale, batch=True, return_type=float)
    assert [r["y"] for r in flow.collect_batch([1.0, 2.5, -4.0])] == [3.0, 7.5, -12.0]


class Plain:
    def __call__(self, xs: list[int]) -> list[int]:
        return xs


def test_plans_show_and_keep_concurrency_and_gpus():
    flow = doubled(Plain, concurrency=2, gpus=0.5)
    assert "concurrency=2, gpus=0.5" in flow.explain()
    restored = dflow.Flow.from_bytes(flow.to_bytes())
    assert "concurrency=2, gpus=0.5" in restored.explain()
    runnable = dflow.Flow.from_bytes(doubled(Plain, concurrency=2).to_bytes())
    assert [r["y"] for r in runnable.collect_batch([1, 2])] == [1, 2]
    # Where and how many instances run does not change what they compute.
    assert flow.fingerprint() == doubled(Plain, concurrency=1).fingerprint() != doubled(Doubler).fingerprint()


def test_row_wise_class_function_fails_rows_alone():
    made = []

    class Inverse:
        def __init__(self):
            made.append(1)

        def __call__(self, x: int) -> float:
            return 1 / x

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Inverse, concurrency=2)
    out = flow.collect_batch([1, 0, 4], on_error="return")
    assert out[0]["y"] == 1.0 and out[2]["y"] == 0.25
    assert isinstance(out[1], dflow.RowFailure) and isinstance(out[1].error, ZeroDivisionError)
    assert 1 <= len(made) <= 2


def test_embedding_tensors_in_and_out_and_oom_in_tensor_mode():
    torch = pytest.importorskip("torch")

    class Project:
        def __call__(self, v: torch.Tensor) -> torch.Tensor:
            if v.shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return v * 2

    flow = dflow.Flow("v", dflow.Embedding[3])
    flow["y"] = flow["v"].run_python(Project, batch=True, return_type=dflow.Embedding[3])
    vectors = [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0], [4.0, 4.0, 4.0]]
    assert [r["y"] for r in flow.collect_batch(vectors)] == [[2 * x for x in v] for v in vectors]

    class Whole(Project):
        def __call__(self, v: torch.Tensor) -> torch.Tensor:
            return v[:, :2] * 2  # [n, 2] does not convert to Embedding[3]: the checked path names the rows

    flow["z"] = flow["v"].run_python(Whole, batch=True, return_type=dflow.Embedding[3])
    with pytest.raises(dflow.FlowRunError) as info:
        flow.collect_batch(vectors)
    assert len(info.value.failures) == 3 and all(f.field == "z" for f in info.value.failures)


def _fail_loading():
    raise ValueError("cannot unpickle this")


class _UnpickleRaises:
    def __reduce__(self):
        return (_fail_loading, ())


class _StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("no str")


@pytest.mark.parametrize("batch", [False, True])
def test_class_function_misbehaving_values_fail_their_own_rows(batch):
    """A stored value that cannot be read back, and an exception whose __str__ raises, fail only
    their rows, as on the plain-function paths."""
    class Reader:
        def __call__(self, objs):
            if batch:
                return [1 for _ in objs]
            if objs == "bad-str":
                raise _StrRaises()
            return 1

    flow = dflow.Flow("x", int)
    flow["obj"] = flow["x"].run_python(lambda x: _UnpickleRaises() if x == 1 else ("bad-str" if x == 2 else x))
    flow["z"] = flow["obj"].run_python(Reader, return_type=int, batch=batch)
    out = flow.collect_batch([0, 1, 2, 3], on_error="return")
    assert isinstance(out[1], dflow.RowFailure) and isinstance(out[1].error, ValueError)
    assert out[0]["z"] == 1 and out[3]["z"] == 1
    if batch:
        assert out[2]["z"] == 1
    else:
        assert isinstance(out[2], dflow.RowFailure) and isinstance(out[2].error, _StrRaises)
