"""One checkpointed run: opening (or resuming) a checkpoint, the inputs a resumed run skips, and
committing finished batches.

Input identity: a checkpoint knows inputs by position. A resumed call must be given the same
inputs in the same order; each done range records the sum of its inputs' row ids (hashes of the
values), and the source checks it while reading past them, so other inputs are refused with a
``CheckpointError`` instead of being skipped for the wrong reason.
"""
from __future__ import annotations

import bisect
import io
import logging
import os
import time
from typing import Any

import pyarrow as pa

from daft_flow.checkpoint.manifest import (MASK64, CheckpointError, DoneRange, Manifest, decode_record, encode_record,
                                           record_name)
from daft_flow.checkpoint.storage import CheckpointStorage

_log = logging.getLogger("daft_flow")
MANIFEST = "manifest.json"
RESUME = (True, False, "force")
# Commits are grouped: at most one every COMMIT_EVERY_S, and never more often than keeps their cost
# (a manifest rewrite the file system may flush; a PUT on an object store) under 1 / COMMIT_COST_SHARE
# of the run. A crash redoes the batches finished since the last commit (LLM answers are journaled).
COMMIT_EVERY_S = 1.0
COMMIT_COST_SHARE = 40


class DoneInputs:
    """What the source reads past: the done ranges of a resumed checkpoint (see ``InputSource``)."""

    def __init__(self, ranges: list[DoneRange], where: str) -> None:
        self.ranges = ranges
        self.starts = [r.first for r in ranges]
        self.where = where
        self.end: int | None = None  # the number of inputs, once the source has read them all

    def range_at(self, index: int) -> DoneRange | None:
        i = bisect.bisect_right(self.starts, index) - 1
        if i >= 0 and self.ranges[i].first <= index < self.ranges[i].stop:
            return self.ranges[i]
        return None

    def next_start(self, index: int) -> int:
        """The first done input after ``index`` (or a very large number)."""
        i = bisect.bisect_right(self.starts, index)
        return self.ranges[i].first if i < len(self.ranges) else 1 << 62

    def check(self, done: DoneRange, idsum: int, count: int, position: int) -> None:
        """Raises if the inputs read past are not the ones the checkpoint recorded as done."""
        if count < done.stop - done.first:
            raise CheckpointError(f"the inputs end after {position} input(s), but the checkpoint at {self.where} has "
                                  f"inputs up to {done.stop - 1} done; resume with the same inputs in the same order "
                                  "(or start over with resume=False, or use a new checkpoint location)")
        if idsum & MASK64 != done.idsum:
            raise CheckpointError(f"inputs {done.first}..{done.stop - 1} are not the inputs the checkpoint at "
                                  f"{self.where} recorded as done (their values differ); resume with the same inputs "
                                  "in the same order (or start over with resume=False, or use a new checkpoint location)")

    def note_end(self, count: int) -> None:
        self.end = count


def check_resume(resume: Any) -> Any:
    if resume not in RESUME or isinstance(resume, int) and not isinstance(resume, bool):
        raise ValueError(f"resume must be True (continue the checkpoint if there is one), 'force' (also when the "
                         f"flow changed) or False (start over), got {resume!r}")
    return resume


class Checkpoint:
    """An open checkpoint (see the package docstring)."""

    def __init__(self, storage: CheckpointStorage, manifest: Manifest, fresh: bool,
                 records: list[dict[str, Any]]) -> None:
        self.storage = storage
        self.manifest = manifest
        self.fresh = fresh
        self.records = records  # commit records of earlier attempts (files, results)
        self.done = DoneInputs(list(manifest.done), repr(storage))
        self.partial_before = {k: {s: set(ids) for s, ids in v.items()} for k, v in manifest.partial.items()}
        self._journal: Any = None
        self._pending: list[Any] = []  # batches added, not committed yet
        self._last_commit = 0.0  # (so the first batch commits at once)
        self._commit_interval = COMMIT_EVERY_S  # grows when commits are slow (see COMMIT_COST_SHARE)
        self.retries: Any = None  # a PendingRetries when the plan retries rows (checkpoint/retries.py)

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: Any, *, fingerprint: str, kind: str, flow: str, resume: Any = True) -> "Checkpoint":
        check_resume(resume)
        try:
            storage = CheckpointStorage(location)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint={location!r}: {e}") from None
        where = storage.url(MANIFEST)
        try:
            data = storage.read(MANIFEST)
        except OSError as e:
            raise CheckpointError(f"the checkpoint manifest {where} cannot be read: {type(e).__name__}: {e}") from None
        if data is not None and resume is False:
            _log.info("checkpoint %s: starting over (resume=False)", storage)
            for prefix in ("commits", "results", "journal"):
                storage.delete_tree(prefix)
            data = None
        records: list[dict[str, Any]] = []
        if data is None:
            manifest = Manifest(plan_fingerprint=fingerprint, kind=kind, flow=flow)
            fresh = True
        else:
            manifest = Manifest.from_json(data, where)
            if manifest.kind != kind:
                what = {"rows": "the rows of a flow (collect_batch, collect_arrow, stream)",
                        "sinks": "sink flows (write_sink, Multisink)"}
                raise CheckpointError(f"the checkpoint at {storage} holds {what[manifest.kind]}, not "
                                      f"{what[kind]}; use another checkpoint location")
            if manifest.plan_fingerprint != fingerprint:
                if resume != "force":
                    raise CheckpointError(
                        f"the checkpoint at {storage} was written by another plan (fingerprint "
                        f"{manifest.plan_fingerprint[:16]}, this flow's is {fingerprint[:16]}): the flow changed since "
                        f"(a function, template, model or parameter). Nothing was run. Pass resume='force' to keep "
                        f"the {manifest.done_count()} input(s) it has done as they are and run the rest with this "
                        "flow, resume=False to start over, or use another checkpoint location")
                _log.warning("checkpoint %s: resuming with another plan (resume='force'): the %d input(s) done "
                             "before keep their results", storage, manifest.done_count())
                manifest.plan_fingerprint = fingerprint
            for seq in range(manifest.commits):
                raw = storage.read(record_name(seq))
                if raw is None:
                    raise CheckpointError(f"the checkpoint at {storage} counts {manifest.commits} commits but "
                                          f"{storage.url(record_name(seq))} is missing; nothing was run")
                records.append(decode_record(raw, storage.url(record_name(seq))))
            fresh = False
        manifest.attempts += 1
        try:
            storage.check_writable()
            storage.write(MANIFEST, manifest.to_json())  # before any work: a location we cannot write fails now
        except OSError as e:
            raise CheckpointError(f"the checkpoint location {storage} cannot be written: {type(e).__name__}: {e}; "
                                  "nothing was run") from None
        ckpt = cls(storage, manifest, fresh, records)
        ckpt._drop_orphan_records()
        return ckpt

    def _drop_orphan_records(self) -> None:
        """Commit records (and results) a crashed attempt wrote after its last commit."""
        committed = {record_name(s) for s in range(self.manifest.commits)}
        orphans = [n for n in self.storage.list("commits") if n.endswith(".json") and n not in committed]
        kept = {r["results"] for r in self.records if r["results"]}
        orphans += [n for n in self.storage.list("results") if n not in kept]
        if orphans:
            _log.info("checkpoint %s: removing %d file(s) of a crashed attempt", self.storage, len(orphans))
            self.storage.delete(orphans)

    # -- the journal -----------------------------------------------------------------------------------
    def journal(self) -> Any:
        """Where LLM ops without ``cache=`` save each answer as it arrives: a ``DiskCache`` inside a
        local checkpoint, the process's default cache for a remote one (an LMDB file cannot live in
        an object store; ``dflow.set_cache(RedisCache(...))`` shares it between machines)."""
        if self._journal is None:
            if self.storage.local:
                from daft_flow.cache.disk import DiskCache

                self._journal = DiskCache(self.storage.path("journal"), max_size="100GB")
                self._journal._durable = False  # a killed process loses nothing; no fsync per answer
            else:
                from daft_flow.cache import get_cache

                self._journal = get_cache()
        return self._journal

    # -- committing ------------------------------------------------------------------------------------
    def add(self, span: tuple[int, int], done: list[tuple[int, int, int]], *,
            files: dict[int, list[list[str]]] | None = None, results: pa.Table | None = None,
            rows: dict[int, int] | None = None, partial: dict[int, dict[int, list[int]]] | None = None,
            dead_letters: list[dict[str, Any]] | None = None) -> dict[int, list[list[str]]] | None:
        """Adds one finished batch (inputs ``span``) to the next commit: ``done`` input ranges
        (first, stop, sum of row ids), the files each sink staged for it (``[final, staged]``
        pairs) or the rows of its done inputs (``results``, with ``_input_index``), rows written
        per sink, and rows committed for inputs that are not done (``partial``: input -> sink ->
        row ids), and the failures of its dead-lettered rows (``dead_letters``, JSON). Batches are
        committed together, at most every ``COMMIT_EVERY_S`` or every
        ``COMMIT_COST_SHARE`` times the last commit's duration, whichever is longer (a commit
        rewrites the manifest, which the file system may flush): returns the files committed per
        sink when this call committed, else None (the caller makes them final)."""
        self._pending.append((span, done, files or {}, results, rows or {}, partial or {}, dead_letters or []))
        if time.monotonic() - self._last_commit >= self._commit_interval:
            started = time.monotonic()
            committed = self.commit_pending()
            self._commit_interval = max(COMMIT_EVERY_S, COMMIT_COST_SHARE * (time.monotonic() - started))
            return committed
        return None

    def commit_pending(self) -> dict[int, list[list[str]]]:
        """Commits every batch added since the last commit; returns their files per sink."""
        pending, self._pending = self._pending, []
        self._last_commit = time.monotonic()
        if not pending:
            return {}
        files: dict[int, list[list[str]]] = {}
        rows: dict[int, int] = {}
        partial: dict[int, dict[int, list[int]]] = {}
        tables = []
        dead: list[dict[str, Any]] = []
        for _, _, f, t, r, p, d in pending:
            dead.extend(d)
            for s, pairs in f.items():
                files.setdefault(s, []).extend(pairs)
            for s, n in r.items():
                rows[s] = rows.get(s, 0) + n
            for i, per_sink in p.items():  # (an input's rows may be in several batches: its retries)
                into = partial.setdefault(i, {})
                for s, ids in per_sink.items():
                    into.setdefault(s, []).extend(ids)
            if t is not None and t.num_rows:
                tables.append(t)
        span = (min(p[0][0] for p in pending), max(p[0][1] for p in pending))
        done = [d for p in pending for d in p[1]]
        for first, stop, _ in done:  # an input done by a later batch of the group has no partial rows
            for i in [k for k in partial if first <= k < stop]:
                del partial[i]
        self.commit(span, done, files=files, results=pa.concat_tables(tables) if tables else None, rows=rows,
                    partial=partial, dead_letters=dead)
        return files

    def commit(self, span: tuple[int, int], done: list[tuple[int, int, int]], *,
               files: dict[int, list[list[str]]] | None = None, results: pa.Table | None = None,
               rows: dict[int, int] | None = None, partial: dict[int, dict[int, list[int]]] | None = None,
               dead_letters: list[dict[str, Any]] | None = None) -> None:
        """Commits batches now (see ``add``): results and a commit record first, then the manifest
        that counts them; rewriting the manifest is the commit."""
        m = self.manifest
        seq = m.commits
        name = None
        if results is not None and results.num_rows:
            name = f"results/{seq:010d}.arrow"
            sink = io.BytesIO()
            with pa.ipc.new_file(sink, results.schema) as writer:
                writer.write_table(results)
            self.storage.write(name, sink.getvalue(), atomic=False)  # counted by the manifest below
        record = {"seq": seq, "span": list(span), "files": files or {}, "results": name, "rows": rows or {},
                  "dead_letters": dead_letters or []}
        self.storage.write(record_name(seq), encode_record(record), atomic=False)  # counted by the manifest below
        for first, stop, idsum in done:
            m.add_done(first, stop, idsum)
            for i in [k for k in m.partial if first <= k < stop] if m.partial else ():
                del m.partial[i]  # an input run again is done now
        for i, per_sink in (partial or {}).items():
            into = m.partial.setdefault(i, {})
            for s, ids in per_sink.items():
                into[s] = sorted(set(into.get(s, [])) | set(ids))
        for s, n in (rows or {}).items():
            if s < len(m.sinks):
                m.sinks[s]["rows"] = m.sinks[s].get("rows", 0) + n
        m.inputs_seen = max(m.inputs_seen, span[1])
        m.commits = seq + 1
        self.storage.write(MANIFEST, m.to_json())
        self.records.append(record)

    def finish(self, end: int | None) -> None:
        """The run ended; ``end``: the number of inputs when the source read them all (None when the
        run stopped early). A checkpoint whose every input is done is complete: its journal goes."""
        m = self.manifest
        if end is not None:
            m.inputs_seen = max(m.inputs_seen, end)
        complete = end is not None and m.done_count() == end and not m.partial
        if complete != m.complete or end is not None:
            m.complete = complete
            self.storage.write(MANIFEST, m.to_json())
        if complete and self.storage.local and os.path.isdir(self.storage.path("journal")):
            journal, self._journal = self._journal, None
            if journal is not None:
                journal.close()
            from daft_flow.cache.disk import forget_env

            forget_env(self.storage.path("journal"))
            self.storage.delete_tree("journal")
