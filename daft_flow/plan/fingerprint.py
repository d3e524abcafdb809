"""Fingerprints: a stable identity for every object, level and node of a plan, and for the plan.

- An object of the table: ``logic_hash.digest`` (a function's logic, a tokenizer's content, a
  provider's non-secret configuration, a sink's settings).
- A level: its origin and the parameters that make its rows, its parent level's and its source
  node's fingerprints, its rows' type.
- A node: ``op_fingerprint`` is the op alone (kind, parameters, result type): with a hash of the
  input values it keys a per-row cache. ``fingerprint`` adds the fingerprints of its inputs and its
  level: the identity of the value at this place of this plan (a Merkle hash of everything
  upstream).
- The plan: its output level and its output fields (names and node fingerprints), and for sink
  flows each sink flow's.

Only what changes results counts: not names of flows, node ids, concurrency (``max_in_flight``),
rate limits or retries, and never a secret. Digests are BLAKE2b-128 in hex.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from daft_flow.ops.registry import level_origin, node_op
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.logic_hash import digest
from daft_flow.plan.trace import TracedPlan

# Bumped when what an op computes changes for the same parameters (so old fingerprints must not
# match new results).
FINGERPRINT_VERSION = 1


def _hash(*parts: Any) -> str:
    data = json.dumps([FINGERPRINT_VERSION, *parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True, default=_not_plain)
    return hashlib.blake2b(data.encode("utf-8"), digest_size=16).hexdigest()


def _not_plain(value: Any) -> Any:
    raise TypeError(f"fingerprint parameters must be plain data, got {type(value).__name__}")


def _dtype(t: ir.DataType) -> Any:
    # `T | None` changes results (a None input fails otherwise); counted only when set, so the
    # fingerprints of types without it stay what they were.
    return [t.kind, t.dimension, _dtype(t.element) if t.HasField("element") else None] + (["optional"] if t.optional
                                                                                          else [])


def fingerprint_plan(traced: TracedPlan) -> ir.Plan:
    """Fills the fingerprints of ``traced.plan`` (objects, levels, nodes, the plan) in place and
    returns the plan."""
    plan = traced.plan
    for entry, obj in zip(plan.objects, traced.objects):
        entry.fingerprint = digest(obj)
    levels: dict[int, str] = {}
    for node in plan.nodes:
        if node.level not in levels:
            levels[node.level] = _level(plan, plan.levels[node.level], plan.nodes)
            plan.levels[node.level].fingerprint = levels[node.level]
        kind = node.WhichOneof("op")
        node.op_fingerprint = _hash("op", kind, node_op(kind).fingerprint(node, plan), _dtype(node.type))
        node.fingerprint = _hash("node", node.op_fingerprint, levels[node.level],
                                 [plan.nodes[i].fingerprint for i in node.inputs])
    plan.fingerprint = _hash("plan", int(plan.kind), _output(plan, plan.output_level, plan.output_nodes, plan.output_names),
                             [_output(plan, o.level, o.nodes, o.names) for o in plan.outputs])
    return plan


def _output(plan: ir.Plan, level: int, nodes: Any, names: Any) -> Any:
    return [plan.levels[level].fingerprint, [[name, plan.nodes[n].fingerprint] for name, n in zip(names, nodes)],
            _views(plan, level)]


def _views(plan: ir.Plan, level: int) -> Any:
    """The filters and limits of the output level and its parents: they choose which rows come
    out, not what any row's values are (so they count for the plan, not for nodes or levels)."""
    views = []
    while level >= 0:
        msg = plan.levels[level]
        filters = [n.fingerprint for n in plan.nodes if n.level == level and n.WhichOneof("op") == "filter"]
        views.append([filters, msg.input_limit if msg.HasField("input_limit") else None,
                      msg.limit if msg.HasField("limit") else None])
        level = msg.parent
    return views


def _level(plan: ir.Plan, level: ir.Level, nodes: Any) -> str:
    kind = level.WhichOneof("origin")
    element = _dtype(nodes[level.element_node].type)
    params = level_origin(kind).fingerprint(level, plan)
    if level.parent < 0:
        return _hash("root", kind, params, element)
    # Nodes come before the levels made from them, and a parent before its children.
    return _hash("level", kind, params, element, plan.levels[level.parent].fingerprint,
                 nodes[level.source_node].fingerprint)
