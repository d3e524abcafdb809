"""Tracing: a Flow's expression graph -> the protobuf IR (``daft_flow.ir.Plan``).

Only what the output needs is traced: the output flow's fields, what they read, and the levels
between the root and the output flow. Python callables are kept in a side table and referenced by
index, so a traced plan never pickles anything unless it has to cross a process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from daft_flow.expressions import (AsList, Expr, LevelAttribute, LevelDef, LevelInput, LlmCall, Mapped, PythonCall,
                                   RenderTemplate, Tokenize)
from daft_flow.ops.expr_ops import NativeExpr, expression_msg
from daft_flow.ops.python_udf import ASYNC, BATCH, PythonUdf, callable_name
from daft_flow.plan import flow_pb2 as ir
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow

IR_VERSION = 3  # 2: render_template and llm_call nodes; 3: expression and filter nodes, level limits

_MODES = {"row": ir.PythonUdf.ROW, BATCH: ir.PythonUdf.BATCH, ASYNC: ir.PythonUdf.ASYNC}


@dataclass
class TracedPlan:
    plan: ir.Plan
    callables: list[Callable[..., Any]] = field(default_factory=list)


def dtype_to_ir(t: DataType) -> ir.DataType:
    msg = ir.DataType(kind=t.kind, dimension=t.dimension)
    if t.element is not None:
        msg.element.CopyFrom(dtype_to_ir(t.element))
    return msg


def dtype_from_ir(msg: ir.DataType) -> DataType:
    element = dtype_from_ir(msg.element) if msg.HasField("element") else None
    return DataType(msg.kind, element=element, dimension=msg.dimension)


Maps = tuple[dict[LevelDef, LevelDef], ...]


class _Tracer:
    def __init__(self) -> None:
        self.plan = ir.Plan(ir_version=IR_VERSION)
        self.callables: list[Callable[..., Any]] = []
        self.callable_refs: dict[int, int] = {}
        self.level_ids: dict[LevelDef, int] = {}
        self.level_depth: dict[int, int] = {}
        self.element_node: dict[int, int] = {}
        self.attribute_node: dict[tuple[int, str], int] = {}
        self.nodes: dict[tuple[int, tuple[int, ...]], tuple[int, int]] = {}
        self.keep_alive: list[Any] = []
        self.views: dict[int, tuple[tuple[str, Any], ...]] = {}  # IR level -> the filter/limit steps applied

    @staticmethod
    def resolve(level: LevelDef, maps: Maps) -> LevelDef:
        for m in maps:
            level = m.get(level, level)
        return level

    def level(self, level: LevelDef) -> int:
        if level.origin is not level:
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
            msg.one_to_one = level.one_to_one
            depth = self.level_depth[msg.parent] + 1
        else:
            self.plan.root_field = level.input_field
            self.plan.root_type.CopyFrom(dtype_to_ir(level.input_type))
            depth = 0
        msg.id = len(self.plan.levels)
        self.level_ids[level] = msg.id
        self.level_depth[msg.id] = depth
        element = self.add_node(msg.id, level.input_field, level.input_type, [], "level_input")
        msg.element_node = element
        self.element_node[msg.id] = element
        if level.chunk is not None:
            spec = level.chunk
            c = msg.chunk_text
            c.max_chars, c.overlap = spec.max_chars, spec.overlap
            c.max_tokens, c.overlap_tokens, c.tokenizer = spec.max_tokens, spec.overlap_tokens, spec.tokenizer
            for attr in ("chunk_index", "start_offset", "end_offset"):
                node_id = self.add_node(msg.id, attr, DataType("int"), [], "level_attribute", attribute=attr)
                self.attribute_node[(msg.id, attr)] = node_id
                setattr(c, f"{attr}_node", node_id)
        self.plan.levels.append(msg)
        return msg.id

    def add_node(self, level: int, name: str, dtype: DataType, inputs: list[int], kind: str,
                 udf: ir.PythonUdf | None = None, attribute: str = "", tokenize: Tokenize | None = None,
                 extra: Any = None) -> int:
        node = ir.Node(id=len(self.plan.nodes), level=level, name=name, inputs=inputs)
        node.type.CopyFrom(dtype_to_ir(dtype))
        if kind == "level_input":
            node.level_input.SetInParent()
        elif kind == "as_list":
            node.as_list.SetInParent()
        elif kind == "level_attribute":
            node.level_attribute.name = attribute
        elif kind == "render_template":
            node.render_template.literals.extend(extra)
        elif kind == "llm_call":
            node.llm_call.CopyFrom(extra)
        elif kind == "expression":
            node.expression.CopyFrom(extra)
        elif kind == "filter":
            node.filter.SetInParent()
        elif kind == "tokenize":
            assert tokenize is not None
            node.tokenize.tokenizer = tokenize.tokenizer_path
            node.tokenize.add_special_tokens = tokenize.add_special_tokens
        else:
            assert udf is not None
            node.python_udf.CopyFrom(udf)
        self.plan.nodes.append(node)
        return node.id

    def is_ancestor(self, ancestor: int, level: int) -> bool:
        while level != -1:
            if level == ancestor:
                return True
            level = self.plan.levels[level].parent
        return False

    def udf_msg(self, udf: PythonUdf) -> ir.PythonUdf:
        fn = udf.fn
        if id(fn) not in self.callable_refs:
            self.callable_refs[id(fn)] = len(self.callables)
            self.callables.append(fn)
        msg = ir.PythonUdf(mode=_MODES[udf.mode], max_in_flight=udf.max_in_flight, batch_size=udf.batch_size,
                           batch_arg_kind=udf.batch_arg_kind, builtin=udf.builtin,
                           builtin_detail=udf.builtin_detail)
        msg.fn.module = str(getattr(fn, "__module__", "") or "")
        msg.fn.qualname = callable_name(fn)
        msg.fn.ref = self.callable_refs[id(fn)]
        return msg

    def ref(self, obj: Any) -> int:
        if id(obj) not in self.callable_refs:
            self.callable_refs[id(obj)] = len(self.callables)
            self.callables.append(obj)
        return self.callable_refs[id(obj)]

    def llm_msg(self, expr: LlmCall) -> ir.LlmCall:
        import json

        spec = expr.spec
        msg = ir.LlmCall(kind=ir.LlmCall.EMBED if spec.kind == "embed" else ir.LlmCall.PROMPT, model=spec.model,
                         max_tokens=spec.max_tokens)
        msg.provider_ref = -1 if spec.provider is None else self.ref(spec.provider)
        msg.provider = "default" if spec.provider is None else spec.provider.describe()
        if spec.temperature is not None:
            msg.has_temperature, msg.temperature = True, spec.temperature
        if spec.response_format is not None:
            msg.response_format_json = json.dumps(spec.response_format, sort_keys=True)
        if spec.options:
            msg.options_json = json.dumps(spec.options, sort_keys=True, default=str)
        msg.spec_ref = self.ref(spec)
        return msg

    def combined_level(self, args: list[tuple[int, int]], what: str) -> int:
        level_id = max((lvl for _, lvl in args), key=lambda lvl: self.level_depth[lvl])
        for _, lvl in args:
            if not self.is_ancestor(lvl, level_id):
                raise ValueError(f"{what} combines fields of flows {self.plan.levels[lvl].flow!r} and "
                                 f"{self.plan.levels[level_id].flow!r}, which are not parent and child")
        return level_id

    def node(self, expr: Expr, maps: Maps, name: str = "") -> tuple[int, int]:
        """Returns (node id, level id) for ``expr`` seen through ``maps``."""
        if isinstance(expr, Mapped):
            return self.node(expr.expr, (expr.mapping, *maps), name)
        key = (id(expr), tuple(id(m) for m in maps))
        if key in self.nodes:
            node_id, level_id = self.nodes[key]
            if name and not self.plan.nodes[node_id].name:
                self.plan.nodes[node_id].name = name
            return node_id, level_id
        self.keep_alive.append(expr)
        name = name or expr.field_name
        if isinstance(expr, LevelInput):
            level_id = self.level(self.resolve(expr.level, maps))
            result = (self.element_node[level_id], level_id)
        elif isinstance(expr, PythonCall):
            args = [self.node(a, maps) for a in expr.args]
            level_id = max((lvl for _, lvl in args), key=lambda lvl: self.level_depth[lvl])
            for _, lvl in args:
                if not self.is_ancestor(lvl, level_id):
                    raise ValueError(f"{expr.udf.name} combines fields of flows {self.plan.levels[lvl].flow!r} and "
                                     f"{self.plan.levels[level_id].flow!r}, which are not parent and child")
            node_id = self.add_node(level_id, name, expr.dtype, [n for n, _ in args], "python_udf",
                                    self.udf_msg(expr.udf))
            result = (node_id, level_id)
        elif isinstance(expr, LevelAttribute):
            level_id = self.level(self.resolve(expr.level, maps))
            if (level_id, expr.name) not in self.attribute_node:
                raise ValueError(f"flow {self.plan.levels[level_id].flow!r} has no {expr.name!r}")
            result = (self.attribute_node[(level_id, expr.name)], level_id)
        elif isinstance(expr, Tokenize):
            arg, level_id = self.node(expr.arg, maps)
            result = (self.add_node(level_id, name, expr.dtype, [arg], "tokenize", tokenize=expr), level_id)
        elif isinstance(expr, RenderTemplate):
            args = [self.node(a, maps) for a in expr.args]
            level_id = self.combined_level(args, "a prompt template")
            result = (self.add_node(level_id, name, expr.dtype, [n for n, _ in args], "render_template",
                                    extra=expr.literals), level_id)
        elif isinstance(expr, LlmCall):
            arg, level_id = self.node(expr.arg, maps)
            result = (self.add_node(level_id, name, expr.dtype, [arg], "llm_call", extra=self.llm_msg(expr)), level_id)
        elif isinstance(expr, NativeExpr):
            args = [self.node(a, maps) for a in expr.inputs]
            level_id = self.combined_level(args, expr.op)
            result = (self.add_node(level_id, name, expr.dtype, [n for n, _ in args], "expression",
                                    extra=expression_msg(expr)), level_id)
        elif isinstance(expr, AsList):
            arg, level_id = self.node(expr.arg, maps)
            result = (self.add_node(level_id, name, expr.dtype, [arg], "as_list"), level_id)
        else:  # pragma: no cover - every Expr subclass is handled above
            raise TypeError(f"cannot trace {type(expr).__name__}")
        self.nodes[key] = result
        return result


def trace(flow: "Flow") -> TracedPlan:
    """Traces ``flow`` (its fields are the output) into a plan."""
    from daft_flow.ops.row_ops import check_limits

    t = _Tracer()
    out_level = t.level(flow._level)
    t.plan.output_level = out_level
    for name, expr in flow._fields.items():
        node_id, level_id = t.node(expr, (), name)
        if level_id != out_level:
            # A field defined as a parent's value: broadcast it (read by reference per row).
            pass
        t.plan.output_nodes.append(node_id)
        t.plan.output_names.append(name)
    check_limits(t.plan)
    return TracedPlan(t.plan, t.callables)


def trace_outputs(flows: "list[Flow]") -> tuple[TracedPlan, list[tuple[int, list[int], list[str]]]]:
    """Traces several flows of one root into one plan, sharing what they have in common (an op
    two flows read runs once). The plan's own output is the root's input; each flow's output is
    returned as (level id, node ids, field names), for readers of those levels."""
    from daft_flow.ops.row_ops import check_same_views

    roots = {id(f._level.ancestors()[-1].origin) for f in flows}
    if len(roots) != 1:
        raise ValueError("flows run together must grow from the same root flow")
    check_same_views(flows)
    t = _Tracer()
    # Inputs of every output first, so the outputs (sink writes) run after every op they share a
    # level with: a row that failed anywhere upstream is never written.
    for flow in flows:
        t.level(flow._level)
        for expr in flow._fields.values():
            for arg in getattr(expr, "args", ()):
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
    t.plan.output_level = 0
    t.plan.output_nodes.append(t.element_node[0])
    t.plan.output_names.append(t.plan.root_field)
    from daft_flow.ops.row_ops import check_limits

    check_limits(t.plan, several_outputs=True)
    return TracedPlan(t.plan, t.callables), outputs


def with_output(traced: TracedPlan, level: int, nodes: list[int], names: list[str]) -> TracedPlan:
    """A copy of ``traced`` whose output is ``nodes`` of ``level`` (for reading one of several outputs)."""
    msg = ir.Plan()
    msg.CopyFrom(traced.plan)
    msg.output_level = level
    del msg.output_nodes[:]
    del msg.output_names[:]
    msg.output_nodes.extend(nodes)
    msg.output_names.extend(names)
    return TracedPlan(msg, traced.callables)


def to_bytes(plan: TracedPlan, *, pickle_callables: bool = False) -> bytes:
    """Serializes a plan. With ``pickle_callables``, functions are embedded (cloudpickle) so the
    bytes can run in another process; otherwise they stay references into ``plan.callables``."""
    msg = ir.Plan()
    msg.CopyFrom(plan.plan)
    if pickle_callables:
        import cloudpickle

        for node in msg.nodes:
            if node.HasField("python_udf"):
                node.python_udf.fn.pickled = cloudpickle.dumps(plan.callables[node.python_udf.fn.ref])
    return msg.SerializeToString(deterministic=True)


def from_bytes(data: bytes, callables: list[Callable[..., Any]] | None = None) -> TracedPlan:
    """Reads a plan written by ``to_bytes``; pickled callables are restored into the table."""
    msg = ir.Plan.FromString(data)
    if msg.ir_version > IR_VERSION:
        raise ValueError(f"plan uses IR version {msg.ir_version}; this daft_flow reads up to {IR_VERSION}")
    table = list(callables or [])
    for node in msg.nodes:
        if node.HasField("python_udf") and node.python_udf.fn.pickled:
            import cloudpickle

            fn = cloudpickle.loads(node.python_udf.fn.pickled)
            ref = node.python_udf.fn.ref
            table.extend([None] * (ref + 1 - len(table)))  # type: ignore[list-item]
            table[ref] = fn
    return TracedPlan(msg, table)
