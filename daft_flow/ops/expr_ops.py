"""Native expressions: the op family behind Field operators and the .str/.json/.list/.embedding
methods.

A ``NativeExpr`` is one call of a kernel of the native registry (``cpp/src/expr``) on fields and
literals. It is typed when it is built: the argument types are checked here (messages name the
flow, the field and the op) and the call is bound once by the native registry itself
(``_core.check_kernel``), so a bad regex or JSON path fails at construction too. In the IR it is an
``Expression`` node; the physical planner fuses consecutive expression nodes of a level (and its
filters) into one native program (``fuse_programs``).
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from daft_flow.expressions import Field, deepest_flow
from daft_flow.ops.registry import Expr, register
from daft_flow.types import DataType, dtype_of

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer

_INT64 = (-(2**63), 2**63 - 1)
_ELEMENT_KINDS = ("bool", "int", "float", "str")
_SCALAR_KINDS = ("bool", "int", "float", "str", "JSON", "HTML")


class Literal:
    """A constant operand: ``value`` used as a value of ``dtype``."""

    def __init__(self, value: Any, dtype: DataType) -> None:
        self.value = value
        self.dtype = dtype

    def __repr__(self) -> str:
        if isinstance(self.value, list):
            return f"[{len(self.value)} floats]"
        return repr(self.value)


@register
class NativeExpr(Expr):
    """``function(*args)`` of the native kernel registry; ``options`` are constant parameters (a
    regex, a JSON path); ``op`` is how plans and errors name it (``str.lower``, ``*``)."""

    kind = "expression"
    explains_inputs = True  # its explain() line writes its operands, literals included

    def __init__(self, function: str, args: tuple["Expr | Literal", ...], options: tuple[Any, ...], dtype: DataType,
                 op: str) -> None:
        self.function = function
        self.args = args
        self.options = options
        self.dtype = dtype
        self.op = op

    def label(self) -> str:
        return self.op

    def inputs(self) -> tuple[Expr, ...]:
        return tuple(a for a in self.args if isinstance(a, Expr))

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        node.expression.CopyFrom(expression_msg(self))

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        return explain_expression(node)

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        e = node.expression
        operands = [["input", o.input] if o.WhichOneof("value") == "input" else
                    ["literal", _plain(literal_value(o.literal)), _type_name(o.literal)] for o in e.operands]
        return {"function": e.function, "operands": operands,
                "options": [_plain(literal_value(o)) for o in e.options]}

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        from daft_flow.plan.trace import dtype_from_ir

        e = node.expression
        operands: list[Expr | Literal] = []
        for o in e.operands:
            if o.WhichOneof("value") == "input":
                operands.append(args[o.input])
            else:
                operands.append(Literal(literal_value(o.literal), dtype_from_ir(o.literal.type)))
        return NativeExpr(e.function, tuple(operands), tuple(literal_value(o) for o in e.options),
                          dtype_from_ir(node.type), e.op)

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        lower_fused(node, ctx)


class FilterStep(Expr):
    """The filter node of a filtered level (see ``ops/row_ops.py``): not a value any field holds."""

    kind = "filter"
    explains_inputs = True

    def __init__(self, predicate: Expr) -> None:
        self.predicate = predicate
        self.dtype = DataType("bool")

    def label(self) -> str:
        return "filter"

    def inputs(self) -> tuple[Expr, ...]:
        return (self.predicate,)

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        return f"filter(#{node.inputs[0]})"

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        return FilterStep(args[0])

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        lower_fused(node, ctx)


register(FilterStep)


def _plain(value: Any) -> Any:
    # NaN and infinities are not JSON: name them (fingerprints hash plain data).
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _type_name(literal: Any) -> str:
    from daft_flow.plan.trace import dtype_from_ir

    return str(dtype_from_ir(literal.type)) if literal.HasField("type") else ""


# -- types ----------------------------------------------------------------------------------------

def native_type(t: DataType) -> str | None:
    """The type name the native engine reads for ``t``, or None if expressions cannot use it."""
    if t.kind in _SCALAR_KINDS:
        return t.kind
    if t.kind == "Embedding":
        return str(t)
    if t.kind == "list" and t.element is not None and t.element.kind in _ELEMENT_KINDS:
        return f"list[{t.element.kind}]"
    return None


def _from_native(name: str) -> DataType:
    if name.startswith("list["):
        return DataType.list_of(_from_native(name[5:-1]))
    if name.startswith("Embedding"):
        return DataType.embedding(int(name[10:-1])) if "[" in name else DataType.embedding(None)
    return DataType(name)


def describe(arg: "Field | Literal") -> str:
    if isinstance(arg, Field):
        return f"field {arg.name!r} of flow {arg.flow.name!r} ({arg.dtype})"
    return f"the literal {arg!r} ({arg.dtype})"


def _is_text(t: DataType) -> bool:
    return t.kind in ("str", "HTML", "JSON")


def _is_number(t: DataType) -> bool:
    return t.kind in ("int", "float")


# -- literals -------------------------------------------------------------------------------------

def to_operand(value: Any, like: DataType | None, op: str) -> "Field | Literal":
    """A Field as is; a Python value as a Literal (None takes the type of the other operand)."""
    if isinstance(value, Field):
        return value
    if value is None:
        if like is None:
            raise TypeError(f"{op}: a None literal needs a field beside it to take its type")
        return Literal(None, like)
    if isinstance(value, bool):
        return Literal(value, DataType("bool"))
    if isinstance(value, numbers.Integral):
        v = int(value)
        if not _INT64[0] <= v <= _INT64[1]:
            raise OverflowError(f"{op}: the literal {v} does not fit in 64 bits")
        return Literal(v, DataType("int"))
    if isinstance(value, numbers.Real):
        return Literal(float(value), DataType("float"))
    if isinstance(value, str):
        return Literal(value, like if like is not None and like.kind in ("str", "HTML") else DataType("str"))
    if _is_vector(value):
        floats = [float(x) for x in value]
        return Literal(floats, DataType.embedding(len(floats) or None))
    raise TypeError(f"{op}: cannot use a {type(value).__name__} value in an expression; literals are None, bool, "
                    "int, float, str or (for embeddings) a sequence of numbers")


def _is_vector(value: Any) -> bool:
    if isinstance(value, (str, bytes, dict)):
        return False
    try:
        return all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in value)
    except TypeError:
        return False


# -- building -------------------------------------------------------------------------------------

def _expr_text(op: str, args: Sequence["Field | Literal"], method: bool) -> str:
    names = [a.name if isinstance(a, Field) else repr(a) for a in args]
    if method:
        text = f"{names[0]}.{op}({', '.join(names[1:])})"
    elif len(names) == 2:
        text = f"({names[0]} {op} {names[1]})"
    else:
        text = f"{op}({', '.join(names)})"
    return text if len(text) <= 80 else text[:77] + "..."


def call(function: str, args: Sequence["Field | Literal"], *, op: str, options: Iterable[Any] = (),
         dtype: DataType | None = None, method: bool = True) -> Field:
    """Builds ``function(*args)`` as a Field, checking it now: argument types (the message names
    the flow, field and op) and options (the native registry binds the call once)."""
    fields = [a for a in args if isinstance(a, Field)]
    if not fields:
        raise TypeError(f"{op}: an expression needs at least one field")
    native: list[str] = []
    for a in args:
        name = native_type(a.dtype)
        if name is None:
            raise TypeError(f"{op} cannot use {describe(a)}: expressions take bool, int, float, str, JSON, HTML, "
                            "list[bool|int|float|str] and Embedding values (use run_python for others)")
        native.append(name)
    options = tuple(options)
    from daft_flow import _core

    try:
        result = _core.check_kernel(function, native, list(options))
    except TypeError as e:
        raise TypeError(f"{op} cannot take {', '.join(describe(a) for a in args)} ({e})") from None
    except ValueError as e:
        raise ValueError(f"{op} on {describe(fields[0])}: {e}") from None
    target = deepest_flow(tuple(fields))
    out = dtype if dtype is not None else _from_native(result)
    operands = tuple(a._expr if isinstance(a, Field) else a for a in args)
    expr = NativeExpr(function, operands, options, out, op)
    return Field(expr, target, _expr_text(op, args, method))


def require(field: Field, op: str, accepts: str, ok: bool) -> None:
    """Raises the construction-time TypeError naming flow, field and op."""
    if not ok:
        raise TypeError(f"{op} needs {accepts}, but field {field.name!r} of flow {field.flow.name!r} is {field.dtype}")


# -- operators ------------------------------------------------------------------------------------

_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod"}
_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def binary(op: str, left: Any, right: Any) -> Field:
    """``left op right`` for the Python operators on fields (one side may be a literal)."""
    like = left.dtype if isinstance(left, Field) else right.dtype if isinstance(right, Field) else None
    a, b = to_operand(left, like, op), to_operand(right, like, op)
    if op in _ARITH:
        function = _ARITH[op]
        if op == "+" and _is_text(a.dtype) and _is_text(b.dtype):
            return call("add", [a, b], op="+", dtype=DataType("str"), method=False)
        for x in (a, b):
            if not _is_number(x.dtype):
                other = "numbers (or two str, for +)" if op == "+" else "numbers"
                raise TypeError(f"{op} needs {other}, but {describe(x)} is not")
        return call(function, [a, b], op=op, method=False)
    if op in _COMPARE:
        if not _comparable(a.dtype, b.dtype):
            raise TypeError(f"{op} compares two numbers, two str or two bools, not {describe(a)} and {describe(b)}")
        return call(_COMPARE[op], [a, b], op=op, method=False)
    if op in ("&", "|"):
        for x in (a, b):
            if x.dtype.kind != "bool":
                raise TypeError(f"{op} combines bools (use it on comparisons: (a > 1) & (b < 2)), but {describe(x)} "
                                "is not a bool")
        return call("and" if op == "&" else "or", [a, b], op=op, method=False)
    raise AssertionError(op)


def _comparable(a: DataType, b: DataType) -> bool:
    return (_is_number(a) and _is_number(b)) or (_is_text(a) and _is_text(b)) or (a.kind == b.kind == "bool")


def unary(op: str, field: Field) -> Field:
    if op == "-":
        require(field, "-", "a number", _is_number(field.dtype))
        return call("neg", [field], op="-", method=False)
    require(field, "~", "a bool", field.dtype.kind == "bool")
    return call("not", [field], op="~", method=False)


def if_else(cond: Any, then: Any, otherwise: Any) -> Field:
    """``then`` where ``cond`` is true, else ``otherwise`` (null where ``cond`` is null). The branches
    may be fields or literals; int and float branches give a float."""
    if not isinstance(cond, Field):
        raise TypeError(f"if_else() needs a bool field as condition, got {type(cond).__name__}")
    require(cond, "if_else()", "a bool condition", cond.dtype.kind == "bool")
    like = then.dtype if isinstance(then, Field) else otherwise.dtype if isinstance(otherwise, Field) else None
    a, b = to_operand(then, like, "if_else()"), to_operand(otherwise, like or None, "if_else()")
    if isinstance(a, Literal) and a.value is None:
        a = Literal(None, b.dtype)
    result = _unify(a.dtype, b.dtype)
    if result is None:
        raise TypeError(f"if_else() branches must have one type, got {describe(a)} and {describe(b)}")
    a, b = _coerce(a, result), _coerce(b, result)
    return call("if_else", [cond, a, b], op="if_else", dtype=result, method=False)


def _unify(a: DataType, b: DataType) -> DataType | None:
    a, b = a.required(), b.required()  # `T | None` only matters for a flow's inputs
    if a == b:
        return a
    if _is_number(a) and _is_number(b):
        return DataType("float")
    if _is_text(a) and _is_text(b):
        return DataType("str")
    if a.kind == "Embedding" and b.kind == "Embedding" and b.accepts(a):
        return a if a.dimension else b
    return None


def _coerce(x: "Field | Literal", to: DataType) -> "Field | Literal":
    """An operand of a unified type: int -> float as a cast, text kinds as they are."""
    if x.dtype.required() == to or native_type(x.dtype) == native_type(to):
        return x if isinstance(x, Field) or x.dtype.required() == to else Literal(x.value, to)
    if isinstance(x, Literal):
        return Literal(None if x.value is None else float(x.value), to)
    return cast(x, to)


def fill_null(field: Field, value: Any) -> Field:
    replacement = to_operand(value, field.dtype, "fill_null()")
    if isinstance(replacement, Literal) and replacement.value is None:
        raise TypeError("fill_null() needs a value that is not None")
    result = _unify(field.dtype, replacement.dtype)
    if result is None or (result != field.dtype and not (field.dtype.kind == "int" and result.kind == "float")):
        raise TypeError(f"fill_null() on {describe(field)} cannot use {describe(replacement)}")
    a, b = _coerce(field, result), _coerce(replacement, result)
    return call("fill_null", [a, b], op="fill_null", dtype=result)


def is_null(field: Field, negate: bool = False) -> Field:
    return call("is_not_null" if negate else "is_null", [field], op="is_not_null" if negate else "is_null")


_CASTS = {("int", "float"), ("int", "str"), ("int", "bool"), ("float", "int"), ("float", "str"), ("float", "bool"),
          ("bool", "int"), ("bool", "float"), ("bool", "str"), ("str", "int"), ("str", "float"),
          ("JSON", "str"), ("HTML", "str"), ("str", "HTML")}


def cast(field: Field, to: Any) -> Field:
    """``field`` converted to ``to`` (``int``, ``float``, ``str``, ``bool``) with Python's rules;
    a value that does not convert fails its row (ValueError / OverflowError)."""
    target = dtype_of(to, where="cast() type")
    source = field.dtype
    if source == target:
        return field
    if (source.kind, target.kind) not in _CASTS:
        raise TypeError(f"cast() cannot convert field {field.name!r} of flow {field.flow.name!r} from {source} to "
                        f"{target}; casts: int/float/bool/str between each other (not str -> bool), JSON/HTML -> str")
    native = native_type(target)
    assert native is not None
    return call("cast", [field], op=f"cast({target})", options=[native if native != "HTML" else "str"], dtype=target)


# -- IR -------------------------------------------------------------------------------------------

def literal_msg(value: Any, dtype: DataType | None = None) -> Any:
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import dtype_to_ir

    msg = ir.Literal()
    if value is None:
        msg.null_value = True
    elif isinstance(value, bool):
        msg.bool_value = value
    elif isinstance(value, int):
        msg.int_value = value
    elif isinstance(value, float):
        msg.float_value = value
    elif isinstance(value, str):
        msg.str_value = value
    else:
        msg.float_list.values.extend(value)
    if dtype is not None:
        msg.type.CopyFrom(dtype_to_ir(dtype))
    return msg


def literal_value(msg: Any) -> Any:
    which = msg.WhichOneof("value")
    if which in (None, "null_value"):
        return None
    if which == "float_list":
        return list(msg.float_list.values)
    return getattr(msg, which)


def expression_msg(expr: NativeExpr) -> Any:
    """The IR of one call; operands that are fields refer to the node's inputs in order."""
    from daft_flow.plan import flow_pb2 as ir

    msg = ir.Expression(function=expr.function, op=expr.op)
    k = 0
    for a in expr.args:
        operand = msg.operands.add()
        if isinstance(a, Literal):
            operand.literal.CopyFrom(literal_msg(a.value, a.dtype))
        else:
            operand.input = k
            k += 1
    for option in expr.options:
        msg.options.append(literal_msg(option))
    return msg


def explain_expression(node: Any) -> str:
    """``(#3 * 2)``, ``str.lower(#1)``, ``json.get(#0, 'a.b', 'int')`` for explain()."""
    e = node.expression
    parts = []
    for operand in e.operands:
        if operand.WhichOneof("value") == "input":
            parts.append(f"#{node.inputs[operand.input]}")
        else:
            value = literal_value(operand.literal)
            parts.append(f"[{len(value)} floats]" if isinstance(value, list) else repr(value))
    options = [repr(literal_value(o)) for o in e.options]
    if e.op in _ARITH or e.op in _COMPARE or e.op in ("&", "|"):
        return f"({parts[0]} {e.op} {parts[1]})"
    if e.op in ("-", "~"):
        return f"{e.op}{parts[0]}"
    return f"{e.op}({', '.join(parts + options)})"


# -- fusion and lowering -----------------------------------------------------------------------------

def fused_groups(plan: Any) -> list[list[int]]:
    """Runs of consecutive expression/filter nodes of one level, in plan order: each runs as one
    native stage. Nodes that make no stage of their own (the root input, chunk attributes) do not
    break a run; any other op does."""
    groups: list[list[int]] = []
    current: list[int] | None = None
    current_level = -1
    for node in plan.nodes:
        op = node.WhichOneof("op")
        if op in ("expression", "filter"):
            if current is not None and node.level == current_level:
                current.append(node.id)
            else:
                current, current_level = [node.id], node.level
                groups.append(current)
        elif op == "level_attribute" or (op == "level_input" and plan.levels[node.level].parent < 0):
            continue
        else:
            current = None
    return groups


def _read_outside(plan: Any, members: set[int]) -> set[int]:
    used = set(plan.output_nodes)
    for node in plan.nodes:
        if node.id not in members:
            used.update(node.inputs)
    for level in plan.levels:
        if level.parent >= 0:
            used.add(level.source_node)
    return used


def program_steps(plan: Any, members: list[int]) -> tuple[list[tuple[int, int, str]], list[tuple[Any, str]], list[tuple]]:
    """The native program of a group: (inputs, literals, steps) as _core.ExpressionProgram takes
    them. A member's value becomes a column only when it is a field or read outside the group."""
    from daft_flow.plan.trace import dtype_from_ir

    nodes = plan.nodes
    member_set = set(members)
    outside = _read_outside(plan, member_set)
    inputs: list[tuple[int, int, str]] = []
    input_reg: dict[int, int] = {}
    literals: list[tuple[Any, str]] = []
    literal_reg: list[list[int]] = []
    for m in members:
        node = nodes[m]
        regs: list[int] = []
        for n in node.inputs:
            if n not in member_set and n not in input_reg:
                input_reg[n] = len(inputs)
                inputs.append((n, nodes[n].level, native_type(dtype_from_ir(nodes[n].type)) or "?"))
        if node.WhichOneof("op") == "expression":
            for operand in node.expression.operands:
                if operand.WhichOneof("value") == "literal":
                    regs.append(len(literals))
                    literals.append((literal_value(operand.literal), native_type(dtype_from_ir(operand.literal.type))))
        literal_reg.append(regs)
    base = len(inputs) + len(literals)
    step_reg = {m: base + i for i, m in enumerate(members)}

    def reg(n: int) -> int:
        return step_reg[n] if n in member_set else input_reg[n]

    steps = []
    flow = plan.levels[nodes[members[0]].level].flow
    for i, m in enumerate(members):
        node = nodes[m]
        if node.WhichOneof("op") == "filter":
            steps.append(("filter", [reg(node.inputs[0])], [], m, False, "filter", flow))
            continue
        e = node.expression
        args, lits = [], iter(literal_reg[i])
        for operand in e.operands:
            if operand.WhichOneof("value") == "input":
                args.append(reg(node.inputs[operand.input]))
            else:
                args.append(len(inputs) + next(lits))
        output = bool(node.name) or m in outside
        options = [literal_value(o) for o in e.options]
        steps.append((e.function, args, options, m, output, e.op, node.name or e.op))
    return inputs, literals, steps


def lower_fused(node: "ir.Node", ctx: "Lowering") -> None:
    """Lowers an expression or filter node: the first node of each fused group adds the group's
    program as one stage; the others are in it already."""
    programs = ctx.shared.get("expression_programs")
    if programs is None:
        programs = ctx.shared["expression_programs"] = lower_programs(ctx.plan)
    if node.id in programs:
        program, name = programs[node.id]
        ctx.run.add_expressions(program, name, node.id)


def lower_programs(plan: Any) -> dict[int, tuple[Any, str]]:
    """For each fused group: its first node id -> (compiled native program, stage name)."""
    from daft_flow import _core

    out = {}
    for members in fused_groups(plan):
        inputs, literals, steps = program_steps(plan, members)
        program = _core.ExpressionProgram(plan.nodes[members[0]].level, inputs, literals, steps)
        out[members[0]] = (program, "expressions[" + ", ".join(s[5] for s in steps) + "]")
    return out
