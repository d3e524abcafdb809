"""Restoring: a plan (IR) -> the expression graph and the Flow it was traced from.

Each op rebuilds its own expression from its node (``restore`` of its class in ``daft_flow/ops``);
levels are rebuilt from their origins. Tracing the restored flow gives the same plan again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daft_flow.ops.levels import LevelAttribute, LevelDef, LevelInput
from daft_flow.ops.registry import Expr, level_origin, node_op
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import dtype_from_ir

if TYPE_CHECKING:
    from daft_flow.flow import Flow


def restore_graph(plan: ir.Plan, objects: list[Any]) -> tuple[list[LevelDef], list[Expr]]:
    """The levels and the expression of every node of ``plan``, in plan order."""
    levels: list[LevelDef | None] = [None] * len(plan.levels)
    exprs: list[Expr] = []
    for node in plan.nodes:
        kind = node.WhichOneof("op")
        if node.id != len(exprs) or kind is None or not 0 <= node.level < len(plan.levels) or \
                any(not 0 <= i < node.id for i in node.inputs):
            raise ValueError(f"malformed plan: node #{len(exprs)} ({kind}) is out of order or reads a later node")
        if kind == "level_input":
            level = levels[node.level]
            if level is None:
                level = levels[node.level] = _restore_level(plan, plan.levels[node.level], node, levels, exprs, objects)
            expr: Expr = LevelInput(level)
            if plan.levels[node.level].HasField("input_limit"):  # limit() before any filter
                levels[node.level] = level.with_view_op("limit", plan.levels[node.level].input_limit)
        else:
            level = levels[node.level]
            if level is None:
                raise ValueError(f"malformed plan: node #{node.id} comes before its level's input")
            if kind == "level_attribute":
                expr = LevelAttribute(level, node.level_attribute.name, dtype_from_ir(node.type))
            else:
                expr = node_op(kind).restore(node, [exprs[i] for i in node.inputs], objects)
            if kind == "filter":  # the level is seen through its filters from here on
                levels[node.level] = level.with_view_op("filter", exprs[node.inputs[0]])
        if node.name:
            expr.field_name = node.name
        if node.HasField("cache"):
            ref = node.cache.cache_ref
            expr.cache = True if ref < 0 else objects[ref]
        exprs.append(expr)
    if any(level is None for level in levels):
        raise ValueError("malformed plan: a level has no input node")
    for i, msg in enumerate(plan.levels):
        if msg.HasField("limit"):  # limit() after filters: the rows that come out
            levels[i] = levels[i].with_view_op("limit", msg.limit)  # type: ignore[union-attr]
    return [level for level in levels if level is not None], exprs


def _restore_level(plan: ir.Plan, msg: ir.Level, element: ir.Node, levels: list[LevelDef | None],
                   exprs: list[Expr], objects: list[Any]) -> LevelDef:
    origin = level_origin(msg.WhichOneof("origin")).restore(msg, objects)
    parent = source = None
    if msg.parent >= 0:
        parent = levels[msg.parent]
        if parent is None or msg.source_node >= len(exprs):
            raise ValueError(f"malformed plan: level {msg.id} comes before its parent or its source")
        source = exprs[msg.source_node]
    return LevelDef(name=msg.flow, input_field=element.name, input_type=dtype_from_ir(element.type), parent=parent,
                    source=source, origin=origin)


def output_flow(levels: list[LevelDef], exprs: list[Expr], level: int, nodes: list[int], names: list[str],
                current: str) -> "Flow":
    """The Flow whose fields are ``names`` = ``nodes`` at ``level``."""
    from daft_flow.flow import Flow

    fields = {name: exprs[n] for n, name in zip(nodes, names)}
    return Flow._make(levels[level], fields, current if current in fields else names[-1])


def restore_flow(plan: ir.Plan, objects: list[Any]) -> "Flow":
    """The flow ``plan`` was traced from (its output fields are its fields)."""
    levels, exprs = restore_graph(plan, objects)
    return output_flow(levels, exprs, plan.output_level, list(plan.output_nodes), list(plan.output_names),
                       plan.current_field)
