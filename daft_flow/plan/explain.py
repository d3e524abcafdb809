"""A readable rendering of a traced plan (what ``Flow.explain()`` returns). Each op writes its own
part of a line (``explain`` of its class in ``daft_flow/ops``)."""
from __future__ import annotations

from daft_flow.ops.registry import level_origin, node_op
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import dtype_from_ir


def explain(plan: ir.Plan) -> str:
    identity = f", fingerprint {plan.fingerprint[:16]}" if plan.fingerprint else ""
    lines = [f"daft_flow plan (IR v{plan.ir_version}{identity})"]
    if plan.outputs:  # sink flows: each writes its own level's rows
        lines += [f"output {i}: flow {plan.levels[out.level].flow!r} fields " + ", ".join(out.names)
                  for i, out in enumerate(plan.outputs)]
    else:
        lines.append(f"output: flow {plan.levels[plan.output_level].flow!r} fields " + ", ".join(plan.output_names))
    by_level: dict[int, list[ir.Node]] = {}
    for node in plan.nodes:
        by_level.setdefault(node.level, []).append(node)
    for level in plan.levels:
        how = level_origin(level.WhichOneof("origin")).explain(level, plan)
        lines.append(f"flow {level.flow!r} [level {level.id}] {how}")
        if level.HasField("input_limit"):
            lines.append(f"  reads at most {level.input_limit} input(s) (limit)")
        if level.HasField("limit"):
            lines.append(f"  at most {level.limit} row(s) come out (limit)")
        for node in by_level.get(level.id, []):
            name = node.name or "_"
            args = ", ".join(f"#{i}" for i in node.inputs)
            op = node_op(node.WhichOneof("op"))
            call = op.explain(node, plan)
            if not getattr(op, "explains_inputs", False):  # expressions write their operands themselves
                call += f"({args})" if args else ""
            if node.HasField("cache"):
                ref = node.cache.cache_ref
                call += " [cache: default]" if ref < 0 else f" [cache: {plan.objects[ref].qualname}]"
            lines.append(f"  #{node.id} {name}: {dtype_from_ir(node.type)} = {call}")
    from daft_flow.ops.expr_ops import fused_groups

    groups = fused_groups(plan)
    if groups:
        lines.append("fused native stages (one pass over each batch's columns, no Python):")
        for members in groups:
            lvl = plan.levels[plan.nodes[members[0]].level].flow
            lines.append(f"  flow {lvl!r}: " + ", ".join(f"#{m}" for m in members))
    return "\n".join(lines)
