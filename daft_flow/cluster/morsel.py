"""Running one morsel of a plan where it was sent (a ``dflow-worker`` or a Ray actor).

A morsel runs through ``run_batches``, the very loop a local ``collect_batch`` uses, with its
inputs numbered from their index in the whole input: row ids, lineage, failure policies, retries,
usage and every error message are what a local run would give. Plans are kept by key (fingerprint
plus a digest of their bytes) so their functions, providers and models stay loaded across calls.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import fields
from typing import Any, Callable

import pyarrow as pa

from daft_flow.cluster.wire import encode_output, results_schema
from daft_flow.execution.options import ExecutionOptions
from daft_flow.execution.results import OutputReader
from daft_flow.execution.sinks import SharedErrors
from daft_flow.plan.serialize import read_plan
from daft_flow.plan.trace import TracedPlan, with_output

# Options a client's run sets for its morsels; memory is the worker's to divide, progress is the client's.
_CLIENT_OPTIONS = tuple(f.name for f in fields(ExecutionOptions)
                        if f.name not in ("memory_budget", "progress", "max_cost_usd"))


def client_options(options: ExecutionOptions) -> dict[str, Any]:
    """What of a client's effective options travels with its morsels."""
    return {name: getattr(options, name) for name in _CLIENT_OPTIONS}


def plan_key(fingerprint: str, data: bytes) -> str:
    """A plan's key in worker caches: its fingerprint names what it computes, the digest of its
    bytes what the fingerprint leaves out on purpose (flow names in messages, concurrency)."""
    return f"{fingerprint}-{hashlib.blake2b(data, digest_size=8).hexdigest()}"


class CachedPlan:
    """A plan read once, with a reader per output (one for a Flow, one per sink flow)."""

    def __init__(self, traced: TracedPlan) -> None:
        from daft_flow.gpu.instances import KeptInstances

        self.traced = traced
        self.instances = KeptInstances()  # class functions' instances (models), loaded once for all morsels
        plan = traced.plan
        if len(plan.outputs):
            self.outputs = [with_output(traced, o.level, list(o.nodes), list(o.names)) for o in plan.outputs]
        else:
            self.outputs = [traced]

    def make_readers(self, run: Any) -> tuple[SharedErrors, list[OutputReader]]:
        shared = SharedErrors(run)
        return shared, [OutputReader(t, shared) for t in self.outputs]

    def close(self) -> None:
        """The plan leaves the cache: its class functions' instances are closed."""
        self.instances.close()


class PlanCache:
    """Plans by key, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._plans: OrderedDict[str, CachedPlan] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        """Reads plan bytes (refusing another IR version with both versions named) and keeps them."""
        traced = read_plan(data)
        key = plan_key(traced.plan.fingerprint, bytes(data))
        with self._lock:
            if key not in self._plans:
                self._plans[key] = CachedPlan(traced)
            self._plans.move_to_end(key)
            evicted = []
            while len(self._plans) > self.capacity:
                evicted.append(self._plans.popitem(last=False)[1])
        for entry in evicted:  # a morsel still running keeps its pools until it ends; new ones make their own
            entry.close()
        return key

    def get(self, key: str) -> CachedPlan | None:
        with self._lock:
            entry = self._plans.get(key)
            if entry is not None:
                self._plans.move_to_end(key)
            return entry

    def __len__(self) -> int:
        return len(self._plans)

    def close(self) -> None:
        with self._lock:
            entries, self._plans = list(self._plans.values()), OrderedDict()
        for entry in entries:
            entry.close()


class MorselCancelled(Exception):
    """The client went away or the worker is shutting down: the morsel's run stops."""


class _Owner:
    """Receives a morsel run's usage and report (``run_batches``' ``usage_owner``)."""

    _last_usage: Any = None
    _last_run: Any = None


Emit = Callable[[pa.Schema, pa.RecordBatch, bytes], None]


def run_morsel(entry: CachedPlan, values: list[Any], first_input: int, options: dict[str, Any], emit: Emit,
               memory_budget: int, cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Runs ``values`` (inputs ``first_input``...) through the plan, calling ``emit(schema, batch,
    metadata)`` per output per runtime batch; returns what ends the morsel's stream: ``{"done":
    True, "usage": UsageReport.as_dict(), "report": RunReport.to_dict(), "dead_letters": [(key,
    retry tag, records)]}``. ``cancelled()`` is
    checked between batches; the run closes (threads joined, memory freed) on any way out."""
    from daft_flow.cluster.report import morsel_report
    from daft_flow.execution.runner import run_batches

    from daft_flow.gpu.instances import keep_instances

    holder = _Owner()
    schema = None
    dead_letters: list[Any] = []  # written by the client once it accepts the morsel
    # record=False: the morsel's report goes back to the client, not into this process's last_run().
    batches = run_batches(entry.traced, values, entry.make_readers, first_input=first_input, usage_owner=holder,
                          record=False, memory_budget=memory_budget, progress=False, dead_letters_to=dead_letters,
                          **options)
    # The run is built at the first next(): inside this block, so class functions use the kept instances.
    with keep_instances(entry.instances):
        try:
            for (shared, readers), batch in batches:
                outs = [(reader.read(batch), reader) for reader in readers]
                if schema is None:
                    schema = results_schema(outs)
                for i, (out, reader) in enumerate(outs):
                    emit(schema, *encode_output(schema, i, out, reader))
                shared.errors.clear()
                if cancelled():
                    raise MorselCancelled("the morsel's run was stopped")
        finally:
            batches.close()
    usage = holder._last_usage
    return {"done": True, "usage": usage.as_dict() if usage is not None else {},
            "report": morsel_report(holder._last_run), "dead_letters": dead_letters}
