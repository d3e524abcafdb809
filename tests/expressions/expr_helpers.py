"""Helpers: run one expression over columns of given values and read back per-row results."""
from __future__ import annotations

from typing import Any, Callable

import daft_flow as dflow

FAILED = "<failed>"


class Failure:
    """A row that failed, with the type of its exception (compared with Python's)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failure({type(self.error).__name__}: {self.error})"


def evaluate(columns: dict[str, tuple[Any, list[Any]]], build: Callable[[dflow.Flow], dflow.Field]) -> list[Any]:
    """Makes a flow whose fields hold ``columns`` (name -> (type, values), set up by row functions),
    adds ``out = build(flow)``, runs it and returns ``out`` per row (a ``Failure`` where the row
    failed)."""
    n = len(next(iter(columns.values()))[1])
    flow = dflow.Flow("i", int)
    for name, (dtype, values) in columns.items():
        flow[name] = flow["i"].run_python(lambda i, values=values: values[i], return_type=dtype)
    flow["out"] = build(flow)
    results = flow.collect_batch(range(n), on_error="return")
    return [Failure(r.error) if isinstance(r, dflow.RowFailure) else r["out"] for r in results]


def reference(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, None where an argument is None, the exception type where it raises."""
    if any(a is None for a in args):
        return None
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e)


def same(got: Any, want: Any, close: bool = False) -> bool:
    if isinstance(want, type) and issubclass(want, BaseException):
        return isinstance(got, Failure) and isinstance(got.error, want)
    if isinstance(got, Failure):
        return False
    if isinstance(want, float) and isinstance(got, float):
        if want != want:
            return got != got
        if close:
            import math

            return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300) or got == want
        return got == want and (want != 0 or str(got) == str(want))
    return got == want and type(got) is type(want)


def check(got: list[Any], want: list[Any], inputs: Any, close: bool = False) -> None:
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if not same(g, w, close)]
    assert not bad, f"rows differ from Python (row, got, want): {bad[:5]}; inputs: {inputs}"
