"""run_python: user functions as row-wise, batch or async ops, checked against field types when built."""
from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from daft_flow.types import ANY, DataType, dtype_of

ROW, BATCH, ASYNC = "row", "batch", "async"


@dataclass(frozen=True, eq=False)
class PythonUdf:
    """A user function and how to call it."""

    fn: Callable[..., Any]
    mode: str  # "row" | "batch" | "async"
    return_type: DataType
    max_in_flight: int = 0
    batch_size: int = 0
    batch_arg_kind: str = "list"  # batch mode: "arrow" (pyarrow.Array) or "list"
    builtin: str = ""  # a daft_flow builtin op (open_file, read, write_sink) implemented by ``fn``
    builtin_detail: str = ""  # what explain() shows after the builtin's name (e.g. the sink)

    @property
    def name(self) -> str:
        return self.builtin or f"run_python({callable_name(self.fn)})"


def callable_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return dict(getattr(target, "__annotations__", {}) or {})


def positional_params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without signatures: assume one argument
        return [inspect.Parameter("value", inspect.Parameter.POSITIONAL_ONLY)]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in sig.parameters.values() if p.kind in kinds]
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        params.append(inspect.Parameter("args", inspect.Parameter.POSITIONAL_ONLY))
    return params


def make_udf(fn: Callable[..., Any], *, return_type: Any, batch: bool, max_in_flight: int | None,
             batch_size: int | None, where: str) -> PythonUdf:
    """Builds the op spec; ``where`` names the flow/field for error messages."""
    if not callable(fn):
        raise TypeError(f"run_python() needs a callable, got {type(fn).__name__} ({where})")
    if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(getattr(fn, "__call__", None)):  # noqa: B004
        raise TypeError(f"run_python({callable_name(fn)}) is an async generator function (async def with yield), "
                        f"which returns no value: return one, or collect the items into a list ({where})")
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    if is_async and batch:
        raise ValueError(f"run_python({callable_name(fn)}): batch=True is not supported for async functions ({where})")
    if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight <= 0):
        raise ValueError(f"run_python({callable_name(fn)}): max_in_flight must be a positive int, got {max_in_flight!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(f"run_python({callable_name(fn)}): batch_size must be a positive int, got {batch_size!r}")
    hints = _hints(fn)
    if return_type is not None:
        rtype = dtype_of(return_type, where=f"return_type of run_python({callable_name(fn)})")
    elif "return" in hints and hints["return"] is not None and not batch:
        rtype = dtype_of(hints["return"], where=f"return annotation of {callable_name(fn)}")
    elif batch and "return" in hints:
        rtype = _batch_return_type(hints["return"], fn)
    else:
        rtype = ANY
    arg_kind = "list"
    if batch:
        params = positional_params(fn)
        if params:
            ann = hints.get(params[0].name)
            if ann is not None and "pyarrow" in getattr(ann, "__module__", ""):
                arg_kind = "arrow"
    mode = ASYNC if is_async else (BATCH if batch else ROW)
    return PythonUdf(fn=fn, mode=mode, return_type=rtype, max_in_flight=max_in_flight or (100 if is_async else 0),
                     batch_size=batch_size or 0, batch_arg_kind=arg_kind)


def _batch_return_type(ann: Any, fn: Callable[..., Any]) -> DataType:
    origin = typing.get_origin(ann)
    if origin in (list, typing.List) and typing.get_args(ann):
        return dtype_of(typing.get_args(ann)[0], where=f"return annotation of {callable_name(fn)}")
    return ANY


def check_arguments(udf: PythonUdf, arg_types: list[tuple[str, str, DataType]], op_where: str) -> None:
    """Checks annotated parameters against the fields bound to them.

    ``arg_types`` holds (flow name, field name, type) per positional argument. Raises ``TypeError``
    naming the flow, the field and the op when they disagree.
    """
    fn = udf.fn
    params = positional_params(fn)
    has_varargs = bool(params) and params[-1].name == "args" and params[-1].kind == inspect.Parameter.POSITIONAL_ONLY
    required = [p for p in params if p.default is inspect.Parameter.empty]
    if not has_varargs and len(arg_types) > len(params):
        raise TypeError(f"{udf.name} takes {len(params)} argument(s) but is bound to {len(arg_types)} field(s) "
                        f"({op_where})")
    if len(arg_types) < len([p for p in required if p.name != "args"]):
        names = ", ".join(p.name for p in required)
        raise TypeError(f"{udf.name} needs arguments ({names}) but is bound to {len(arg_types)} field(s) ({op_where})")
    if udf.mode == BATCH:
        return
    hints = _hints(fn)
    for param, (flow, field, ftype) in zip(params, arg_types):
        ann = hints.get(param.name)
        if ann is None or ann is typing.Any:
            continue
        try:
            ptype = dtype_of(ann, where=f"annotation of parameter {param.name!r}")
        except TypeError:
            continue  # an annotation we do not model (a user class): not ours to check
        if not ptype.accepts(ftype):
            raise TypeError(f"{udf.name}: parameter {param.name!r} is annotated {ptype} but field "
                            f"{field!r} of flow {flow!r} is {ftype}")
