"""Clear errors: the same TypeError naming op and field on every path, options checked when
given, numpy scalars treated as the numbers they are, bad inputs failing their own row with an id
of their own."""
import asyncio
import struct

import numpy as np
import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow.execution.options import get_options
from daft_flow.testing import FaultServer


def _row(x: int):
    return "not an int" if x == 1 else x


def _batch(xs: list) -> list:
    return [_row(x) for x in xs]


async def _async(x: int):
    await asyncio.sleep(0)
    return _row(x)


@pytest.mark.parametrize("fn, kwargs", [(_row, {}), (_batch, {"batch": True}), (_async, {})],
                         ids=["row", "batch", "async"])
def test_a_wrong_result_type_is_the_same_type_error_on_every_path(fn, kwargs):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(fn, return_type=int, **kwargs)
    failure = flow.collect_batch([0, 1, 2], on_error="return")[1]
    assert isinstance(failure, dflow.RowFailure) and type(failure.error) is TypeError
    name = fn.__name__
    assert str(failure.error) == f'run_python({name}) returned str, expected int for field "y" of flow "x"'
    assert failure.op == f"run_python({name})" and failure.field == "y"


class NumberProvider(dflow.Provider):
    """A provider whose answers are not text."""

    model = "numbers"
    embedding_model = "numbers"

    async def complete(self, prompt, *, model, usage, **kwargs):
        return 42

    async def embed(self, texts, *, model, usage):
        return [[1.0, 2.0] for _ in texts]


def test_a_provider_answer_of_the_wrong_type_is_a_type_error_naming_op_and_field():
    flow = dflow.Flow("t", str)
    flow["a"] = flow["t"].prompt("q", provider=NumberProvider())
    failure = flow.collect_batch(["x"], on_error="return")[0]
    assert type(failure.error) is TypeError
    assert str(failure.error) == 'prompt returned int, expected str for field "a" of flow "t"'


def test_an_embedding_dimension_mismatch_is_a_type_error_naming_op_and_field():
    with FaultServer(embedding_dim=8) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=server.api_key, embedding_model="fault-embed",
                                        embedding_dim=16)
        flow = dflow.Flow("t", str)
        flow["emb"] = flow["t"].embed_text(provider=provider)
        failure = flow.collect_batch(["some text"], on_error="return")[0]
    assert type(failure.error) is TypeError
    message = str(failure.error)
    assert message.startswith("embed_text returned an embedding of length 8, expected 16")
    assert 'field "emb" of flow "t"' in message and "embedding_dim" in message


@pytest.mark.parametrize("value, expected", [(2**64, 2**63 - 1), ("10TB", 10 * 10**12), ("2TiB", 2 * 2**40),
                                             (1e9, 10**9), (np.int64(1 << 20), 1 << 20), (float("inf"), 2**63 - 1)])
def test_memory_budget_takes_any_size(value, expected):
    assert get_options(memory_budget=value).memory_budget == expected
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x, return_type=int)
    assert flow.collect(1, memory_budget=value) == {"x": 1, "y": 1}


@pytest.mark.parametrize("options, error, match", [
    ({"batch_rows": True}, TypeError, "batch_rows"),
    ({"batch_rows": 2.5}, TypeError, "batch_rows"),
    ({"first_batch_rows": 0}, ValueError, "first_batch_rows"),
    ({"progress": "yes"}, TypeError, "progress"),
    ({"memory_budget": True}, TypeError, "memory_budget"),
    ({"memory_budget": float("nan")}, TypeError, "memory_budget"),
    ({"memory_budget": 1.5}, TypeError, "memory_budget"),
    ({"memory_budget": "-5MB"}, ValueError, "memory_budget"),
    ({"batch_bytes": 0}, ValueError, "batch_bytes"),
    ({"async_concurrency": 10**6}, ValueError, "async_concurrency"),
])
def test_invalid_execution_options_are_rejected_when_given(options, error, match):
    flow = dflow.Flow("x", int)
    with pytest.raises(error, match=match):
        flow.collect(1, **options)
    with pytest.raises(error, match=match):
        flow.stream([1], **options)  # at the call, not at the first next()
    with pytest.raises(error, match=match):
        dflow.set_options(**options)
    with pytest.raises(error, match=match):
        dflow.ExecutionOptions(**options)


def test_ordered_and_lineage_must_be_bools():
    flow = dflow.Flow("x", int)
    with pytest.raises(TypeError, match="ordered"):
        flow.stream([1], ordered="no")
    with pytest.raises(TypeError, match="lineage"):
        flow.collect_arrow([1], lineage="yes")


def test_numpy_numbers_are_numbers_and_bools_are_not_ints():
    ints = dflow.Flow("x", int)
    ints["y"] = ints["x"].run_python(lambda x: np.int32(x * 2), return_type=int)
    assert ints.collect_batch(np.arange(3)) == [{"x": i, "y": 2 * i} for i in range(3)]
    assert ints.collect_batch([np.int64(5), np.uint8(7)]) == [{"x": 5, "y": 10}, {"x": 7, "y": 14}]
    results = ints.collect_batch([True, 1], on_error="return")
    assert isinstance(results[0], dflow.RowFailure) and "is bool, expected int" in str(results[0].error)
    assert results[1] == {"x": 1, "y": 2}

    floats = dflow.Flow("x", float)
    floats["y"] = floats["x"].run_python(lambda x: np.float32(x / 2), return_type=float)
    assert floats.collect_batch([np.float32(1.0), np.int64(4), 2.0]) == [
        {"x": 1.0, "y": 0.5}, {"x": 4.0, "y": 2.0}, {"x": 2.0, "y": 1.0}]
    assert isinstance(floats.collect_batch([False], on_error="return")[0], dflow.RowFailure)

    bools = dflow.Flow("x", bool)
    bools["y"] = bools["x"].run_python(lambda x: np.bool_(not x), return_type=bool)
    assert bools.collect_batch([np.True_, False]) == [{"x": True, "y": False}, {"x": False, "y": True}]


@pytest.mark.parametrize("mode", ["row", "batch", "async"])
def test_a_bool_result_in_an_int_field_fails_its_row_on_every_path(mode):
    flow = dflow.Flow("x", int)
    if mode == "row":
        flow["y"] = flow["x"].run_python(lambda x: x == 1, return_type=int)
    elif mode == "batch":
        flow["y"] = flow["x"].run_python(lambda xs: [x == 1 for x in xs], batch=True, return_type=int)
    else:
        async def is_one(x: int) -> int:
            return x == 1
        flow["y"] = flow["x"].run_python(is_one)
    results = flow.collect_batch([1], on_error="return")
    assert type(results[0].error) is TypeError and "returned bool, expected int" in str(results[0].error)


def test_numpy_arrays_are_lists():
    flow = dflow.Flow("x", int)
    flow["v"] = flow["x"].run_python(lambda x: np.arange(x), return_type=list[int])
    assert flow.collect(3) == {"x": 3, "v": [0, 1, 2]}


def _invalid_utf8_strings(large: bool) -> pa.Array:
    fmt, t = ("<4q", pa.large_string()) if large else ("<4i", pa.string())
    offsets = pa.py_buffer(struct.pack(fmt, 0, 2, 4, 6))
    return pa.Array.from_buffers(t, 3, [None, offsets, pa.py_buffer(b"ok\xff\xfeyo")])


@pytest.mark.parametrize("large", [True, False])
@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: pa.table({"x": a}), lambda a: pa.chunked_array([a])],
                         ids=["array", "table", "chunked"])
def test_invalid_utf8_in_an_arrow_input_fails_its_row_naming_row_and_field(wrap, large):
    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(len, return_type=int)
    results = flow.collect_batch(wrap(_invalid_utf8_strings(large)), on_error="return")
    assert results[0] == {"x": "ok", "n": 2} and results[2] == {"x": "yo", "n": 2}
    failure = results[1]
    assert isinstance(failure.error, ValueError)
    assert "input 1" in str(failure.error) and "'x'" in str(failure.error) and "UTF-8" in str(failure.error)


def test_none_is_rejected_unless_the_field_is_optional():
    def no_none(x: str) -> int:
        assert x is not None, "a None reached the function"
        return len(x)

    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(no_none)
    results = flow.collect_batch(["a", None, "bc"], on_error="return")
    assert results[0]["n"] == 1 and results[2]["n"] == 2
    assert type(results[1].error) is TypeError and "str | None" in str(results[1].error)
    assert "input 1" in str(results[1].error)

    optional = dflow.Flow("x", str | None)
    optional["n"] = optional["x"].run_python(lambda x: -1 if x is None else len(x), return_type=int)
    assert optional.collect_batch(["a", None]) == [{"x": "a", "n": 1}, {"x": None, "n": -1}]
    assert dflow.Flow("x", int | None).collect_batch([None, 1]) == [{"x": None}, {"x": 1}]


@pytest.mark.parametrize("flow_type, bad", [(str, [None, 5, 6.5, b"x"]), (dflow.JSON, [None, None, object()]),
                                            (int, ["a", None, "b"])])
def test_bad_inputs_get_distinct_row_ids_and_fail_before_any_function_sees_them(flow_type, bad):
    seen = []
    flow = dflow.Flow("x", flow_type)
    flow["y"] = flow["x"].run_python(lambda x: seen.append(x) or 1, return_type=int)
    results = flow.collect_batch(bad, on_error="return")
    assert all(isinstance(r, dflow.RowFailure) and r.op == "input" for r in results)
    assert len({r.row_id for r in results}) == len(bad)
    assert seen == []


def test_null_inputs_of_an_optional_field_have_distinct_lineage_ids():
    flow = dflow.Flow("x", str | None)
    table = flow.collect_arrow([None, None, "a"], lineage=True)
    assert len(set(table.column("_row_id").to_pylist())) == 3


@pytest.mark.parametrize("return_type", [int, None])
def test_a_function_returning_a_coroutine_is_told_to_await_it(return_type):
    async def compute(x: int) -> int:
        return x

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: compute(x), return_type=return_type)  # forgot async/await
    failure = flow.collect_batch([1], on_error="return")[0]
    assert type(failure.error) is TypeError and "await" in str(failure.error)


def test_an_optional_input_type_is_part_of_the_plan_and_its_fingerprint():
    strict, optional = dflow.Flow("x", str), dflow.Flow("x", str | None)
    assert strict.fingerprint() != optional.fingerprint()
    restored = dflow.Flow.from_bytes(optional.to_bytes())
    assert restored.collect_batch([None, "a"]) == [{"x": None}, {"x": "a"}]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 10}, "batch_size applies to batch functions"),
    ({"max_in_flight": 5}, "max_in_flight applies to async functions"),
    ({"batch": True, "batch_size": True}, "batch_size must be a positive int"),
    ({"batch": "yes"}, "batch must be True or False"),
])
def test_run_python_options_that_would_be_ignored_are_rejected(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        dflow.Flow("x", int)["x"].run_python(lambda x: x, return_type=int, **kwargs)


def test_a_dict_of_inputs_is_rejected_instead_of_running_on_its_keys():
    with pytest.raises(TypeError, match="not a dict"):
        dflow.Flow("x", str).collect_batch({"a": 1})


def test_a_pandas_data_frame_is_read_as_a_table_not_as_its_column_names():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"n": [1, 2], "x": ["a", "b"]})
    assert dflow.Flow("x", str).collect_batch(frame) == [{"x": "a"}, {"x": "b"}]  # the column named like the field
    assert dflow.Flow("n", int).collect_batch(frame) == [{"n": 1}, {"n": 2}]


def test_none_in_an_arrow_input_is_rejected_unless_the_field_is_optional():
    column = pa.array(["a", None, "b"], pa.large_string())  # taken by the runtime as it is (no Python values)
    results = dflow.Flow("x", str).collect_batch(column, on_error="return")
    assert results[0] == {"x": "a"} and results[2] == {"x": "b"}
    assert type(results[1].error) is TypeError and "str | None" in str(results[1].error)
    assert dflow.Flow("x", str | None).collect_batch(column) == [{"x": "a"}, {"x": None}, {"x": "b"}]
    ints = dflow.Flow("n", int).collect_batch(pa.table({"n": pa.array([1, None], pa.int64())}), on_error="return")
    assert ints[0] == {"n": 1} and isinstance(ints[1], dflow.RowFailure)


def test_expressions_over_an_optional_input():
    flow = dflow.Flow("x", int | None)
    flow["y"] = flow["x"] + 1
    flow["z"] = (flow["x"] + flow["y"]).fill_null(0)
    assert flow.fields["z"] == dflow.DataType("int")
    assert flow.collect_batch([1, None]) == [{"x": 1, "y": 2, "z": 3}, {"x": None, "y": None, "z": 0}]
