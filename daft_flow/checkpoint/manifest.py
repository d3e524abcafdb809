"""The checkpoint manifest (``manifest.json``) and commit records (``commits/<seq>.json``).

The manifest is small and rewritten at every commit: which plan the checkpoint belongs to, which
inputs are done (merged ranges of input indices with a check sum of their row ids), inputs that
are not done but have rows committed (their row ids, per sink), and how many commit records count.
A commit record lists what one batch committed: the files of each sink (final and staged names),
or the results file of a flow. A record is written before the manifest that counts it; rewriting
the manifest is the commit. Records beyond the manifest's count belong to a crashed attempt.
"""
from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any

FORMAT = "daft_flow.checkpoint"
VERSION = 1
MASK64 = (1 << 64) - 1


class CheckpointError(Exception):
    """A checkpoint cannot be used as asked: written by another plan, unreadable, corrupt, not
    writable, or its inputs differ from the ones given. Raised before anything is run or lost."""


@dataclass
class DoneRange:
    """Inputs ``first`` .. ``stop - 1`` are done; ``idsum``: the sum of their root row ids (mod 2**64)."""

    first: int
    stop: int
    idsum: int

    def to_json(self) -> list[Any]:
        return [self.first, self.stop, f"{self.idsum:016x}"]


@dataclass
class Manifest:
    plan_fingerprint: str
    kind: str  # "rows" (collect_batch, collect_arrow, stream) or "sinks"
    flow: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    attempts: int = 0
    complete: bool = False
    commits: int = 0
    inputs_seen: int = 0
    done: list[DoneRange] = field(default_factory=list)
    # input index -> {sink index: [row id, ...]}: rows committed for an input that is not done
    partial: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    sinks: list[dict[str, Any]] = field(default_factory=list)  # describe, target, tag, rows committed

    # -- done inputs ----------------------------------------------------------------------------------
    def add_done(self, first: int, stop: int, idsum: int) -> None:
        """Marks inputs [first, stop) done, merging with neighbouring ranges."""
        starts = [r.first for r in self.done]
        i = bisect.bisect_left(starts, first)
        self.done.insert(i, DoneRange(first, stop, idsum & MASK64))
        # merge with the previous and the next range when they touch
        if i > 0 and self.done[i - 1].stop == first:
            prev = self.done.pop(i)
            i -= 1
            self.done[i] = DoneRange(self.done[i].first, prev.stop, (self.done[i].idsum + prev.idsum) & MASK64)
        if i + 1 < len(self.done) and self.done[i + 1].first == self.done[i].stop:
            nxt = self.done.pop(i + 1)
            self.done[i] = DoneRange(self.done[i].first, nxt.stop, (self.done[i].idsum + nxt.idsum) & MASK64)

    def done_count(self) -> int:
        return sum(r.stop - r.first for r in self.done)

    def is_done(self, index: int) -> bool:
        i = bisect.bisect_right([r.first for r in self.done], index) - 1
        return i >= 0 and self.done[i].first <= index < self.done[i].stop

    # -- JSON -----------------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "plan_fingerprint": self.plan_fingerprint, "kind": self.kind,
            "flow": self.flow, "created_at": self.created_at, "updated_at": time.time(), "attempts": self.attempts,
            "complete": self.complete, "commits": self.commits, "inputs_seen": self.inputs_seen,
            "done_inputs": self.done_count(), "done": [r.to_json() for r in self.done],
            "partial": {str(k): {str(s): [f"{x:016x}" for x in ids] for s, ids in v.items()}
                        for k, v in sorted(self.partial.items())},
            "sinks": self.sinks,
        }, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "Manifest":
        """Parses a manifest; anything malformed is a ``CheckpointError`` naming the file and what
        is wrong (never a silent start from zero)."""
        def bad(why: str) -> CheckpointError:
            return CheckpointError(f"the checkpoint manifest {where} is corrupt ({why}); nothing was run. Restore it, "
                                   "or start over with resume=False (which discards the checkpoint and its sinks' "
                                   "committed output) or another checkpoint location")

        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise bad(f"not JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise bad("not a daft_flow checkpoint manifest")
        if d.get("version") != VERSION:
            raise CheckpointError(f"the checkpoint {where} has format version {d.get('version')!r}; this daft_flow reads "
                                  f"version {VERSION}")
        try:
            m = cls(plan_fingerprint=_str(d["plan_fingerprint"]), kind=_str(d["kind"]), flow=_str(d.get("flow", "")),
                    created_at=float(d["created_at"]), attempts=int(d["attempts"]), complete=bool(d["complete"]),
                    commits=int(d["commits"]), inputs_seen=int(d["inputs_seen"]))
            for item in d["done"]:
                first, stop, idsum = item
                if not (isinstance(first, int) and isinstance(stop, int) and 0 <= first < stop):
                    raise ValueError(f"bad done range {item!r}")
                m.done.append(DoneRange(first, stop, int(idsum, 16)))
            for a, b in zip(m.done, m.done[1:]):
                if b.first < a.stop:
                    raise ValueError("done ranges overlap")
            m.partial = {int(k): {int(s): [int(x, 16) for x in ids] for s, ids in v.items()}
                         for k, v in d["partial"].items()}
            m.sinks = list(d["sinks"])
            if m.kind not in ("rows", "sinks") or m.commits < 0:
                raise ValueError(f"kind {m.kind!r}, commits {m.commits}")
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
        return m


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def record_name(seq: int) -> str:
    return f"commits/{seq:010d}.json"


def encode_record(record: dict[str, Any]) -> bytes:
    """A commit record: ``seq``, the input ``span`` [first, stop) of its batch, ``files`` per sink
    ([final, staged] pairs), the ``results`` file name (or None), ``rows`` written per sink, and
    the failures of dead-lettered rows (``dead_letters``: see ``checkpoint/rows.py``)."""
    return json.dumps({"seq": record["seq"], "span": record["span"],
                       "files": {str(k): v for k, v in record["files"].items()}, "results": record["results"],
                       "rows": {str(k): v for k, v in record["rows"].items()},
                       "dead_letters": record.get("dead_letters", [])}).encode()


def decode_record(data: bytes, where: str) -> dict[str, Any]:
    try:
        d = json.loads(data)
        first, stop = d["span"]
        return {"seq": int(d["seq"]), "span": [int(first), int(stop)],
                "files": {int(k): [list(map(str, p)) for p in v] for k, v in d["files"].items()},
                "results": d["results"], "rows": {int(k): int(v) for k, v in d["rows"].items()},
                "dead_letters": [dict(x) for x in d.get("dead_letters", [])]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"the checkpoint's commit record {where} is corrupt ({type(e).__name__}: {e}); nothing "
                              "was run") from None
