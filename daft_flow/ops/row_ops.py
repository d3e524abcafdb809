"""Flow ops that choose rows and fields: filter, select, exclude, limit, and show's table.

``filter`` and ``limit`` return a view of the flow's level (``LevelDef.with_view_op``): the same
rows and fields, fewer of them. The tracer emits a view's filters before anything else of its
level, so ops that come after run only on the rows left, and children of filtered rows are never
made.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from daft_flow.expressions import Field
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow


def filter_flow(flow: "Flow", predicate: Any) -> "Flow":
    if not isinstance(predicate, Field):
        raise TypeError(f"filter() on flow {flow.name!r} needs a bool field expression (e.g. flow['n'] > 3), "
                        f"got {type(predicate).__name__}")
    if predicate.dtype.kind != "bool":
        raise TypeError(f"filter() needs a bool predicate, but field {predicate.name!r} of flow "
                        f"{predicate.flow.name!r} is {predicate.dtype}")
    if not any(predicate.flow._level.same_rows(lvl) for lvl in flow._level.ancestors()):
        raise ValueError(f"filter() on flow {flow.name!r}: its predicate {predicate.name!r} belongs to flow "
                         f"{predicate.flow.name!r}, which is neither that flow nor one of its parents")
    if not predicate.flow._level.same_rows(flow._level):
        raise ValueError(f"filter() on flow {flow.name!r}: the predicate {predicate.name!r} is computed per row of "
                         f"the parent flow {predicate.flow.name!r}; filter that flow instead")
    return flow._make(flow._level.with_view_op("filter", predicate._expr), flow._fields, flow._current)


def limit_flow(flow: "Flow", n: int) -> "Flow":
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"limit() on flow {flow.name!r} needs a non-negative int, got {n!r}")
    return flow._make(flow._level.with_view_op("limit", n), flow._fields, flow._current)


def select_fields(flow: "Flow", names: tuple[Any, ...], named: dict[str, Any], op: str) -> "Flow":
    fields: dict[str, Any] = {}
    for item in names:
        if isinstance(item, str):
            fields[item] = flow[item]._expr
        elif isinstance(item, Field):
            if not any(item.flow._level.same_rows(lvl) for lvl in flow._level.ancestors()):
                raise ValueError(f"{op}: field {item.name!r} belongs to flow {item.flow.name!r}, which is neither "
                                 f"flow {flow.name!r} nor one of its parents")
            fields[item.name] = item._expr
        else:
            raise TypeError(f"{op} takes field names or fields, got {type(item).__name__}")
    for name, item in named.items():
        if not isinstance(item, Field):
            raise TypeError(f"{op}: {name}= needs a field expression, got {type(item).__name__}")
        if not getattr(item._expr, "field_name", ""):
            item._expr.field_name = name
        fields[name] = item._expr
    if not fields:
        raise ValueError(f"{op} on flow {flow.name!r} keeps no field")
    current = next(reversed(fields))
    return flow._make(flow._level, fields, current)


def exclude_fields(flow: "Flow", names: Iterable[str]) -> "Flow":
    names = list(names)
    for name in names:
        flow[name]  # a KeyError lists the fields that exist
    fields = {k: v for k, v in flow._fields.items() if k not in names}
    if not fields:
        raise ValueError(f"exclude() on flow {flow.name!r} would keep no field")
    current = flow._current if isinstance(flow._current, Field) or flow._current in fields else next(reversed(fields))
    return flow._make(flow._level, fields, current)


def format_table(names: list[str], rows: list[dict[str, Any]], width: int = 40) -> str:
    """A plain-text table: one column per field, values shortened to ``width`` characters."""

    def cell(value: Any) -> str:
        text = "None" if value is None else str(value) if isinstance(value, str) else repr(value)
        text = text.replace("\n", "\\n").replace("\t", "\\t")
        return text if len(text) <= width else text[:width - 1] + "…"

    cells = [[cell(r.get(n)) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |", line.replace("-", "=")]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    out.append(line)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


# -- tracing ----------------------------------------------------------------------------------------

def apply_view(tracer: Any, view: Any) -> int:
    """Traces a filtered/limited view of a level: the level itself, then (once) its filter nodes,
    before anything else of the level is traced, and its limits on the IR level."""
    level_id = tracer.level(view.base)
    applied = tracer.views.get(level_id)
    if applied is not None:
        if not _same_ops(applied, view.view_ops):
            raise ValueError(f"flow {view.name!r} is used with different filter()/limit() steps in one run; run "
                             "them separately")
        return level_id
    tracer.views[level_id] = view.view_ops
    msg = tracer.plan.levels[level_id]
    filtered = False
    for kind, arg in view.view_ops:
        if kind == "limit":
            if not filtered and msg.parent < 0:
                msg.input_limit = min(msg.input_limit, arg) if msg.HasField("input_limit") else arg
            else:
                msg.limit = min(msg.limit, arg) if msg.HasField("limit") else arg
            continue
        if msg.HasField("limit"):
            raise ValueError(f"filter() after limit() on flow {view.name!r} (after an earlier filter): filter "
                             "before limiting")
        node, node_level = tracer.node(arg, ())
        if node_level != level_id:
            raise ValueError(f"filter() on flow {view.name!r}: its predicate is computed on another flow")
        tracer.add_node(level_id, "", DataType("bool"), [node]).filter.SetInParent()
        filtered = True
    return level_id


def _same_ops(a: tuple[tuple[str, Any], ...], b: tuple[tuple[str, Any], ...]) -> bool:
    def key(ops: tuple[tuple[str, Any], ...]) -> list[Any]:
        out = []
        for kind, arg in ops:
            while hasattr(arg, "mapping") and hasattr(arg, "expr"):  # a Mapped view of the same expression
                arg = arg.expr
            out.append((kind, id(arg) if kind == "filter" else arg))
        return out

    return key(a) == key(b)


def check_limits(plan: Any, several_outputs: bool = False) -> None:
    """A limit that only the consumer can apply (after a filter, or on a child flow) is allowed on
    the flow being collected only."""
    for level in plan.levels:
        if level.HasField("limit") and (several_outputs or level.id != plan.output_level):
            raise ValueError(f"limit() on flow {level.flow!r} after filter() (or on a child flow) applies to the "
                             "rows that come out: collect that flow itself, or call limit() before filter()")


def check_same_views(flows: list[Any]) -> None:
    """Flows run in one plan (a Multisink) must see each shared level through the same filters
    and limits: a filter drops the row for every op of the level."""
    seen: dict[int, tuple[Any, Any]] = {}
    for flow in flows:
        for level in flow._level.ancestors():
            prior = seen.setdefault(id(level.base), (level, level.view_ops))
            if not _same_ops(prior[1], level.view_ops):
                raise ValueError(f"flow {level.name!r} is used with different filter()/limit() steps in one run; "
                                 "run them separately")
