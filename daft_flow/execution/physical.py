"""Lowering: a traced plan -> native pipeline stages, one per node, in plan order.

Each op lowers itself (``lower`` of its class in ``daft_flow/ops``, found through the registry)
and chooses its batching and concurrency there: row-wise Python functions run in the native loop
over Arrow buffers, batch functions get whole batches, async functions and LLM calls run as
coroutines on the runtime's event loop (several batches at once so ``max_in_flight`` stays
filled), native ops (chunk_text, tokenize, templates, flat_map/chain) never touch Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daft_flow import _core
from daft_flow.execution.options import ExecutionOptions
from daft_flow.ops.registry import node_op
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.trace import TracedPlan, dtype_from_ir
from daft_flow.types import DataType


@dataclass
class Lowering:
    """What an op's ``lower`` works with: the run being built and everything it needs."""

    run: Any  # _core.Run
    traced: TracedPlan
    source: Any  # execution.source.InputSource
    options: ExecutionOptions
    usage: Any  # llm.usage.UsageReport of the run
    cancellables: list[Any] = field(default_factory=list)  # runners to cancel when the run stops early
    root_objects: Any = None  # the source's caller-held str/bytes inputs, for row functions
    shared: dict[str, Any] = field(default_factory=dict)  # what ops compute once per run (fused programs)
    policies: list[Any] = field(default_factory=list)  # each level's policy.Policy (None: the default)
    # A checkpointed run's journal: where LLM ops without cache= save each answer as it arrives.
    journal: Any = None
    closers: list[Any] = field(default_factory=list)  # called when the run ends (caches flush their writes)
    # Output nodes whose row functions keep their result objects: the consumer makes Python rows
    # of them (reusing the objects costs less than decoding the column again).
    keep_results: frozenset[int] = frozenset()
    held_results_bytes: int = -1  # per batch, of result objects that are not also arguments (-1: no limit)

    @property
    def plan(self) -> ir.Plan:
        return self.traced.plan

    @property
    def objects(self) -> list[Any]:
        return self.traced.objects

    def timeout(self, node: ir.Node, own: float) -> float:
        """The per-call timeout of an op: its own, else its flow's policy's; 0 for none."""
        if own:
            return own
        policy = self.policies[node.level] if node.level < len(self.policies) else None
        return (policy.timeout or 0.0) if policy is not None else 0.0

    def out_type(self, node: ir.Node) -> DataType:
        return dtype_from_ir(node.type)

    def arg_types(self, node: ir.Node) -> list[DataType]:
        return [dtype_from_ir(self.plan.nodes[i].type) for i in node.inputs]

    def op_info(self, node: ir.Node, op_name: str, *, input_index: bool = False, row_id: bool = False) -> Any:
        """The runtime's description of a Python op: which node it writes, what it reads, and how
        errors name it (op, field, flow). ``input_index``: two more arguments, each row's input
        index and its batch's tag (0, or the retry batch it is in), for ops naming what they write;
        ``row_id``: then one more, each row's 64-bit row id."""
        args = [_core.ArgSpec(i, self.plan.nodes[i].level) for i in node.inputs]
        if input_index:
            args.append(_core.ArgSpec(_core.INPUT_INDEX_ARG, node.level))
            args.append(_core.ArgSpec(_core.BATCH_TAG_ARG, node.level))
        if row_id:
            args.append(_core.ArgSpec(_core.ROW_ID_ARG, node.level))
        return _core.OpInfo(node.id, node.level, args, op_name, node.name or op_name,
                            self.plan.levels[node.level].flow)


    def cache_of(self, node: ir.Node, journal: bool = False) -> Any:
        """The cache a node's rows go through: its ``cache=``, else the run's journal for ops
        that journal (``journal``: LLM ops in a checkpointed run), else None. Each cache is
        checked once per run, before anything runs (an unreachable Redis stops the run here)."""
        if node.HasField("cache"):
            from daft_flow.cache import resolve

            cache = resolve(node.cache.cache_ref, self.objects)
        elif journal and self.journal is not None:
            cache = self.journal
        else:
            return None
        checked = self.shared.setdefault("caches", {})
        if id(cache) not in checked:
            cache.check()
            checked[id(cache)] = cache
            self.closers.append(cache.flush)
        return cache

    def cached(self, node: ir.Node, runner: Any, op_name: str, journal: bool = False) -> Any:
        """``runner`` answering from the node's cache first (see ``execution/cached.py``), or
        ``runner`` itself when the node has no cache."""
        cache = self.cache_of(node, journal)
        if cache is None:
            return runner
        from daft_flow.cache import op_prefix
        from daft_flow.execution.cached import CachedRunner

        if not node.op_fingerprint:
            from daft_flow.plan.fingerprint import fingerprint_plan

            fingerprint_plan(self.traced)
        return CachedRunner(runner, cache, op_prefix(self.plan, node), self.out_type(node), op_name)


def build_run(traced: TracedPlan, source: Any, options: ExecutionOptions, ordered: bool, usage: Any = None,
              cancellables: list[Any] | None = None, monitor: Any = None, resources: list[Any] | None = None,
              journal: Any = None, closers: list[Any] | None = None, python_rows: bool = False,
              held_results_bytes: int = -1) -> Any:
    """``cancellables`` collects the runners whose in-flight coroutines must be cancelled when the
    run stops early; ``monitor`` (an ``execution.monitor.RunMonitor``) learns what each stage runs;
    ``resources`` collects what the caller opens before the run starts and closes after it ends
    (the failure policies' dead-letter sinks); ``journal`` is a checkpointed run's cache for LLM
    answers; ``closers`` collects what must be called once the run has ended (caches flushing
    their writes). ``python_rows``: the consumer makes the output rows into Python objects (row
    functions keep their results, up to ``held_results_bytes`` of new objects per batch).

    With failure policies (``with_policy``), every op but the sinks runs first, then the policy
    stage (``execution/policies.py``: retries, fail_parent, dead letters), then the sinks, so a
    sink never writes a row whose parent a child's failure is about to fail."""
    from daft_flow.execution.policies import PolicyResolver, level_policies
    from daft_flow.llm.usage import UsageReport

    plan = traced.plan
    policies = level_policies(traced)
    resolver = PolicyResolver(traced, policies) if any(p is not None for p in policies) else None
    retries = any(p is not None and p.retry is not None for p in policies)
    run = _core.Run(source, options.memory_budget, ordered, retries)
    if monitor is not None:
        run = monitor.wrap(run)
        monitor.policies = run.policies = resolver  # the results read attempts from it
    # Row functions may read str/bytes root inputs from the caller's own objects (no decoding);
    # other types are re-read from Arrow so functions always see the field's declared type.
    root_type = dtype_from_ir(plan.root_type)
    root_objects = getattr(source, "objects_for", None) if root_type.kind in ("str", "bytes") else None
    ctx = Lowering(run, traced, source, options, usage if usage is not None else UsageReport(),
                   cancellables if cancellables is not None else [], root_objects, policies=policies,
                   journal=journal, closers=closers if closers is not None else [],
                   keep_results=frozenset(plan.output_nodes) if python_rows else frozenset(),
                   held_results_bytes=held_results_bytes)
    sinks = [n for n in plan.nodes if resolver is not None and node_op(n.WhichOneof("op")).writes_out(n)]
    for node in plan.nodes:
        if not (sinks and node_op(node.WhichOneof("op")).writes_out(node)):
            node_op(node.WhichOneof("op")).lower(node, ctx)
    if resolver is not None:
        run.add_policy(resolver, [level.parent for level in plan.levels], _origin_nodes(plan))
        if resources is not None:
            resources.append(resolver)
    for node in sinks:  # nothing reads a sink's column: they can all come last
        node_op(node.WhichOneof("op")).lower(node, ctx)
    return run


def _origin_nodes(plan: ir.Plan) -> list[list[int]]:
    """Per level, the columns its rows are made with: its input and its origin's attributes (the
    only columns a retried row keeps; every other one is computed again)."""
    out: list[list[int]] = [[] for _ in plan.levels]
    for node in plan.nodes:
        if node_op(node.WhichOneof("op")).makes_rows(node):
            out[node.level].append(node.id)
    return out
