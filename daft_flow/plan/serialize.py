"""Plans that travel: ``Flow.to_bytes()`` / ``Flow.from_bytes()`` (and for sink flows).

The bytes are the plan (protobuf, with fingerprints) whose object table carries each object
pickled with cloudpickle: everything another process needs to run the flow, except secrets
(providers pickle as configuration and read their key from the environment there; see
``OpenAIProvider``'s ``api_key_env``).

What travels by value and what by reference: functions and classes of modules installed where
Python keeps installed packages (site-packages, dist-packages, the standard library) and daft_flow's
own travel by reference (module and name: the receiving side must have the same packages);
everything else travels by value (its code): ``__main__``, notebooks, and modules imported from
your own directories (your script's helpers), so a process that never imported them runs them.
Loading bytes runs pickles: only load plans from a source you trust.
"""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from typing import Any

from google.protobuf.message import DecodeError

from daft_flow.forksafe import ForkSafeLock
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.fingerprint import fingerprint_plan
from daft_flow.plan.restore import output_flow, restore_graph
from daft_flow.plan.trace import IR_VERSION, TracedPlan

_pickle_lock = ForkSafeLock()  # cloudpickle's by-value registry is process-wide


def _installed_roots() -> tuple[str, ...]:
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(os.path.realpath(path))
    for path in [*getattr(site, "getsitepackages", lambda: [])(), getattr(site, "getusersitepackages", lambda: "")()]:
        if path:
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


def _travels_by_value(name: str, module: Any, roots: tuple[str, ...]) -> bool:
    if name == "__main__" or name.partition(".")[0] == "daft_flow":
        return False  # __main__: cloudpickle pickles it by value already; daft_flow: the other side has it
    path = getattr(module, "__file__", None)
    if not path:
        return False  # builtin, frozen or namespace modules
    real = os.path.realpath(path)
    if os.sep + "site-packages" + os.sep in real or os.sep + "dist-packages" + os.sep in real:
        return False
    return not any(real.startswith(root + os.sep) for root in roots)


def pickle_objects(objects: list[Any]) -> list[bytes]:
    """cloudpickle of each object; functions and classes of modules that are not installed
    packages are pickled by value (see the module docstring)."""
    import cloudpickle

    roots = _installed_roots()
    with _pickle_lock:
        registered = []
        already = set(cloudpickle.list_registry_pickle_by_value())  # the user's own registrations stay
        for name, module in list(sys.modules.items()):
            if module is None or name in already or not _travels_by_value(name, module, roots):
                continue
            try:
                cloudpickle.register_pickle_by_value(module)
            except (ValueError, TypeError):  # not a proper module object: leave it to cloudpickle
                continue
            registered.append(module)
        try:
            return [_dumps(cloudpickle, i, obj) for i, obj in enumerate(objects)]
        finally:
            for module in registered:
                cloudpickle.unregister_pickle_by_value(module)


def _dumps(cloudpickle: Any, i: int, obj: Any) -> bytes:
    try:
        return bytes(cloudpickle.dumps(obj))
    except Exception as e:
        from daft_flow.plan.trace import object_name

        module, name = object_name(obj)
        e.add_note(f"[daft_flow] object {i} of the plan ({module}.{name}) cannot be pickled, so the plan cannot "
                   "travel; a function that holds an open resource (a lock, a connection, a file) can create it "
                   "when first called instead")
        raise


def plan_to_bytes(traced: TracedPlan) -> bytes:
    """The plan's bytes, fingerprinted, with every object of its table pickled in."""
    msg = ir.Plan()
    msg.CopyFrom(traced.plan)
    fingerprint_plan(TracedPlan(msg, traced.objects))
    for entry, data in zip(msg.objects, pickle_objects(traced.objects)):
        entry.pickled = data
    return msg.SerializeToString(deterministic=True)


def read_plan(data: bytes) -> TracedPlan:
    """Parses plan bytes and unpickles their objects. Clear errors for what is not a plan, a plan
    of another IR version, and objects that cannot be restored here."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"from_bytes() needs the bytes of a plan (from to_bytes()), got {type(data).__name__}")
    data = bytes(data)
    version = _ir_version(data)
    if version == 0:
        raise ValueError(f"these {len(data)} bytes are not a daft_flow plan (no IR version; expected the bytes of "
                         "Flow.to_bytes())")
    if version > IR_VERSION:
        raise ValueError(f"this plan was written by a newer daft_flow (IR version {version}); this daft_flow reads IR "
                         f"version {IR_VERSION}: upgrade daft_flow where the plan runs")
    if version < IR_VERSION:
        raise ValueError(f"this plan was written by an older daft_flow (IR version {version}); this daft_flow reads IR "
                         f"version {IR_VERSION}: build the flow again with this daft_flow and call to_bytes()")
    try:
        msg = ir.Plan.FromString(data)
    except DecodeError as e:
        raise ValueError(f"the plan's bytes are damaged: {e}") from None
    if len(msg.objects) and not all(entry.pickled for entry in msg.objects):
        raise ValueError("the plan's objects are not in its bytes (it was serialized without them)")
    import cloudpickle

    objects = []
    for i, entry in enumerate(msg.objects):
        try:
            objects.append(cloudpickle.loads(entry.pickled))
        except Exception as e:
            what = f"{entry.module}.{entry.qualname}" if entry.module else entry.qualname
            e.add_note(f"[daft_flow] object {i} of the plan ({what}) could not be restored here: functions and classes "
                       "of installed packages travel by reference, so the package must be installed where the plan runs")
            raise
    return TracedPlan(msg, objects)


def _ir_version(data: bytes) -> int:
    """The IR version a plan's bytes start with (``to_bytes`` writes field 1 first), or 0. Read
    before parsing anything else, so a plan of another version fails with the versions named
    even if the rest of its message changed shape."""
    if data[:1] != b"\x08":  # field 1, varint
        return 0
    value = shift = 0
    for byte in data[1:11]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value if value < 2**32 else 0
        shift += 7
    return 0


_KIND_NAMES = {ir.Plan.FLOW: "a Flow", ir.Plan.SINK_FLOW: "a SinkFlow", ir.Plan.MULTISINK: "a Multisink"}
_CLASSES = {ir.Plan.FLOW: "dflow.Flow", ir.Plan.SINK_FLOW: "dflow.SinkFlow", ir.Plan.MULTISINK: "dflow.Multisink"}


def restore(data: bytes, kind: int) -> Any:
    """The Flow, SinkFlow or Multisink whose ``to_bytes()`` made ``data`` (of plan kind ``kind``)."""
    traced = read_plan(data)
    plan = traced.plan
    if plan.kind != kind:
        raise TypeError(f"these bytes hold {_KIND_NAMES.get(plan.kind, 'another kind of plan')}, not "
                        f"{_KIND_NAMES[kind]}: use {_CLASSES.get(plan.kind, 'another')}.from_bytes()")
    levels, exprs = restore_graph(plan, traced.objects)
    if kind == ir.Plan.FLOW:
        return output_flow(levels, exprs, plan.output_level, list(plan.output_nodes), list(plan.output_names),
                           plan.current_field)
    from daft_flow.io.write import SinkWriter
    from daft_flow.sink_flow import Multisink, SinkFlow

    sinks = []
    for out in plan.outputs:
        rows = output_flow(levels, exprs, out.level, list(out.nodes), list(out.names), "")
        node = plan.nodes[out.nodes[0]]
        writer = traced.objects[node.python_udf.fn_ref] if node.HasField("python_udf") else None
        if not isinstance(writer, SinkWriter):
            raise ValueError("malformed sink plan: an output is not a write_sink")
        sinks.append(SinkFlow(rows, writer))
    if kind == ir.Plan.SINK_FLOW:
        if len(sinks) != 1:
            raise ValueError(f"malformed sink plan: {len(sinks)} outputs for one sink flow")
        return sinks[0]
    return Multisink(sinks)
