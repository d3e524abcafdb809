"""open_file and read: file ops built on the Python-function machinery, checked when built."""
from __future__ import annotations

from typing import Any

from daft_flow.ops.python_udf import ASYNC, ROW, PythonUdf
from daft_flow.types import DataType

DEFAULT_READ_IN_FLIGHT = 384  # see "Cold reads" and "HTTP reads through libcurl" in docs/architecture.md


def check_input(dtype: DataType, needs: str, op: str, field: str, flow: str) -> None:
    if dtype.kind not in (needs, "any"):
        hint = "; call open_file() first" if op == "read()" and dtype.kind == "str" else ""
        raise TypeError(f'{op} needs {needs}, field "{field}" of flow "{flow}" is {dtype}{hint}')


def open_file_udf() -> PythonUdf:
    from daft_flow.io.ops import open_file

    return PythonUdf(fn=open_file, mode=ROW, return_type=DataType("File"), builtin="open_file")


def read_udf(max_in_flight: int | None = None, as_bytes: bool = False, timeout: Any = None,
             max_bytes: Any = None) -> PythonUdf:
    from daft_flow.io.limits import Timeout, parse_max_bytes
    from daft_flow.io.ops import ReadFile

    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                      or max_in_flight <= 0):
        raise ValueError(f"read(): max_in_flight must be a positive int, got {max_in_flight!r}")
    if not isinstance(as_bytes, bool):
        raise TypeError(f"read(): as_bytes must be True or False, got {as_bytes!r}")
    fn = ReadFile(as_bytes, None if timeout is None else Timeout.of(timeout, "read(): timeout"),
                  None if max_bytes is None else parse_max_bytes(max_bytes, "read(): max_bytes"))
    return PythonUdf(fn=fn, mode=ASYNC, return_type=DataType("bytes" if as_bytes else "str"),
                     max_in_flight=max_in_flight or DEFAULT_READ_IN_FLIGHT,
                     builtin="read_bytes" if as_bytes else "read", builtin_detail=fn.describe(), expanding=True)
