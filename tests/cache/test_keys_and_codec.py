"""Cache keys (native SipHash-128 of a row's typed values) and the stored encoding of results."""
import math
import pathlib
import subprocess
import sys

import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow import _core
from daft_flow.cache import HASH_KEY
from daft_flow.cache.codec import NULL, decode_column, encode_column, encode_value
from daft_flow.convert import values_to_arrow
from daft_flow.types import DataType

PREFIX = b"p" * 16


def keys(*columns, skip=None):
    return _core.hash_keys(PREFIX, HASH_KEY, [(c, None) for c in columns], skip)


def test_keys_depend_on_values_and_their_types_only():
    strs = pa.array(["1", "1", "2", None], type=pa.large_string())
    ints = pa.array([1, 1, 2, None], type=pa.int64())
    ks, ki = keys(strs), keys(ints)
    assert ks[0] == ks[1] != ks[2] and ks[3] != ks[0]
    assert ks[0] != ki[0]  # the str "1" is not the int 1
    assert ks[3] == ki[3]  # a null is a null, whatever its column's type
    assert all(k.startswith(PREFIX) and len(k) == 32 for k in ks)
    assert keys(strs.slice(2, 1)) == [ks[2]]  # a slice hashes its own rows
    assert keys(pa.array(["1", "2"], type=pa.string())) == [ks[0], ks[2]]  # 32- or 64-bit offsets alike
    assert keys(strs, ints) != keys(ints, strs)  # argument order counts
    assert keys(strs, skip=b"\x00\x01\x00\x01") == [ks[0], None, ks[2], None]


def test_rows_reading_an_ancestor_column_hash_like_its_values():
    docs = pa.array(["doc a", "doc b"], type=pa.large_string())
    index = pa.array([1, 1, 0], type=pa.int64())
    direct = keys(pa.array(["doc b", "doc b", "doc a"], type=pa.large_string()))
    assert _core.hash_keys(PREFIX, HASH_KEY, [(docs, index)], None) == direct


def test_nested_values_hash_by_content():
    emb = pa.FixedSizeListArray.from_arrays(pa.array([1, 2, 1, 2, 2, 1], type=pa.float32()), 2)
    lists = pa.array([["a"], ["a"], ["a", None]], type=pa.large_list(pa.large_string()))
    files = pa.array([{"url": "x"}, {"url": "x"}, {"url": "y"}], type=pa.struct([("url", pa.large_string())]))
    for column in (emb, lists, files):
        k = keys(column)
        assert k[0] == k[1] != k[2]


def test_keys_are_the_same_in_another_process():
    script = ("import pyarrow as pa; from daft_flow import _core; from daft_flow.cache import HASH_KEY; "
              "print(_core.hash_keys(b'p' * 16, HASH_KEY, [(pa.array(['x', 'yz'], type=pa.large_string()), None)])"
              "[1].hex())")
    parent = str(pathlib.Path(dflow.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "PYTHONPATH": parent})
    assert out.stdout.strip() == keys(pa.array(["x", "yz"], type=pa.large_string()))[1].hex()


CASES = [("str", ["a", None, "", "é" * 3]), ("JSON", [{"a": [1, None]}, None, "s", 3]),
         ("bytes", [b"", None, NULL, b"\x00"]), ("int", [0, None, -(2**63), 2**63 - 1]),
         ("float", [0.5, None, -0.0, math.inf]), ("bool", [True, None, False]),
         ("any", [{1, 2}, None, ("t",)])]


@pytest.mark.parametrize("kind,values", CASES)
def test_every_type_round_trips_through_its_stored_bytes(kind, values):
    t = DataType(kind)
    array, problems = values_to_arrow(values, t)
    assert not problems
    array = pa.array(array) if not isinstance(array, pa.Array) else array
    stored = encode_column(array, t)
    assert decode_column(stored, t).to_pylist() == array.to_pylist()
    assert [encode_value(v, t) for v in values] == stored  # one value at a time: the same bytes
    if kind in ("str", "JSON", "int", "float", "bool"):
        assert not any(b"\x80" == s[:1] for s in stored if s != NULL)  # typed, never a pickle


def test_embeddings_lists_and_files_round_trip():
    for t, values in [(DataType.embedding(3), [[1.0, 2.0, 3.0], None, [0.0, -1.5, 2.5]]),
                      (DataType("Embedding"), [[1.0], None, []]),
                      (DataType.list_of(DataType("str")), [["a", None], None, []])]:
        array, _ = values_to_arrow(values, t)
        array = pa.array(array) if not isinstance(array, pa.Array) else array
        assert decode_column(encode_column(array, t), t).to_pylist() == array.to_pylist()
    assert len(encode_value([1.0, 2.0, 3.0], DataType.embedding(3))) == 12  # float32 values, nothing else
