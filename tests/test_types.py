import typing

import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow.types import DataType, dtype_of


@pytest.mark.parametrize(
    "user_type, arrow",
    [
        (str, pa.large_string()),
        (int, pa.int64()),
        (float, pa.float64()),
        (bool, pa.bool_()),
        (bytes, pa.large_binary()),
        (dflow.JSON, pa.large_string()),
        (dflow.File, pa.struct([pa.field("url", pa.large_string())])),
        (dflow.Image, pa.large_binary()),
        (dflow.Video, pa.large_binary()),
        (dflow.Audio, pa.large_binary()),
        (dflow.PDF, pa.large_binary()),
        (dflow.HTML, pa.large_string()),
        (dflow.Embedding, pa.large_list(pa.float32())),
        (dflow.Embedding[384], pa.list_(pa.float32(), 384)),
        (list[str], pa.large_list(pa.large_string())),
    ],
)
def test_every_type_maps_to_arrow(user_type, arrow):
    assert dtype_of(user_type).to_arrow() == arrow


def test_optional_and_dict_annotations():
    assert dtype_of(typing.Optional[int]) == DataType("int", optional=True)
    assert dtype_of(int | None) == DataType("int", optional=True)
    assert str(dtype_of(list[str] | None)) == "list[str] | None"
    assert dtype_of(int | None).to_arrow() == pa.int64()
    assert dtype_of(dict[str, int]) == DataType("JSON")


def test_unsupported_type_is_a_clear_error():
    with pytest.raises(TypeError, match="unsupported type"):
        dtype_of(complex)


def test_embedding_dimension_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        dflow.Embedding[0]


def test_flow_of_every_type_collects_values_back():
    cases = [
        (str, "héllo"), (int, 7), (float, 2.5), (bool, True), (bytes, b"\x00\xff"),
        (dflow.JSON, {"a": [1, 2, {"b": None}]}), (dflow.HTML, "<p>x</p>"), (dflow.PDF, b"%PDF-1.4"),
        (dflow.Embedding[3], [0.5, 1.0, -2.0]), (list[int], [1, 2, 3]),
    ]
    for t, value in cases:
        flow = dflow.Flow("v", t)
        assert flow.collect(value) == {"v": value}, t
