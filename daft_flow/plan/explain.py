"""A readable rendering of a traced plan (what ``Flow.explain()`` returns)."""
from __future__ import annotations

from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import dtype_from_ir

_MODE_NAMES = {ir.PythonUdf.ROW: "row-wise", ir.PythonUdf.BATCH: "batch", ir.PythonUdf.ASYNC: "async"}


def _op(node: ir.Node) -> str:
    which = node.WhichOneof("op")
    if which == "level_input":
        return "input"
    if which == "as_list":
        return "as_list"
    if which == "level_attribute":
        return node.level_attribute.name
    if which == "tokenize":
        return f"tokenize[{node.tokenize.tokenizer.rsplit('/', 1)[-1]}, special={node.tokenize.add_special_tokens}]"
    if which == "render_template":
        parts = len(node.render_template.literals)
        return f"render_template[{sum(len(x) for x in node.render_template.literals)} literal chars, {parts - 1} fields]"
    if which == "expression":
        from daft_flow.ops.expr_ops import explain_expression

        return explain_expression(node)
    if which == "filter":
        return f"filter(#{node.inputs[0]})"
    if which == "llm_call":
        c = node.llm_call
        kind = "embed_text" if c.kind == ir.LlmCall.EMBED else "prompt"
        opts = [c.provider] + ([f"model={c.model}"] if c.model else []) + \
            ([f"max_tokens={c.max_tokens}"] if c.max_tokens else []) + \
            ([f"temperature={c.temperature:g}"] if c.has_temperature else []) + \
            (["structured"] if c.response_format_json else [])
        return f"{kind}[{', '.join(opts)}]"
    udf = node.python_udf
    detail = _MODE_NAMES[udf.mode]
    if udf.mode == ir.PythonUdf.ASYNC:
        detail += f", max_in_flight={udf.max_in_flight}"
    if udf.mode == ir.PythonUdf.BATCH and udf.batch_size:
        detail += f", batch_size={udf.batch_size}"
    if udf.builtin:
        what = f"{udf.builtin}({udf.builtin_detail})" if udf.builtin_detail else udf.builtin
        return f"{what} [{detail}]"
    name = f"{udf.fn.module}.{udf.fn.qualname}" if udf.fn.module else udf.fn.qualname
    return f"run_python({name}) [{detail}]"


def explain(plan: ir.Plan) -> str:
    lines = [f"daft_flow plan (IR v{plan.ir_version})",
             f"output: flow {plan.levels[plan.output_level].flow!r} fields "
             + ", ".join(plan.output_names)]
    by_level: dict[int, list[ir.Node]] = {}
    for node in plan.nodes:
        by_level.setdefault(node.level, []).append(node)
    for level in plan.levels:
        if level.parent < 0:
            how = "root: one row per input"
        elif level.HasField("chunk_text"):
            c = level.chunk_text
            size = (f"max_tokens={c.max_tokens}, overlap_tokens={c.overlap_tokens}" if c.max_tokens
                    else f"max_chars={c.max_chars}, overlap={c.overlap}")
            how = f"child of {plan.levels[level.parent].flow!r}: one row per chunk of #{level.source_node} (chunk_text {size})"
        elif level.one_to_one:
            how = f"child of {plan.levels[level.parent].flow!r}: one row per row, from #{level.source_node} (chain)"
        else:
            how = f"child of {plan.levels[level.parent].flow!r}: one row per element of #{level.source_node} (flat_map)"
        lines.append(f"flow {level.flow!r} [level {level.id}] {how}")
        if level.HasField("input_limit"):
            lines.append(f"  reads at most {level.input_limit} input(s) (limit)")
        if level.HasField("limit"):
            lines.append(f"  at most {level.limit} row(s) come out (limit)")
        for node in by_level.get(level.id, []):
            name = node.name or "_"
            args = ", ".join(f"#{i}" for i in node.inputs)
            which = node.WhichOneof("op")
            call = _op(node) if which in ("expression", "filter") else _op(node) + (f"({args})" if args else "")
            lines.append(f"  #{node.id} {name}: {dtype_from_ir(node.type)} = {call}")
    from daft_flow.ops.expr_ops import fused_groups

    groups = fused_groups(plan)
    if groups:
        lines.append("fused native stages (one pass over each batch's columns, no Python):")
        for members in groups:
            lvl = plan.levels[plan.nodes[members[0]].level].flow
            lines.append(f"  flow {lvl!r}: " + ", ".join(f"#{m}" for m in members))
    return "\n".join(lines)
