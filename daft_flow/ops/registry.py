"""The op registry: every op has one home.

An op is one class in one module of ``daft_flow/ops``: an ``Expr`` subclass for a node kind of
the IR (a field of the ``ir.Node.op`` oneof), or a ``LevelOrigin`` subclass for a way of making a
child level's rows (a field of the ``ir.Level.origin`` oneof). The class owns everything about its
op, so tracing, ``explain()``, fingerprints, ``Flow.from_bytes`` and the physical planner only
look it up here:

============================  ================================================================
``__init__`` (and builders    validation, when the user builds the op (type errors name flow,
next to it)                   field and op)
``emit`` / ``write_ir``       IR emission: the node's message (objects go to the plan's table)
``explain``                   its line in ``Flow.explain()``
``fingerprint``               the parameters that change its results (secrets never)
``restore``                   the expression again, from its node (``Flow.from_bytes``)
``lower``                     its pipeline stage (``_core.Run.add_*``)
============================  ================================================================

Modules register their classes with ``@register`` when imported; ``_BUILTIN_MODULES`` lists the
modules imported before any lookup, so a process that only reads plans knows every op.
"""
from __future__ import annotations

import abc
import importlib
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Maps, Tracer

_BUILTIN_MODULES = (
    "daft_flow.ops.levels",
    "daft_flow.ops.chunk_text",
    "daft_flow.ops.python_udf",
    "daft_flow.ops.as_list",
    "daft_flow.ops.tokenize",
    "daft_flow.ops.render_template",
    "daft_flow.ops.llm_ops",
    "daft_flow.ops.expr_ops",
)

_NODE_OPS: dict[str, type["Expr"]] = {}
_LEVEL_ORIGINS: dict[str, type["LevelOrigin"]] = {}
_loaded = False

T = TypeVar("T", bound=type)


class Expr(abc.ABC):
    """A node of the expression graph, and the op that computes it. ``dtype`` is known when the
    expression is built."""

    kind: ClassVar[str] = ""  # the ir.Node oneof field this op writes; "" for tracing-only views
    dtype: DataType
    field_name: str = ""  # the field it was first assigned to, for plans and error messages
    # cache=: None, True (the process's default cache) or a dflow cache object. Traced into the
    # node's CacheSpec by the tracer for any op; ops whose lowering supports it honour it.
    cache: Any = None

    @abc.abstractmethod
    def label(self) -> str:
        """A short description for plans and messages."""

    def inputs(self) -> tuple["Expr", ...]:
        """The expressions this one reads, in the order of the node's inputs."""
        return ()

    # -- IR emission ----------------------------------------------------------------------------
    def emit(self, t: "Tracer", maps: "Maps", name: str) -> tuple[int, int]:
        """Adds this op's node to the plan being traced; returns (node id, level id). By default
        the inputs are traced first and the node goes to the deepest of their levels."""
        args = [t.node(a, maps) for a in self.inputs()]
        level = t.combined_level(args, self.label())
        node = t.add_node(level, name, self.dtype, [n for n, _ in args])
        self.write_ir(node, t)
        return node.id, level

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        """Fills the node's op message (``getattr(node, self.kind)``)."""
        getattr(node, self.kind).SetInParent()

    # -- what works on the IR node (class methods: a plan read from bytes has no expressions) ----
    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        """The op's part of the node's line in ``Flow.explain()``."""
        return cls.kind

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        """What about this node changes its results, besides its inputs and type: plain data
        (str, int, float, bool, None, lists, dicts). Objects count through their fingerprint in the
        plan's object table. Never a secret."""
        return None

    @classmethod
    def restore(cls, node: "ir.Node", args: list["Expr"], objects: list[Any]) -> "Expr":
        """The expression of ``node`` again, over ``args`` (the restored inputs)."""
        raise NotImplementedError(f"{cls.__name__} cannot be restored from a plan")

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        """Adds the node's pipeline stage to ``ctx.run``."""
        raise NotImplementedError(f"{cls.__name__} has no runtime stage")


class LevelOrigin(abc.ABC):
    """How a child level's rows are made from a value of its parent (the root's come from the
    inputs). Besides the row's value (its ``LevelInput``) an origin may give each row
    ``attributes`` (chunk_text: chunk_index, start_offset, end_offset)."""

    kind: ClassVar[str] = ""  # the ir.Level oneof field; "" for the root

    def attributes(self) -> tuple[tuple[str, DataType], ...]:
        return ()

    def write_ir(self, level: "ir.Level", t: "Tracer", attribute_nodes: dict[str, int]) -> None:
        """Fills the level's origin message."""
        if self.kind:
            getattr(level, self.kind).SetInParent()

    def copy_for_chain(self, one_to_one: bool) -> "LevelOrigin":
        """The origin of this level's copy when a chained flow is bound below another flow: a
        root becomes one row per value (``chain``) or per element (``flat_map``); others stay."""
        return self

    @classmethod
    @abc.abstractmethod
    def explain(cls, level: "ir.Level", plan: "ir.Plan") -> str:
        """How the level's rows are made, for ``Flow.explain()``."""

    @classmethod
    def fingerprint(cls, level: "ir.Level", plan: "ir.Plan") -> Any:
        """What about the origin changes the rows, as plain data (see ``Expr.fingerprint``)."""
        return None

    @classmethod
    @abc.abstractmethod
    def restore(cls, level: "ir.Level", objects: list[Any]) -> "LevelOrigin":
        """The origin again, from the level's message."""

    @classmethod
    def lower(cls, level: "ir.Level", element: "ir.Node", ctx: "Lowering") -> None:
        """Adds the stage that makes the level's rows (and their attributes); the root's rows come
        from the source."""
        return None


def register(cls: T) -> T:
    """Class decorator: makes an ``Expr`` or ``LevelOrigin`` subclass the home of its ``kind``."""
    table: dict[str, Any] = _NODE_OPS if issubclass(cls, Expr) else _LEVEL_ORIGINS
    kind = cls.kind  # type: ignore[attr-defined]
    if kind in table and table[kind] is not cls:
        raise ValueError(f"op kind {kind!r} is registered twice: {table[kind].__qualname__} and {cls.__qualname__}")
    table[kind] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def node_op(kind: str) -> type[Expr]:
    """The op class of an IR node kind (``node.WhichOneof("op")``)."""
    _load()
    try:
        return _NODE_OPS[kind]
    except KeyError:
        raise ValueError(f"unknown op kind {kind!r} in the plan (is it from a newer daft_flow?)") from None


def level_origin(kind: str | None) -> type[LevelOrigin]:
    """The origin class of a level (``level.WhichOneof("origin")``; None for the root)."""
    _load()
    try:
        return _LEVEL_ORIGINS[kind or ""]
    except KeyError:
        raise ValueError(f"unknown level origin {kind!r} in the plan (is it from a newer daft_flow?)") from None
