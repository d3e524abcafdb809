"""Checkpoints with a retry policy: an input whose rows went to retry batches is done only once
every retry came back.

The runtime moves a failed row (and its subtree) into a retry batch per (level, input) and marks
it retrying (state 4) in the batch it left; the retry batch (``tag`` > 0) comes back later with
that input's ancestors as context and the retried rows, which may retry again. Seen from the
consumer, in batch order:

- a first-attempt batch: its inputs with retrying rows are not done yet; the sum of their root row
  ids is kept for the commit that will make them done;
- every batch: each (level, input) with retrying rows whose parent is not retrying is one retry
  batch to come (``pending[input] += 1``); a retry batch is one that came (``-= 1``);
- an input whose count is back to 0 is done then, unless one of its rows finally failed (not
  dead-lettered) in a retry batch: it runs again on resume, as a failed input does.

Until then, a sink run records the input's written rows as committed rows of an input that is not
done (``partial``: a resumed run does not write them again); a flow's rows of the input are held
here and stored with the commit that makes it done, in the order a fresh run returns them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from daft_flow.checkpoint.manifest import MASK64

RETRYING = 4  # batch.h kRowRetrying


def retry_roots(batch: Any, parents: list[int]) -> dict[int, int]:
    """Per input of ``batch``, how many retry batches left it (retrying rows whose parent stayed)."""
    groups: set[tuple[int, int]] = set()
    masks: dict[int, np.ndarray] = {}

    def mask(level: int) -> np.ndarray:
        if level not in masks:
            masks[level] = np.frombuffer(batch.failed_mask(level), dtype=np.uint8)
        return masks[level]

    for level in range(batch.num_levels):
        if batch.is_context(level) or not len(mask(level)):
            continue
        rows = np.flatnonzero(mask(level) == RETRYING)
        if not len(rows):
            continue
        parent = parents[level]
        if parent >= 0 and len(mask(parent)):
            to_parent = batch.ancestor_index(level, parent).to_numpy()
            rows = rows[mask(parent)[to_parent[rows]] != RETRYING]
        to_root = rows if level == 0 else batch.ancestor_index(level, 0).to_numpy()[rows]
        groups.update((level, batch.first_input + int(r)) for r in to_root)
    out: dict[int, int] = {}
    for _, i in groups:
        out[i] = out.get(i, 0) + 1
    return out


class PendingRetries:
    """The inputs of a checkpointed run with retries still out (see the module docstring)."""

    def __init__(self, parents: list[int]) -> None:
        self.parents = parents
        self.count: dict[int, int] = {}
        self.idsum: dict[int, int] = {}
        self.failed: set[int] = set()
        self.held: dict[int, list[pa.Table]] = {}  # a flow's rows of inputs not done yet

    def update(self, batch: Any, failed: set[int]) -> tuple[set[int], list[tuple[int, int, int]]]:
        """Takes a finished batch (``failed``: its inputs with a row that finally failed, not
        dead-lettered). Returns the inputs it touched that are not done yet, and the done ranges
        (first, stop, sum of root row ids) of inputs whose last retry came back with it."""
        touched = set(failed)
        if batch.tag:
            i = batch.first_input  # a retry batch holds one input's rows
            self.count[i] = self.count.get(i, 0) - 1
            touched.add(i)
        for i, n in retry_roots(batch, self.parents).items():
            self.count[i] = self.count.get(i, 0) + n
            touched.add(i)
            if not batch.tag and i not in self.idsum:
                k = i - batch.first_input
                self.idsum[i] = int(batch.row_id_sum(0, k, k + 1)) & MASK64
        self.failed |= {i for i in failed if i in self.count}
        waiting, done = set(), []
        for i in sorted(touched):
            c = self.count.get(i)
            if c is None:
                continue  # an input that failed without a retry: the caller's not_done has it
            if c != 0 or i not in self.idsum:  # (a retry batch seen before its first attempt's batch)
                waiting.add(i)
                continue
            del self.count[i]
            if i in self.failed or i in failed:
                self.failed.discard(i)
                self.held.pop(i, None)
                self.idsum.pop(i)
                waiting.add(i)  # not done: it runs again on resume
            else:
                done.append((i, i + 1, self.idsum.pop(i)))
        return waiting, done

    @property
    def pending(self) -> bool:
        return bool(self.count)


def track_retries(ckpt: Any, traced: Any) -> None:
    """Gives an open checkpoint a ``PendingRetries`` when a flow of the plan retries failed rows."""
    levels = traced.plan.levels
    if any(lvl.HasField("policy") and lvl.policy.HasField("retry") for lvl in levels):
        ckpt.retries = PendingRetries([lvl.parent for lvl in levels])
