"""open_file and read: file ops built on the Python-function machinery, checked when built."""
from __future__ import annotations

from daft_flow.ops.python_udf import ASYNC, ROW, PythonUdf
from daft_flow.types import DataType

DEFAULT_READ_IN_FLIGHT = 64


def check_input(dtype: DataType, needs: str, op: str, field: str, flow: str) -> None:
    if dtype.kind not in (needs, "any"):
        hint = "; call open_file() first" if op == "read()" and dtype.kind == "str" else ""
        raise TypeError(f'{op} needs {needs}, field "{field}" of flow "{flow}" is {dtype}{hint}')


def open_file_udf() -> PythonUdf:
    from daft_flow.io.ops import open_file

    return PythonUdf(fn=open_file, mode=ROW, return_type=DataType("File"), builtin="open_file")


def read_udf(max_in_flight: int | None = None, as_bytes: bool = False) -> PythonUdf:
    from daft_flow.io.ops import read_bytes, read_text

    if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight <= 0):
        raise ValueError(f"read(): max_in_flight must be a positive int, got {max_in_flight!r}")
    return PythonUdf(fn=read_bytes if as_bytes else read_text, mode=ASYNC,
                     return_type=DataType("bytes" if as_bytes else "str"),
                     max_in_flight=max_in_flight or DEFAULT_READ_IN_FLIGHT,
                     builtin="read_bytes" if as_bytes else "read", expanding=True)
