"""The native check an Arrow string input passes before kernels read it as UTF-8
(``_core.strings_are_valid_utf8``), against pyarrow's full validation and Python's decoder."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import daft_flow as dflow
from daft_flow import _core

# Bytes that make the interesting sequences: ASCII, continuation bytes, every kind of lead byte,
# overlong and surrogate leads (C0, E0 80, ED A0), and bytes never valid (F5-FF).
PIECES = [b"a", b"python(", b"\x80", b"\xbf", b"\xc2", b"\xc0", b"\xdf", b"\xe0", b"\xa0", b"\xed", b"\x9f",
          b"\xef", b"\xf0", b"\x90", b"\xf4", b"\x8f", b"\xf5", b"\xff", "é".encode(), "€".encode(),
          "😀".encode(), "\U0010ffff".encode(), b"x" * 40]


def _strings(values: list[bytes], large: bool, offsets: list[int] | None = None) -> pa.Array:
    data = b"".join(values)
    if offsets is None:
        offsets = [0]
        for v in values:
            offsets.append(offsets[-1] + len(v))
    fmt, t = ("q", pa.large_string()) if large else ("i", pa.string())
    buf = pa.py_buffer(struct.pack(f"<{len(offsets)}{fmt}", *offsets))
    return pa.Array.from_buffers(t, len(offsets) - 1, [None, buf, pa.py_buffer(data)])


def _python_says(values: list[bytes]) -> bool:
    try:
        for v in values:
            v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=6).map(b"".join), max_size=12), st.booleans(),
       st.integers(0, 3))
def test_agrees_with_python_and_pyarrow(values, large, skip):
    arr = _strings(values, large)
    want = _python_says(values)
    assert _core.strings_are_valid_utf8(arr) is want
    # A slice starts at another offset: only its own rows count.
    part = arr.slice(min(skip, len(arr)))
    assert _core.strings_are_valid_utf8(part) is _python_says(values[min(skip, len(values)):])
    try:
        arr.validate(full=True)
        arrow_says = True
    except pa.ArrowInvalid:
        arrow_says = False
    assert arrow_says is want


def test_a_value_that_starts_inside_a_character_is_invalid():
    # The bytes together are valid UTF-8 ("é" is C3 A9), but a row boundary splits the character.
    arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(struct.pack("<3i", 0, 1, 2)),
                                                 pa.py_buffer("é".encode())])
    assert _core.strings_are_valid_utf8(arr) is False


def test_offsets_out_of_order_are_invalid():
    arr = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(struct.pack("<4i", 0, 4, 2, 6)),
                                                 pa.py_buffer(b"abcdef")])
    arr.validate()  # only first and last offsets: the cheap check passes
    assert _core.strings_are_valid_utf8(arr) is False


def test_other_types_are_not_judged():
    assert _core.strings_are_valid_utf8(pa.array([1, 2])) is None
    assert _core.strings_are_valid_utf8(pa.array([b"a"], type=pa.binary())) is None


@pytest.mark.parametrize("large", [True, False])
def test_mostly_ascii_with_a_split_character_in_a_long_input(large):
    values = [b"x" * 37] * 200 + ["é".encode()] + [b"y" * 5] * 50
    assert _core.strings_are_valid_utf8(_strings(values, large)) is True
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    offsets[201] -= 1  # row 200 ends, and row 201 starts, inside "é"
    assert _core.strings_are_valid_utf8(_strings(values, large, offsets)) is False


@pytest.mark.parametrize("string_type, width", [(pa.string(), np.int32), (pa.large_string(), np.int64)])
def test_an_input_with_offsets_out_of_order_fails_its_row_only(string_type, width):
    offsets = np.array([0, 5, 3, 10, 13], dtype=width)
    corrupt = pa.Array.from_buffers(string_type, 4, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"helloworldabc")])
    flow = dflow.Flow("s", str)
    flow["n"] = flow["s"].run_python(len, return_type=int)
    rows = flow.collect_batch(corrupt, on_error="return")
    assert rows[0] == {"s": "hello", "n": 5} and rows[2] == {"s": "loworld", "n": 7} and rows[3] == {"s": "abc", "n": 3}
    assert isinstance(rows[1], dflow.RowFailure)
    assert "input 1 for field 's' of flow 's' cannot be read: its offsets are out of order" in str(rows[1].error)
