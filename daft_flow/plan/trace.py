"""Tracing: a Flow's expression graph -> the protobuf IR (``daft_flow.ir.Plan``).

Only what the output needs is traced: the output flow's fields, what they read, and the levels
between the root and the output flow. Each op writes its own node (``Expr.emit``, see
``daft_flow/ops/registry.py``); the tracer keeps the plan, the levels and the object table:
Python objects (functions, providers, tokenizers, ...) are referenced by index into
``TracedPlan.objects``, so a traced plan pickles nothing unless it has to cross a process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daft_flow.ops.levels import LevelDef
from daft_flow.ops.python_udf import callable_name
from daft_flow.ops.registry import Expr
from daft_flow.plan import flow_pb2 as ir
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow

IR_VERSION = 7  # 3: op registry (level origins, the object table), fingerprints, travelling plans;
# 4: expression and filter nodes, level limits; 5: prompt's include_finish_reason (changes the result type);
# 6: class functions' concurrency and gpus (an older reader would run the class as a plain callable)
# 7: per-node cache= (CacheSpec)


@dataclass
class TracedPlan:
    plan: ir.Plan
    objects: list[Any] = field(default_factory=list)  # plan.objects[i] describes objects[i]


def dtype_to_ir(t: DataType) -> ir.DataType:
    msg = ir.DataType(kind=t.kind, dimension=t.dimension, optional=t.optional)
    if t.element is not None:
        msg.element.CopyFrom(dtype_to_ir(t.element))
    return msg


def dtype_from_ir(msg: ir.DataType) -> DataType:
    element = dtype_from_ir(msg.element) if msg.HasField("element") else None
    return DataType(msg.kind, element=element, dimension=msg.dimension, optional=msg.optional)


Maps = tuple[dict[LevelDef, LevelDef], ...]


def object_name(obj: Any) -> tuple[str, str]:
    """(module, qualname) of an object of the table, as explain() and messages name it."""
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return str(getattr(obj, "__module__", "") or ""), callable_name(obj)
    cls = type(obj)
    return str(cls.__module__ or ""), cls.__qualname__


class Tracer:
    """Builds one plan. Ops call ``node`` (trace an input), ``add_node`` (their own node),
    ``level`` and ``ref`` (put an object in the table)."""

    def __init__(self) -> None:
        self.plan = ir.Plan(ir_version=IR_VERSION)
        self.objects: list[Any] = []
        self.object_refs: dict[int, int] = {}
        self.level_ids: dict[LevelDef, int] = {}
        self.level_depth: dict[int, int] = {}
        self.element_node: dict[int, int] = {}
        self.views: dict[int, tuple[tuple[str, Any], ...]] = {}  # IR level -> the filter/limit steps applied
        self.attribute_node: dict[tuple[int, str], int] = {}
        self.nodes: dict[tuple[int, tuple[int, ...]], tuple[int, int]] = {}
        self.keep_alive: list[Any] = []

    @staticmethod
    def resolve(level: LevelDef, maps: Maps) -> LevelDef:
        for m in maps:
            level = m.get(level, level)
        return level

    def level(self, level: LevelDef) -> int:
        """The id of ``level`` in the plan, adding it (and its parents) on first use."""
        if level.base is not level:  # a filtered/limited view: the level, then (once) its filters
            from daft_flow.ops.row_ops import apply_view

            return apply_view(self, level)
        if level in self.level_ids:
            return self.level_ids[level]
        msg = ir.Level(flow=level.name, parent=-1)
        if level.parent is not None:
            assert level.source is not None
            parent = self.level(level.parent)  # first: the parent's filters run before this level is made
            source, source_level = self.node(level.source, ())
            msg.parent = parent
            if source_level != msg.parent:
                raise ValueError(f"flow {level.name!r} is made from a value of flow "
                                 f"{self.plan.levels[source_level].flow!r}, which is not its parent")
            msg.source_node = source
            depth = self.level_depth[msg.parent] + 1
        else:
            self.plan.root_field = level.input_field
            self.plan.root_type.CopyFrom(dtype_to_ir(level.input_type))
            depth = 0
        msg.id = len(self.plan.levels)
        self.level_ids[level] = msg.id
        self.level_depth[msg.id] = depth
        element = self.add_node(msg.id, level.input_field, level.input_type, [])
        element.level_input.SetInParent()
        msg.element_node = self.element_node[msg.id] = element.id
        attributes: dict[str, int] = {}
        for attr, dtype in level.origin.attributes():
            node = self.add_node(msg.id, attr, dtype, [])
            node.level_attribute.name = attr
            attributes[attr] = self.attribute_node[(msg.id, attr)] = node.id
        level.origin.write_ir(msg, self, attributes)
        self.plan.levels.append(msg)
        return msg.id

    def add_node(self, level: int, name: str, dtype: DataType, inputs: list[int]) -> ir.Node:
        """Appends a node; the caller fills its op message."""
        node = self.plan.nodes.add(id=len(self.plan.nodes), level=level, name=name, inputs=inputs)
        node.type.CopyFrom(dtype_to_ir(dtype))
        return node

    def ref(self, obj: Any) -> int:
        """The index of ``obj`` in the plan's object table, adding it on first use."""
        if id(obj) not in self.object_refs:
            self.object_refs[id(obj)] = len(self.objects)
            self.objects.append(obj)
            module, qualname = object_name(obj)
            self.plan.objects.add(module=module, qualname=qualname)
        return self.object_refs[id(obj)]

    def is_ancestor(self, ancestor: int, level: int) -> bool:
        while level != -1:
            if level == ancestor:
                return True
            level = self.plan.levels[level].parent
        return False

    def combined_level(self, args: list[tuple[int, int]], what: str) -> int:
        """The level of a node reading ``args`` ((node, level) pairs): the deepest of theirs, which
        must be a descendant of all the others."""
        level_id = max((lvl for _, lvl in args), key=lambda lvl: self.level_depth[lvl])
        for _, lvl in args:
            if not self.is_ancestor(lvl, level_id):
                raise ValueError(f"{what} combines fields of flows {self.plan.levels[lvl].flow!r} and "
                                 f"{self.plan.levels[level_id].flow!r}, which are not parent and child")
        return level_id

    def node(self, expr: Expr, maps: Maps, name: str = "") -> tuple[int, int]:
        """Returns (node id, level id) for ``expr`` seen through ``maps``, tracing it once."""
        if not expr.kind:  # a view (Mapped): traced as what it shows
            return expr.emit(self, maps, name)
        key = (id(expr), tuple(id(m) for m in maps))
        if key in self.nodes:
            node_id, level_id = self.nodes[key]
            if name and not self.plan.nodes[node_id].name:
                self.plan.nodes[node_id].name = name
            return node_id, level_id
        self.keep_alive.append(expr)
        result = expr.emit(self, maps, name or expr.field_name)
        cache = getattr(expr, "cache", None)
        if cache is not None:  # cache=True: the process's default cache where the plan runs
            self.plan.nodes[result[0]].cache.cache_ref = -1 if cache is True else self.ref(cache)
        self.nodes[key] = result
        return result


def trace(flow: "Flow") -> TracedPlan:
    """Traces ``flow`` (its fields are the output) into a plan."""
    t = Tracer()
    out_level = t.level(flow._level)
    t.plan.output_level = out_level
    for name, expr in flow._fields.items():
        node_id, _ = t.node(expr, (), name)  # a parent's field is read by reference per row
        t.plan.output_nodes.append(node_id)
        t.plan.output_names.append(name)
    current = flow._current
    t.plan.current_field = current if isinstance(current, str) else ""
    from daft_flow.ops.row_ops import check_limits

    check_limits(t.plan)
    return TracedPlan(t.plan, t.objects)


def trace_outputs(flows: "list[Flow]") -> tuple[TracedPlan, list[tuple[int, list[int], list[str]]]]:
    """Traces several flows of one root into one plan, sharing what they have in common (an op
    two flows read runs once). The plan's own output is the root's input; each flow's output is
    returned as (level id, node ids, field names), for readers of those levels (and is in
    ``plan.outputs``)."""
    from daft_flow.ops.row_ops import check_limits, check_same_views

    roots = {id(f._level.ancestors()[-1].base) for f in flows}
    if len(roots) != 1:
        raise ValueError("flows run together must grow from the same root flow")
    check_same_views(flows)
    t = Tracer()
    # Inputs of every output first, so the outputs (sink writes) run after every op they share a
    # level with: a row that failed anywhere upstream is never written.
    for flow in flows:
        t.level(flow._level)
        for expr in flow._fields.values():
            for arg in expr.inputs():
                t.node(arg, ())
    outputs = []
    for flow in flows:
        level_id = t.level(flow._level)
        nodes, names = [], []
        for name, expr in flow._fields.items():
            node_id, _ = t.node(expr, (), name)
            nodes.append(node_id)
            names.append(name)
        outputs.append((level_id, nodes, names))
        t.plan.outputs.add(level=level_id, nodes=nodes, names=names)
    t.plan.output_level = 0
    t.plan.output_nodes.append(t.element_node[0])
    t.plan.output_names.append(t.plan.root_field)
    check_limits(t.plan, several_outputs=True)
    return TracedPlan(t.plan, t.objects), outputs


def with_output(traced: TracedPlan, level: int, nodes: list[int], names: list[str]) -> TracedPlan:
    """A copy of ``traced`` whose output is ``nodes`` of ``level`` (for reading one of several outputs)."""
    msg = ir.Plan()
    msg.CopyFrom(traced.plan)
    msg.output_level = level
    del msg.output_nodes[:]
    del msg.output_names[:]
    msg.output_nodes.extend(nodes)
    msg.output_names.extend(names)
    return TracedPlan(msg, traced.objects)
