"""``dflow.replay(dead_letters, flow)``: run the inputs of recorded failures again (after a fix)
and say which of them now succeed.

Dead letters are read from where a dead-letter sink wrote them: a directory or URL prefix
(``JSONFileSink``, ``ParquetSink``, ``S3FileSink``: every ``.jsonl``/``.json``/``.parquet`` file
under it, any fsspec protocol), one such file, a ``pyarrow.Table`` (``ArrowSink``'s result) or a
list of record dicts. Each input is run once however many of its rows were recorded (a document
with two failed chunks is one input). The inputs are decoded as the records say
(``dead_letters.decode_input``) and must be of the flow's root type.

Replaying writes through the flow as any run does: its sinks, and its dead-letter sink for
inputs that fail again (a dead-letter sink in ``mode="overwrite"`` replaced by what still fails).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daft_flow.errors import RowFailure

_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class ReplayReport:
    """What a replay did: ``inputs`` (decoded, one per recorded input, in input order),
    ``results`` (per input, what the run gave it: a row or list of rows, a ``RowFailure`` (root
    flows), or for sink flows the rows written and failed), ``succeeded`` / ``failed`` (the inputs
    that now succeed or fail again) and ``failures`` (the ``RowFailure`` of every row that failed
    again)."""

    records: int
    inputs: list[Any]
    input_indexes: list[int]  # each input's index in the run that recorded it
    results: list[Any] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)  # positions in ``inputs``
    failed: list[int] = field(default_factory=list)
    failures: list[RowFailure] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"replayed {len(self.inputs)} input(s) from {self.records} dead letter(s): {len(self.succeeded)} "
                f"succeeded, {len(self.failed)} failed again")


def read_dead_letters(source: Any) -> list[dict[str, Any]]:
    """The records at ``source`` (see the module docstring)."""
    import pyarrow as pa

    if isinstance(source, pa.Table):
        return source.to_pylist()
    if isinstance(source, (list, tuple)):
        return [dict(r) for r in source]
    if not isinstance(source, str) or not source:
        raise TypeError(f"replay() reads dead letters from a path or URL, a pyarrow Table or a list of records, got "
                        f"{type(source).__name__}")
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.endswith(_SUFFIXES) and not p.rsplit("/", 1)[-1].startswith("."))
    elif fs.exists(path):
        files = [path]
    else:
        from daft_flow.secrets import redact_url

        raise FileNotFoundError(f"replay(): no dead letters at {redact_url(source)}")
    records: list[dict[str, Any]] = []
    for p in files:
        if p.endswith(".parquet"):
            import pyarrow.parquet as pq

            with fs.open(p, "rb") as f:
                records.extend(pq.read_table(f).to_pylist())
        else:
            import json

            with fs.open(p, "rt", encoding="utf-8") as f:
                records.extend(json.loads(line) for line in f if line.strip())
    return records


def _inputs(records: list[dict[str, Any]], root_type: Any) -> tuple[list[Any], list[int]]:
    from daft_flow.execution.dead_letters import decode_input

    by_index: dict[int, Any] = {}
    for r in records:
        missing = [k for k in ("input", "input_encoding", "input_index") if k not in r]
        if missing:
            raise ValueError(f"replay(): a record has no {', '.join(missing)}: it is not a daft_flow dead letter "
                             f"(its fields: {', '.join(sorted(r))})")
        recorded = r.get("input_type")
        if recorded is not None and recorded != str(root_type):
            raise TypeError(f"replay(): the dead letters hold inputs of type {recorded}, but the flow takes "
                            f"{root_type}; replay them with the flow that recorded them")
        index = int(r["input_index"])
        if index not in by_index:
            by_index[index] = decode_input(r["input"], r["input_encoding"])
    order = sorted(by_index)
    return [by_index[i] for i in order], order


def replay(dead_letters: Any, flow: Any, **options: Any) -> ReplayReport:
    """Runs the inputs recorded in ``dead_letters`` through ``flow`` (a Flow, SinkFlow or
    Multisink) and reports what now succeeds; see the module docstring. ``options`` go to the
    run (``memory_budget=``, ...)."""
    from daft_flow.flow import Flow
    from daft_flow.sink_flow import Multisink, SinkFlow

    if isinstance(flow, Flow):
        root = flow._level.ancestors()[-1]
    elif isinstance(flow, (SinkFlow, Multisink)):
        first = flow if isinstance(flow, SinkFlow) else flow.sinks[0]
        root = first.rows._level.ancestors()[-1]
    else:
        raise TypeError(f"replay() runs a dflow.Flow, SinkFlow or Multisink, got {type(flow).__name__}")
    records = read_dead_letters(dead_letters)
    inputs, indexes = _inputs(records, root.input_type)
    report = ReplayReport(len(records), inputs, indexes)
    if not inputs:
        return report
    if isinstance(flow, Flow):
        results = flow.collect_batch(inputs, on_error="return", **options)
        failed_inputs = set()
        for i, result in enumerate(results):
            items = result if isinstance(result, list) else [result]
            bad = [x for x in items if isinstance(x, RowFailure)]
            report.failures.extend(bad)
            if bad:
                failed_inputs.add(i)
        report.results = results
    else:
        outcome = flow.collect_batch(inputs, on_error="return", **options)
        sinks = outcome if isinstance(outcome, list) else [outcome]
        failed_inputs = {f.input_index for s in sinks for f in s.failures}
        report.failures = [f for s in sinks for f in s.failures]
        report.results = sinks
    report.failed = sorted(failed_inputs)
    report.succeeded = [i for i in range(len(inputs)) if i not in failed_inputs]
    return report
