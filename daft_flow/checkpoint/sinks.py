"""Checkpointed sink flows: every sink stages each batch's files; once the batch has left the
pipeline (every sink wrote it) the checkpoint commits it (a commit record, then the manifest) and
the staged files become final. A reader of a sink's directory therefore sees whole committed
batches only: no partial file, no row twice.

On resume, before anything runs: files a committed batch staged but did not make final yet are
made final (the crash came between commit and rename); staged files of batches that were never
committed, and final names the checkpoint does not know, are removed. Inputs that are done are
read past; inputs with rows committed but not done (one of their rows failed) run again, and
their committed rows are not written a second time (the sink skips them by row id).

An input is done when every sink wrote every one of its rows. Sinks that cannot stage (in-memory
and LanceDB sinks) cannot take part in a checkpointed run.
"""
from __future__ import annotations

from typing import Any

from daft_flow.checkpoint.manifest import CheckpointError
from daft_flow.checkpoint.rows import done_ranges
from daft_flow.checkpoint.run import Checkpoint


def open_for_sinks(location: Any, resume: Any, fingerprint: str, runs: list[Any], flow: str) -> Checkpoint:
    for r in runs:
        if not r.sink.supports_staging:
            raise CheckpointError(f"{r.sink.describe()} cannot take part in a checkpointed run: it cannot stage its "
                                  "writes and commit them later (file sinks can: JSONFileSink, ParquetSink, "
                                  "S3FileSink); nothing was run")
    ckpt = Checkpoint.open(location, fingerprint=fingerprint, kind="sinks", flow=flow, resume=resume)
    if not ckpt.fresh and len(ckpt.manifest.sinks) != len(runs):
        raise CheckpointError(f"the checkpoint at {ckpt.storage} has {len(ckpt.manifest.sinks)} sink(s), this run "
                              f"{len(runs)}; nothing was run")
    return ckpt


def begin_sinks(ckpt: Checkpoint, runs: list[Any], begun: list[Any]) -> None:
    """Starts every sink of a checkpointed run (``begin`` for a new checkpoint, ``resume`` with
    the first attempt's tag otherwise), reconciles their files with the checkpoint and makes them
    stage their writes. ``begun`` collects the sinks started (they are closed however the run ends)."""
    m = ckpt.manifest
    for i, r in enumerate(runs):
        if ckpt.fresh:
            r.sink.begin(r.columns)
        else:
            r.sink.resume(r.columns, str(m.sinks[i].get("tag", "")))
        begun.append(r)
    if ckpt.fresh:
        m.sinks = [{"sink": r.sink.describe(), "target": r.sink.target(), "tag": r.sink.run_tag(), "rows": 0}
                   for r in runs]
        for r in runs:
            r.sink.discard(r.sink.outputs()[1])  # staged files of a checkpoint that was started over
        ckpt.storage.write("manifest.json", m.to_json())
    else:
        for i, r in enumerate(runs):
            _reconcile(ckpt, i, r.sink)
    for i, r in enumerate(runs):
        r.staging({inp: set(per_sink[i]) for inp, per_sink in ckpt.partial_before.items() if i in per_sink},
                  m.attempts)


def _reconcile(ckpt: Checkpoint, i: int, sink: Any) -> None:
    committed = [pair for rec in ckpt.records for pair in rec["files"].get(i, [])]
    finals, staged = sink.outputs()
    have_final, have_staged = set(finals), set(staged)
    promote = [p for p in committed if p[0] not in have_final and p[1] in have_staged]
    missing = [p[0] for p in committed if p[0] not in have_final and p[1] not in have_staged]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise CheckpointError(f"{sink.describe()}: {len(missing)} file(s) the checkpoint at {ckpt.storage} committed "
                              f"are gone ({shown}); nothing was run. Restore them, or start over with resume=False")
    sink.promote(promote)
    known = {p[0] for p in committed}
    promoted = {p[1] for p in promote}
    orphans = [s for s in staged if s not in promoted] + [f for f in finals if f not in known]
    if orphans:
        sink.discard(orphans)


def commit_batch(ckpt: Checkpoint, runs: list[Any], batch: Any, per_sink: list[tuple[Any, Any]]) -> bool:
    """Adds one finished batch of a sink run to the checkpoint's next commit (see the module
    docstring); when that commits, makes the committed staged files final and returns True.
    ``per_sink``: (rows written, rows failed) per sink."""
    first, n = batch.first_input, batch.num_rows(0)
    # A dead-lettered row is handled (its flow's policy recorded it): its input is done.
    not_done = {f.input_index for _, failed in per_sink for f in failed if not f.dead_lettered}
    later: list[tuple[int, int, int]] = []
    if ckpt.retries is not None:  # an input with rows out in retry batches is done when they are back
        waiting, later = ckpt.retries.update(batch, not_done)
        not_done |= waiting
    done = (done_ranges(first, n, not_done, batch) if not batch.tag else []) + later
    files = {i: r.take_staged(first, first + n, batch.tag) for i, r in enumerate(runs)}
    rows = {i: len(written) for i, (written, _) in enumerate(per_sink)}
    partial: dict[int, dict[int, list[int]]] = {}
    if not_done:
        for i, (written, _) in enumerate(per_sink):
            for _, inp, rid in written:
                if inp in not_done:
                    partial.setdefault(inp, {}).setdefault(i, []).append(int(rid, 16))
    committed = ckpt.add((first, first + n), done, files={i: f for i, f in files.items() if f}, rows=rows,
                         partial=partial)
    if committed is None:
        return False
    promote(runs, committed)
    return True


def promote(runs: list[Any], committed: dict[int, list[list[str]]]) -> None:
    """Makes the committed staged files of each sink final."""
    for i, pairs in committed.items():
        if pairs:
            runs[i].sink.promote(pairs)


def finish_sinks(ckpt: Checkpoint, runs: list[Any]) -> None:
    """The run went through its inputs: the last batches are committed, staged files of writes that
    failed are removed (their rows run again on resume) and the checkpoint notes whether every
    input is done."""
    promote(runs, ckpt.commit_pending())
    for r in runs:
        leftover = r.sink.outputs()[1]
        if leftover:
            r.sink.discard(leftover)
    ckpt.finish(ckpt.done.end)


def committed_paths(ckpt: Checkpoint, i: int) -> list[str]:
    """Every final file the checkpoint committed for sink ``i``, in commit order."""
    return list(dict.fromkeys(p[0] for rec in ckpt.records for p in rec["files"].get(i, [])))
