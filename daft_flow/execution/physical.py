"""Lowering: a traced plan -> native pipeline stages, with each operator's batching and concurrency.

Row-wise Python functions run in the native loop over Arrow buffers (one stage, the GIL bounds
them anyway); batch functions get whole batches; async functions run as coroutines on the
runtime's event loop, several batches at once so ``max_in_flight`` stays filled; flat_map and
chain materialise child levels natively.
"""
from __future__ import annotations

from typing import Any

from daft_flow import _core
from daft_flow.execution.options import ExecutionOptions
from daft_flow.execution.python_runners import (AsListRunner, AsyncRunner, BatchRunner, LlmRunner, row_builder,
                                                row_converter)
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import TracedPlan, dtype_from_ir


_EXPANDING = ("read", "read_bytes")  # ops whose outputs are much larger than their inputs


def build_run(traced: TracedPlan, source: Any, options: ExecutionOptions, ordered: bool, usage: Any = None,
              cancellables: list[Any] | None = None) -> Any:
    """``cancellables`` collects the runners whose in-flight coroutines must be cancelled when the
    run stops early."""
    plan = traced.plan
    cancellables = cancellables if cancellables is not None else []
    run = _core.Run(source, options.memory_budget, ordered)
    nodes = plan.nodes
    # Row functions may read str/bytes root inputs from the caller's own objects (no decoding);
    # other types are re-read from Arrow so functions always see the field's declared type.
    root_type = dtype_from_ir(plan.root_type)
    root_objects = getattr(source, "objects_for", None) if root_type.kind in ("str", "bytes") else None
    for node in nodes:
        op = node.WhichOneof("op")
        level = plan.levels[node.level]
        if op == "level_attribute":
            continue  # written by the operator that makes the level (chunk_text)
        if op == "level_input" and level.HasField("chunk_text"):
            c = level.chunk_text
            run.add_chunk_text(level.parent, level.id, level.source_node, node.id, c.chunk_index_node,
                               c.start_offset_node, c.end_offset_node, c.max_chars, c.overlap, c.max_tokens,
                               c.overlap_tokens, c.tokenizer)
            continue
        if op == "tokenize":
            src = nodes[node.inputs[0]]
            run.add_tokenize(node.level, src.id, src.level, node.id, node.tokenize.tokenizer,
                             node.tokenize.add_special_tokens)
            continue
        if op == "level_input":
            if level.parent >= 0:
                run.add_explode(parent=level.parent, level=level.id, source_node=level.source_node,
                                element_node=node.id, one_to_one=level.one_to_one)
            continue
        if op == "render_template":
            run.add_render_template(node.level, node.id, list(node.render_template.literals),
                                    [(i, nodes[i].level) for i in node.inputs])
            continue
        out = dtype_from_ir(node.type)
        if op == "llm_call":
            cancellables.append(_add_llm(run, traced, node, level, out, options, usage))
            continue
        arg_types = [dtype_from_ir(nodes[i].type) for i in node.inputs]
        args = [_core.ArgSpec(i, nodes[i].level) for i in node.inputs]
        if op == "as_list":
            name = "flat_map"
            info = _core.OpInfo(node.id, node.level, args, name, node.name or name, level.flow)
            run.add_python_batch(info, AsListRunner(name, arg_types[0], out), 1)
            continue
        udf = node.python_udf
        fn = traced.callables[udf.fn.ref]
        name = udf.builtin or f"run_python({udf.fn.qualname})"
        info = _core.OpInfo(node.id, node.level, args, name, node.name or name, level.flow)
        if udf.mode == ir.PythonUdf.ROW:
            converters = [None if t.arrow_format else row_converter(t) for t in arg_types]
            run.add_python_row(info, fn, out.arrow_format, converters, row_builder(out),
                               root_objects, plan.levels[0].element_node)
        elif udf.mode == ir.PythonUdf.BATCH:
            runner = BatchRunner(fn, name, arg_types, out, udf.batch_arg_kind or "list", udf.batch_size)
            run.add_python_batch(info, runner, 1)
        else:
            on_output = None
            expanding = udf.builtin in _EXPANDING
            if expanding and hasattr(source, "expect_expansion"):
                source.expect_expansion()
                on_output = source.note_output
            if hasattr(fn, "with_defaults"):  # read(): the run's limits where the op set none
                fn = fn.with_defaults(options.read_timeout, options.read_max_bytes)
            runner = AsyncRunner(fn, name, arg_types, out, udf.max_in_flight or 100, on_output)
            cancellables.append(runner)
            # An expanding stage makes the runtime probe row sizes with the first batch and then
            # charge each admitted batch its expected footprint (in-flight reads included).
            run.add_python_batch(info, runner, options.async_concurrency, expanding)
    return run


def _add_llm(run: Any, traced: TracedPlan, node: Any, level: Any, out: Any, options: ExecutionOptions,
             usage: Any) -> Any:
    from daft_flow.llm.provider import default_provider
    from daft_flow.llm.usage import UsageReport

    c = node.llm_call
    spec = traced.callables[c.spec_ref]
    provider = traced.callables[c.provider_ref] if c.provider_ref >= 0 else default_provider()
    embed = c.kind == ir.LlmCall.EMBED
    model = c.model or (provider.embedding_model if embed else provider.model)
    name = "embed_text" if embed else "prompt"
    field = node.name or name
    report = usage if usage is not None else UsageReport()
    if all(p is not provider for p in report.providers):
        provider._begin_run()  # the run holds the provider until run_batches ends it (_end_run)
        report.providers.append(provider)
    op_usage = report.op(field if field not in report.ops else f"{field}#{node.id}", op=name, field=field,
                         flow=level.flow, model=model)
    arg = _core.ArgSpec(node.inputs[0], traced.plan.nodes[node.inputs[0]].level)
    info = _core.OpInfo(node.id, node.level, [arg], name, field, level.flow)
    runner = LlmRunner(spec, provider, model, name, out, op_usage)
    run.add_python_batch(info, runner, options.async_concurrency)
    return runner
