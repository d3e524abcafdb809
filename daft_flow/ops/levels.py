"""Levels (sets of rows) and the values every level has: its rows' input (``LevelInput``), the
extra values its origin gives (``LevelAttribute``), and chained views of other flows (``Mapped``).

Origins here: the root (one row per input, made by the source) and ``Explode`` (flat_map: one
row per list element; chain: one row per row). chunk_text's origin lives in ``ops/chunk_text.py``.
"""
from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any

from daft_flow.ops.registry import Expr, LevelOrigin, level_origin, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Maps, Tracer

_ids = itertools.count()


class LevelDef:
    """One flow level: a set of rows. The root has one row per input; a child level has zero or
    more rows per row of its parent, made from the parent's ``source`` value as its ``origin`` says."""

    def __init__(self, name: str, input_field: str, input_type: DataType, parent: "LevelDef | None" = None,
                 source: "Expr | None" = None, origin: LevelOrigin | None = None) -> None:
        self.uid = next(_ids)
        self.name = name
        self.input_field = input_field
        self.input_type = input_type
        self.parent = parent
        self.source = source
        self.origin: LevelOrigin = origin if origin is not None else (Root() if parent is None else Explode(False))
        # filter() and limit() make views of a level: the same rows (same fields, same IR level),
        # fewer of them. `base` is the level viewed; `view_ops` the ("filter", Expr) and
        # ("limit", int) steps applied to it, in order (see ops/row_ops.py).
        self.base: LevelDef = self
        self.view_ops: tuple[tuple[str, Any], ...] = ()
        # Fields defined on this level by name (the latest assignment of a name wins), so a child
        # flow can name the parent fields it wants in its results (include_parents=["url"]). Views
        # (filter, limit) share it: they have the same fields.
        self.named: dict[str, Expr] = {}
        self.copied_from: "tuple[LevelDef, dict[LevelDef, LevelDef]] | None" = None  # by chain()/flat_map(flow)

    def with_view_op(self, kind: str, arg: Any) -> "LevelDef":
        """A view of this level after one more filter() or limit()."""
        view = copy.copy(self)
        view.uid = next(_ids)
        view.view_ops = self.view_ops + ((kind, arg),)
        return view

    def same_rows(self, other: "LevelDef") -> bool:
        """Whether both are views of one level (fields of one are fields of the other)."""
        return self.base is other.base

    def lookup(self, name: str) -> "Expr | None":
        """The field named ``name`` on this level, if any."""
        if name in self.named:
            return self.named[name]
        if self.copied_from is not None:
            level, mapping = self.copied_from
            expr = level.lookup(name)
            return Mapped(expr, mapping) if expr is not None else None
        return None

    def field_names(self) -> list[str]:
        names = list(self.named)
        if self.copied_from is not None:
            names += [n for n in self.copied_from[0].field_names() if n not in self.named]
        return names

    def ancestors(self) -> list["LevelDef"]:
        """This level and its ancestors, nearest first."""
        out, level = [], self
        while level is not None:
            out.append(level)
            level = level.parent
        return out

    def __repr__(self) -> str:
        return f"LevelDef({self.name!r}#{self.uid})"


@register
class Root(LevelOrigin):
    """The root level: one row per input, made by the source."""

    kind = ""

    def copy_for_chain(self, one_to_one: bool) -> LevelOrigin:
        return Explode(one_to_one)

    @classmethod
    def explain(cls, level: "ir.Level", plan: "ir.Plan") -> str:
        return "root: one row per input"

    @classmethod
    def restore(cls, level: "ir.Level", objects: list[Any]) -> LevelOrigin:
        return Root()


@register
class Explode(LevelOrigin):
    """flat_map: one row per element of the parent's list value; chain (``one_to_one``): one row
    per parent row, whose value is the parent's value. Made natively (``ExplodeOperator``)."""

    kind = "explode"

    def __init__(self, one_to_one: bool) -> None:
        self.one_to_one = one_to_one

    def write_ir(self, level: "ir.Level", t: "Tracer", attribute_nodes: dict[str, int]) -> None:
        level.explode.one_to_one = self.one_to_one

    @classmethod
    def explain(cls, level: "ir.Level", plan: "ir.Plan") -> str:
        parent = plan.levels[level.parent].flow
        if level.explode.one_to_one:
            return f"child of {parent!r}: one row per row, from #{level.source_node} (chain)"
        return f"child of {parent!r}: one row per element of #{level.source_node} (flat_map)"

    @classmethod
    def fingerprint(cls, level: "ir.Level", plan: "ir.Plan") -> Any:
        return {"one_to_one": level.explode.one_to_one}

    @classmethod
    def restore(cls, level: "ir.Level", objects: list[Any]) -> LevelOrigin:
        return Explode(level.explode.one_to_one)

    @classmethod
    def lower(cls, level: "ir.Level", element: "ir.Node", ctx: "Lowering") -> None:
        ctx.run.add_explode(parent=level.parent, level=level.id, source_node=level.source_node,
                            element_node=element.id, one_to_one=level.explode.one_to_one)


@register
class LevelInput(Expr):
    """The value each row of a level was made from (the root input, a list element, a chunk)."""

    kind = "level_input"

    def __init__(self, level: LevelDef) -> None:
        self.level = level
        self.dtype = level.input_type

    def label(self) -> str:
        return self.level.input_field

    def emit(self, t: "Tracer", maps: "Maps", name: str) -> tuple[int, int]:
        level_id = t.level(t.resolve(self.level, maps))
        return t.element_node[level_id], level_id

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        return "input"

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        level = ctx.plan.levels[node.level]
        level_origin(level.WhichOneof("origin")).lower(level, node, ctx)


@register
class LevelAttribute(Expr):
    """A per-row value a level's origin gives besides its input (chunk_index, start_offset, ...):
    written by the stage that makes the level."""

    kind = "level_attribute"

    def __init__(self, level: LevelDef, name: str, dtype: DataType) -> None:
        self.level = level
        self.name = name
        self.dtype = dtype

    def label(self) -> str:
        return self.name

    def emit(self, t: "Tracer", maps: "Maps", name: str) -> tuple[int, int]:
        level_id = t.level(t.resolve(self.level, maps))
        if (level_id, self.name) not in t.attribute_node:
            raise ValueError(f"flow {t.plan.levels[level_id].flow!r} has no {self.name!r}")
        return t.attribute_node[(level_id, self.name)], level_id

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        return node.level_attribute.name

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        return {"name": node.level_attribute.name}

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        pass  # written by the stage that makes the level


class Mapped(Expr):
    """``expr`` as seen from a chained copy of its flow: its levels are replaced per ``mapping``.
    A tracing-only view: it has no node of its own."""

    def __init__(self, expr: Expr, mapping: dict[LevelDef, LevelDef]) -> None:
        self.expr = expr
        self.mapping = mapping
        self.dtype = expr.dtype

    def label(self) -> str:
        return self.expr.label()

    def inputs(self) -> tuple[Expr, ...]:
        return tuple(Mapped(e, self.mapping) for e in self.expr.inputs())

    def emit(self, t: "Tracer", maps: "Maps", name: str) -> tuple[int, int]:
        return t.node(self.expr, (self.mapping, *maps), name)
