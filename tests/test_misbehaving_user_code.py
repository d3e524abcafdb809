"""A user's misbehaving object fails its row, never the run: the other rows come back, on every
path (row-wise, batch, async), and the failure names the row, the op and the field."""
import asyncio

import numpy as np
import pytest

import daft_flow as dflow


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("__str__ exploded")


class NotesNotAList(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.__notes__ = "a str, not a list"


class IndexRaises(Exception):
    @property
    def index(self):
        raise RuntimeError("no index")


class PickleRaises:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")  # not a TypeError / PicklingError


def _fail_loading():
    raise ValueError("cannot unpickle this")


class UnpickleRaises:
    def __reduce__(self):
        return (_fail_loading, ())


class LenRaises:
    def __len__(self):
        raise RuntimeError("no len")


def raising(error_type):
    def fn(x: int) -> int:
        if x == 1:
            raise error_type("bad row")
        return x
    return fn


def returning(value):
    def fn(x: int):
        return value() if x == 1 else x
    return fn


def as_batch(row_fn):
    def fn(xs: list[int]) -> list:
        return [row_fn(x) for x in xs]
    return fn


def as_async(row_fn):
    async def fn(x: int):
        await asyncio.sleep(0)
        return row_fn(x)
    return fn


def run(fn, **kwargs):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(fn, **kwargs)
    return flow.collect_batch([0, 1, 2], on_error="return")


def assert_only_row_1_failed(results):
    assert results[0]["y"] == 0 and results[2]["y"] == 2
    failure = results[1]
    assert isinstance(failure, dflow.RowFailure), failure
    assert failure.input_index == 1 and failure.field == "y"
    str(failure)  # never raises, whatever the error's __str__ does
    return failure


ERRORS = [StrRaises, NotesNotAList, IndexRaises]


@pytest.mark.parametrize("error_type", ERRORS)
def test_an_exception_that_misbehaves_fails_its_row_in_a_row_function(error_type):
    failure = assert_only_row_1_failed(run(raising(error_type)))
    assert isinstance(failure.error, error_type)


@pytest.mark.parametrize("error_type", ERRORS)
def test_an_exception_that_misbehaves_fails_its_row_in_an_async_function(error_type):
    failure = assert_only_row_1_failed(run(as_async(raising(error_type))))
    assert isinstance(failure.error, error_type)


@pytest.mark.parametrize("error_type", ERRORS)
def test_an_exception_that_misbehaves_fails_its_batch_in_a_batch_function(error_type):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(as_batch(raising(error_type)), batch=True, batch_size=1)
    results = flow.collect_batch([0, 1, 2], on_error="return")
    failure = assert_only_row_1_failed(results)
    assert isinstance(failure.error, dflow.BatchError) and isinstance(failure.error.__cause__, error_type)
    assert "str() raised" in str(failure.error) or error_type is not StrRaises


def test_a_raising_str_does_not_break_the_summary_error():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(raising(StrRaises))
    with pytest.raises(dflow.FlowRunError) as e:
        flow.collect_batch([0, 1])
    assert "StrRaises" in str(e.value) and e.value.results[0] == {"x": 0, "y": 0}
    with pytest.raises(StrRaises):
        flow.collect(1)


def test_a_lone_surrogate_in_a_message_fails_only_its_row():
    def fn(x: int) -> int:
        if x == 1:
            raise ValueError("bad \ud800 text")
        return x
    failure = assert_only_row_1_failed(run(fn))
    assert isinstance(failure.error, ValueError)


@pytest.mark.parametrize("wrap", [lambda f: f, as_async], ids=["row", "async"])
def test_an_untyped_result_that_cannot_be_pickled_fails_its_row(wrap):
    failure = assert_only_row_1_failed(run(wrap(returning(PickleRaises))))
    assert isinstance(failure.error, TypeError) and "cannot be pickled" in str(failure.error)
    assert 'field "y"' in str(failure.error)


def test_an_untyped_batch_result_that_cannot_be_pickled_fails_its_row():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(as_batch(returning(PickleRaises)), batch=True)
    assert_only_row_1_failed(flow.collect_batch([0, 1, 2], on_error="return"))


def test_an_embedding_whose_len_raises_fails_its_row():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(returning(LenRaises), return_type=dflow.Embedding[2])
    failure = flow.collect_batch([1], on_error="return")[0]
    assert isinstance(failure, dflow.RowFailure) and isinstance(failure.error, TypeError)


def test_a_stored_result_that_fails_to_unpickle_fails_its_row_in_the_output():
    results = run(returning(UnpickleRaises))
    failure = assert_only_row_1_failed(results)
    assert isinstance(failure.error, ValueError)
    assert any("could not be read back" in n for n in failure.error.__notes__)
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(returning(UnpickleRaises))
    with flow.stream([0, 1, 2], on_error="skip") as s:
        rows = list(s)
    assert [r["x"] for r in rows] == [0, 2] and [f.input_index for f in s.failures] == [1]
    table = flow.collect_arrow([0, 1, 2])  # Arrow output does not unpickle: every row is there
    assert table.num_rows == 3


@pytest.mark.parametrize("mode", ["row", "batch", "async"])
def test_a_stored_value_that_fails_to_unpickle_fails_the_rows_reading_it(mode):
    flow = dflow.Flow("x", int)
    flow["obj"] = flow["x"].run_python(returning(UnpickleRaises))
    if mode == "row":
        fn, kwargs = (lambda o: 0 if o is None else 1), {}
    elif mode == "batch":
        fn, kwargs = (lambda os: [1 for _ in os]), {"batch": True}
    else:
        async def fn(o):
            return 1
        kwargs = {}
    flow["z"] = flow["obj"].run_python(fn, return_type=int, **kwargs)
    results = flow.collect_batch([0, 1, 2], on_error="return")
    assert isinstance(results[1], dflow.RowFailure) and isinstance(results[1].error, ValueError)
    assert results[1].field == "z"
    assert results[0]["z"] == 1 and results[2]["z"] == 1


def test_a_leaked_cancelled_error_fails_its_row_and_the_run_goes_on():
    async def fn(x: int) -> int:
        if x == 1:
            raise asyncio.CancelledError()
        await asyncio.sleep(0)
        return x
    failure = assert_only_row_1_failed(run(fn))
    assert isinstance(failure.error, RuntimeError) and isinstance(failure.error.__cause__, asyncio.CancelledError)
    assert "CancelledError" in str(failure.error)


def test_a_cancelled_inner_task_fails_only_its_row():
    async def fn(x: int) -> int:
        task = asyncio.ensure_future(asyncio.sleep(10))
        if x == 1:
            task.cancel()
        else:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return x
        await task  # raises CancelledError into this coroutine
        return x
    assert_only_row_1_failed(run(fn))


def test_a_sync_function_raising_cancelled_error_fails_its_row():
    def fn(x: int) -> int:
        if x == 1:
            raise asyncio.CancelledError()
        return x
    assert_only_row_1_failed(run(fn))


@pytest.mark.parametrize("value", ["ab", b"ab", {"a": 1, "b": 2}, {1, 2}, 5, None])
def test_a_batch_function_must_return_one_value_per_row(value):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda xs: value, batch=True)
    results = flow.collect_batch([1, 2], on_error="return")
    assert all(isinstance(r, dflow.RowFailure) and isinstance(r.error, dflow.BatchError) for r in results)
    assert "one value per row" in str(results[0].error)


@pytest.mark.parametrize("make", [np.array, tuple, lambda v: (x for x in v)], ids=["numpy", "tuple", "generator"])
def test_a_batch_function_may_return_any_sequence(make):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda xs: make([x * 2 for x in xs]), batch=True, return_type=int)
    assert [r["y"] for r in flow.collect_batch([1, 2, 3])] == [2, 4, 6]


def test_an_iterable_that_fails_while_flat_mapped_fails_its_row():
    class Broken:
        def __iter__(self):
            raise RuntimeError("broken iterator")

    flow = dflow.Flow("x", int).flat_map(lambda x: Broken() if x == 1 else [x, x])
    results = flow.collect_batch([0, 1, 2], on_error="return")
    assert results[0] == [{"item": 0}, {"item": 0}] and results[2] == [{"item": 2}, {"item": 2}]
    assert isinstance(results[1][0], dflow.RowFailure)


def test_an_input_whose_len_raises_fails_its_row():
    class LenRaisesStr(str):
        def __len__(self):
            raise RuntimeError("no len")

    results = dflow.Flow("x", str).collect_batch([LenRaisesStr("a"), 5, "c"], on_error="return")
    assert results[0] == {"x": "a"} and results[2] == {"x": "c"} and isinstance(results[1], dflow.RowFailure)


class _Provider(dflow.Provider):
    model = "m"
    embedding_model = "e"

    async def complete(self, prompt, *, model, usage, **kwargs):
        return "ok"

    async def embed(self, texts, *, model, usage):
        return [[1.0] for _ in texts]


def test_a_provider_grouping_embeddings_wrongly_fails_its_rows():
    class BadGroups(_Provider):
        def embedding_batches(self, texts):
            return [[0, 99]]

    class FewerVectors(_Provider):
        async def embed(self, texts, *, model, usage):
            return [[1.0]]

    for provider in (BadGroups(), FewerVectors()):
        flow = dflow.Flow("t", str)
        flow["e"] = flow["t"].embed_text(provider=provider)
        results = flow.collect_batch(["a", "b"], on_error="return")
        assert all(isinstance(r, dflow.RowFailure) for r in results)
        assert isinstance(results[0].error, dflow.ProviderError)


def test_a_provider_raising_keyboard_interrupt_stops_the_run_and_the_loop_lives():
    class Interrupting(_Provider):
        async def complete(self, prompt, *, model, usage, **kwargs):
            raise KeyboardInterrupt

    flow = dflow.Flow("t", str)
    flow["a"] = flow["t"].prompt("q", provider=Interrupting())
    with pytest.raises(KeyboardInterrupt):
        flow.collect("x")
    flow["a"] = flow["t"].prompt("q", provider=_Provider())
    assert flow.collect("x")["a"] == "ok"
