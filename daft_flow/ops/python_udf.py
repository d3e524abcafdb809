"""run_python: user functions as row-wise, batch or async ops, checked against field types when
built. Also the machinery of the builtin ops implemented by a function (open_file, read,
write_sink: ``PythonUdf.builtin``)."""
from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from daft_flow.gpu.devices import check_gpus
from daft_flow.gpu.instances import is_class_function
from daft_flow.ops.registry import Expr, register
from daft_flow.types import ANY, DataType, dtype_of

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer

ROW, BATCH, ASYNC = "row", "batch", "async"
DEFAULT_MAX_IN_FLIGHT = 100


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
    expanding: bool = False  # results much larger than inputs (read): the runtime probes row sizes
    version: str = ""  # run_python(..., version=): changes the fingerprint when the logic did not
    concurrency: int = 0  # class functions: instances (0 = 1)
    gpus: float = 0.0  # class functions: GPUs per instance (0: CPU, 0.5: half of one)
    timeout: float = 0.0  # seconds per call (0: the flow's policy's, if any)
    on_batch_error: str = "fail"  # batch mode: "fail" every row of a call that raises, or "split" it

    @property
    def name(self) -> str:
        return self.builtin or f"run_python({callable_name(self.fn)})"


def _call_target(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What is called per row or batch: a class function's ``__call__`` (unbound), else ``fn``."""
    if is_class_function(fn):
        cls = fn.func if isinstance(fn, functools.partial) else fn
        return cls.__call__
    return fn


def callable_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial) and inspect.isclass(fn.func):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    fn = _call_target(fn)
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return dict(getattr(target, "__annotations__", {}) or {})


def positional_params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    if is_class_function(fn):
        params = positional_params(_call_target(fn))
        return params[1:]  # self
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without signatures: assume one argument
        return [inspect.Parameter("value", inspect.Parameter.POSITIONAL_ONLY)]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in sig.parameters.values() if p.kind in kinds]
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        params.append(inspect.Parameter("args", inspect.Parameter.POSITIONAL_ONLY))
    return params


ON_BATCH_ERROR = ("fail", "split")


def make_udf(fn: Callable[..., Any], *, return_type: Any, batch: bool, max_in_flight: int | None,
             batch_size: int | None, where: str, version: Any = None, timeout: Any = None,
             on_batch_error: str | None = None, concurrency: int | None = None, gpus: float = 0) -> PythonUdf:
    """Builds the op spec; ``where`` names the flow/field for error messages."""
    from daft_flow.policy import check_timeout

    if not callable(fn):
        raise TypeError(f"run_python() needs a callable, got {type(fn).__name__} ({where})")
    if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(getattr(fn, "__call__", None)):  # noqa: B004
        raise TypeError(f"run_python({callable_name(fn)}) is an async generator function (async def with yield), "
                        f"which returns no value: return one, or collect the items into a list ({where})")
    is_class = is_class_function(fn)
    is_async = inspect.iscoroutinefunction(_call_target(fn)) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))  # noqa: B004
    if concurrency is not None and (not isinstance(concurrency, int) or isinstance(concurrency, bool)
                                    or concurrency <= 0):
        raise ValueError(f"run_python({callable_name(fn)}): concurrency must be a positive int, got {concurrency!r}")
    gpus = check_gpus(gpus, f"run_python({callable_name(fn)})")
    if not is_class and (gpus or (concurrency or 1) > 1):
        raise ValueError(f"run_python({callable_name(fn)}): concurrency= and gpus= are for class functions "
                         f"(run_python(MyModel, ...) with a class: its instances own the devices) ({where})")
    if is_class and is_async:
        raise ValueError(f"run_python({callable_name(fn)}): class functions with an async __call__ are not "
                         f"supported ({where})")
    if is_async and batch:
        raise ValueError(f"run_python({callable_name(fn)}): batch=True is not supported for async functions ({where})")
    for option, value in (("max_in_flight", max_in_flight), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"run_python({callable_name(fn)}): {option} must be a positive int, got {value!r}")
    # Options that would be ignored say so rather than being accepted silently.
    if max_in_flight is not None and not is_async:
        raise ValueError(f"run_python({callable_name(fn)}): max_in_flight applies to async functions (async def); "
                         f"this one is not ({where})")
    if batch_size is not None and not batch:
        raise ValueError(f"run_python({callable_name(fn)}): batch_size applies to batch functions (batch=True) "
                         f"({where})")
    if not isinstance(batch, bool):
        raise TypeError(f"run_python({callable_name(fn)}): batch must be True or False, got {batch!r}")
    if version is not None and (not isinstance(version, (str, int)) or isinstance(version, bool)):
        raise TypeError(f"run_python({callable_name(fn)}): version must be a str or int, got {version!r}")
    seconds = check_timeout(timeout, f"run_python({callable_name(fn)}) ({where})")
    if on_batch_error is not None:
        if not isinstance(on_batch_error, str) or on_batch_error not in ON_BATCH_ERROR:
            raise ValueError(f"run_python({callable_name(fn)}): on_batch_error must be one of "
                             f"{', '.join(map(repr, ON_BATCH_ERROR))}, got {on_batch_error!r}")
        if not batch:
            raise ValueError(f"run_python({callable_name(fn)}): on_batch_error applies to batch functions "
                             f"(batch=True) ({where})")
    if is_class and (seconds or on_batch_error == "split"):  # the class runner splits on out-of-memory only
        raise ValueError(f"run_python({callable_name(fn)}): timeout= and on_batch_error='split' are not supported "
                         f"for class functions ({where})")
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
            elif is_class and _is_torch_tensor(ann):
                arg_kind = "tensor"  # the GPU stage: columns arrive as tensors on the instance's device
    mode = ASYNC if is_async else (BATCH if batch else ROW)
    return PythonUdf(fn=fn, mode=mode, return_type=rtype,
                     max_in_flight=max_in_flight or (DEFAULT_MAX_IN_FLIGHT if is_async else 0),
                     batch_size=batch_size or 0, batch_arg_kind=arg_kind, version="" if version is None else str(version),
                     timeout=seconds or 0.0, on_batch_error=on_batch_error or "fail",
                     concurrency=concurrency or 0, gpus=gpus)


def _is_torch_tensor(ann: Any) -> bool:
    if isinstance(ann, str):  # an annotation that could not be resolved (a local import of torch)
        return ann in ("torch.Tensor", "Tensor")
    return getattr(ann, "__name__", "") == "Tensor" and getattr(ann, "__module__", "").startswith("torch")


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


def as_type(value: Any) -> Any:
    """The value itself: the op's result type makes the runtime check and store it as that type."""
    return value


def as_type_udf(dtype: DataType) -> PythonUdf:
    """A builtin op giving an untyped value a type (chain() from an untyped field)."""
    return PythonUdf(fn=as_type, mode=ROW, return_type=dtype, builtin="as_type", builtin_detail=str(dtype))


_MODES = {ROW: 0, BATCH: 1, ASYNC: 2}  # ir.PythonUdf.Mode
_MODE_NAMES = {0: "row-wise", 1: "batch", 2: "async"}


@register
class PythonCall(Expr):
    """A call of a ``PythonUdf`` on the values of ``args``, per row, per batch or as coroutines."""

    kind = "python_udf"

    def __init__(self, udf: PythonUdf, args: tuple[Expr, ...]) -> None:
        self.udf = udf
        self.args = args
        self.dtype = udf.return_type

    def label(self) -> str:
        return self.udf.name

    def inputs(self) -> tuple[Expr, ...]:
        return self.args

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        udf = self.udf
        msg = node.python_udf
        msg.fn_ref = t.ref(udf.fn)
        msg.mode = _MODES[udf.mode]  # type: ignore[assignment]
        msg.max_in_flight, msg.batch_size, msg.batch_arg_kind = udf.max_in_flight, udf.batch_size, udf.batch_arg_kind
        msg.builtin, msg.builtin_detail = udf.builtin, udf.builtin_detail
        msg.expanding, msg.version = udf.expanding, udf.version
        msg.timeout = udf.timeout
        msg.on_batch_error = "" if udf.on_batch_error == "fail" else udf.on_batch_error
        msg.concurrency, msg.gpus = udf.concurrency, udf.gpus

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        udf = node.python_udf
        detail = _MODE_NAMES[udf.mode]
        if udf.mode == _MODES[ASYNC]:
            detail += f", max_in_flight={udf.max_in_flight}"
        if udf.mode == _MODES[BATCH] and udf.batch_size:
            detail += f", batch_size={udf.batch_size}"
        if udf.version:
            detail += f", version={udf.version}"
        if udf.timeout:
            detail += f", timeout={udf.timeout:g}s"
        if udf.on_batch_error:
            detail += f", on_batch_error={udf.on_batch_error}"
        if udf.concurrency > 1:
            detail += f", concurrency={udf.concurrency}"
        if udf.gpus:
            detail += f", gpus={udf.gpus:g}"
        if udf.builtin:
            what = f"{udf.builtin}({udf.builtin_detail})" if udf.builtin_detail else udf.builtin
            return f"{what} [{detail}]"
        fn = plan.objects[udf.fn_ref]
        name = f"{fn.module}.{fn.qualname}" if fn.module else fn.qualname
        return f"run_python({name}) [{detail}]"

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        udf = node.python_udf
        # max_in_flight, concurrency and gpus only change how many calls overlap and where they
        # run, not what they return; timeout and on_batch_error only which rows fail (they are in
        # the plan's policy fingerprint).
        return {"fn": plan.objects[udf.fn_ref].fingerprint, "mode": int(udf.mode), "batch_size": udf.batch_size,
                "batch_arg_kind": udf.batch_arg_kind, "builtin": udf.builtin, "version": udf.version}

    @classmethod
    def writes_out(cls, node: "ir.Node") -> bool:
        return node.python_udf.builtin == "write_sink"

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        from daft_flow.plan.trace import dtype_from_ir

        msg = node.python_udf
        mode = {v: k for k, v in _MODES.items()}[msg.mode]
        udf = PythonUdf(fn=objects[msg.fn_ref], mode=mode, return_type=dtype_from_ir(node.type),
                        max_in_flight=msg.max_in_flight, batch_size=msg.batch_size,
                        batch_arg_kind=msg.batch_arg_kind or "list", builtin=msg.builtin,
                        builtin_detail=msg.builtin_detail, expanding=msg.expanding, version=msg.version,
                        timeout=msg.timeout, on_batch_error=msg.on_batch_error or "fail",
                        concurrency=msg.concurrency, gpus=msg.gpus)
        return PythonCall(udf, tuple(args))

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        from daft_flow.execution.python_runners import (AsyncRunner, BatchRunner, async_batches, row_builder,
                                                        row_converter)

        msg = node.python_udf
        fn = ctx.objects[msg.fn_ref]
        name = msg.builtin or f"run_python({callable_name(fn)})"
        info = ctx.op_info(node, name)
        out, arg_types = ctx.out_type(node), ctx.arg_types(node)
        timeout = ctx.timeout(node, msg.timeout)
        if is_class_function(fn):
            from daft_flow.gpu.runner import ClassRunner

            # Devices are counted now: too few is an error before any work starts.
            runner = ClassRunner(fn, name, arg_types, out, msg.batch_arg_kind or "list", msg.batch_size,
                                 batch=msg.mode == _MODES[BATCH], concurrency=msg.concurrency or 1, gpus=msg.gpus)
            ctx.cancellables.append(runner)  # its instances are closed when the run ends
            ctx.run.add_python_batch(info, ctx.cached(node, runner, name), msg.concurrency or 1)
        elif msg.mode == _MODES[ROW]:
            if ctx.cache_of(node) is not None:  # the native row loop cannot skip rows the cache answers
                from daft_flow.execution.cached import RowRunner

                row_runner = RowRunner(fn, name, arg_types, out)
                ctx.run.add_python_batch(info, ctx.cached(node, row_runner, name), 1)
                return
            converters = [None if t.arrow_format else row_converter(t) for t in arg_types]
            if timeout:  # a sync call cannot be stopped: the watchdog names it once it is late
                from daft_flow.execution.watchdog import timed_row_function

                fn = timed_row_function(fn, name, info.flow, info.field, timeout)
            ctx.run.add_python_row(info, fn, out.arrow_format, converters, row_builder(out), ctx.root_objects,
                                   ctx.plan.levels[0].element_node, bool(timeout),
                                   keep_results=node.id in ctx.keep_results,
                                   keep_results_max_bytes=ctx.held_results_bytes)
        elif msg.mode == _MODES[BATCH]:
            if msg.builtin == "write_sink":  # sinks name what they write by the inputs rows came from
                row_ids = bool(getattr(fn, "wants_row_ids", False))  # checkpointed sinks skip committed rows
                info = ctx.op_info(node, name, input_index=True, row_id=row_ids)
                arg_types = [*arg_types, DataType("int"), DataType("int")] + ([DataType("int")] if row_ids else [])
            runner = BatchRunner(fn, name, arg_types, out, msg.batch_arg_kind or "list", msg.batch_size,
                                 split=msg.on_batch_error == "split", timeout=timeout)
            ctx.cancellables.append(runner)  # stops between batch_size chunks when the run stops
            ctx.run.add_python_batch(info, ctx.cached(node, runner, name), 1)
        else:
            on_output = None
            if msg.expanding and hasattr(ctx.source, "expect_expansion"):
                ctx.source.expect_expansion()
                on_output = ctx.source.note_output
            if hasattr(fn, "with_defaults"):  # read(): the run's limits where the op set none
                fn = fn.with_defaults(ctx.options.read_timeout, ctx.options.read_max_bytes)
            runner = AsyncRunner(fn, name, arg_types, out, msg.max_in_flight or DEFAULT_MAX_IN_FLIGHT, on_output,
                                 timeout=0.0 if msg.builtin == "read" else timeout)  # reads have their own limits
            ctx.cancellables.append(runner)
            # An expanding stage makes the runtime probe row sizes with the first batch and then
            # charge each admitted batch its expected footprint (in-flight reads included).
            ctx.run.add_python_batch(info, ctx.cached(node, runner, name),
                                     async_batches(ctx.options.async_concurrency, runner.max_in_flight), msg.expanding)
