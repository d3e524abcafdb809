"""Running sink flows: one pass over the inputs for every sink of a SinkFlow or Multisink (what
they share runs once), each sink getting each of its rows once, and a ``SinkResult`` per sink."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from daft_flow.errors import FlowRunError, RowFailure
from daft_flow.io.write import SinkResult

if TYPE_CHECKING:
    from daft_flow.sink_flow import SinkFlow


class _SharedErrors:
    """Lets several output readers of one run see the same original exception of a failed row."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.errors: dict[int, Any] = {}

    def take_error(self, handle: int) -> Any:
        if handle not in self.errors:
            self.errors[handle] = self.run.take_error(handle)
        return self.errors[handle]


class _Owners:
    """Hands a run's report and usage to every object it ran for (``sink.last_run()``)."""

    def __init__(self, owners: list[Any]) -> None:
        object.__setattr__(self, "_owners", owners)

    def __setattr__(self, name: str, value: Any) -> None:
        for o in self._owners:
            setattr(o, name, value)


def run_sinks(sinks: "list[SinkFlow]", values: Iterable[Any], *, on_error: str = "raise", owner: Any = None,
              **options: Any) -> list[SinkResult]:
    """Runs sink flows of one root in a single pass: what they share (fetches, LLM calls) runs once,
    and each sink gets each of its rows once. The run's report goes to each sink flow and to
    ``owner`` (the Multisink)."""
    from daft_flow.execution.results import OutputReader
    from daft_flow.execution.runner import run_batches
    from daft_flow.plan.trace import trace_outputs, with_output

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    if len({id(s._writer) for s in sinks}) != len(sinks):
        raise ValueError("the same sink flow appears twice; each would write every row twice")
    traced, outputs = trace_outputs([s.rows for s in sinks])

    def make_readers(run: Any) -> tuple[_SharedErrors, list[OutputReader]]:
        shared = _SharedErrors(run)
        return shared, [OutputReader(with_output(traced, *out), shared) for out in outputs]

    paths: list[dict[str, None]] = [{} for _ in sinks]
    failures: list[list[RowFailure]] = [[] for _ in sinks]
    written = [0] * len(sinks)
    for s in sinks:
        s._writer.begin()
    try:
        owners = _Owners([*sinks, owner] if owner is not None else list(sinks))
        for (shared, readers), batch in run_batches(traced, values, make_readers, usage_owner=owners, **options):
            for i, reader in enumerate(readers):
                out = reader.read(batch)
                where = out.columns[0].to_pylist()
                written[i] += len(where)
                for p in where:
                    paths[i].setdefault(p, None)
                failures[i].extend(out.failures)
            shared.errors.clear()
    finally:
        for s in sinks:
            s._writer.finish()
    results = []
    for i, s in enumerate(sinks):
        assert written[i] == s._writer.written, (written[i], s._writer.written)
        results.append(SinkResult(s.sink.describe(), written[i], list(paths[i]), failures[i], s.sink.result()))
    if on_error == "raise":
        failed = [f for r in results for f in r.failures]
        if failed:
            bad = [r for r in results if r.failures]
            n_inputs = len({f.input_index for f in failed})
            names = ", ".join(r.sink for r in bad)
            raise FlowRunError(f"{names}: {len(failed)} row(s) of {n_inputs} input(s) were not written; first: "
                               f"{failed[0]}", failed, results)
    return results
