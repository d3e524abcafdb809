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
        for node in by_level.get(level.id, []):
            name = node.name or "_"
            args = ", ".join(f"#{i}" for i in node.inputs)
            call = node_op(node.WhichOneof("op")).explain(node, plan) + (f"({args})" if args else "")
            lines.append(f"  #{node.id} {name}: {dtype_from_ir(node.type)} = {call}")
    return "\n".join(lines)
