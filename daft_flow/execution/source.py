"""The input side of a run: pulls Python values from any iterable into Arrow batches."""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

from daft_flow import _core
from daft_flow.execution.convert import root_row_ids, values_to_arrow
from daft_flow.execution.options import ExecutionOptions
from daft_flow.types import DataType


class InputSource:
    """Called by the runtime's source thread (GIL held) for each next batch of root rows.

    Batches start small so the first results stream out early, then double up to ``batch_rows``;
    a batch of str/bytes inputs also closes once its values reach ``batch_bytes``. Inputs are
    taken with ``itertools.islice`` so no Python-level loop runs per input.
    """

    def __init__(self, values: Iterable[Any], dtype: DataType, root_node: int, field: str, flow: str,
                 options: ExecutionOptions) -> None:
        self.sequence = values if isinstance(values, (list, tuple)) else None
        self.position = 0
        self.values: Iterator[Any] = iter(values)
        self.objects: dict[int, list[Any]] = {}
        self.dtype, self.root_node = dtype, root_node
        self.field, self.flow = field, flow
        self.options = options
        self.next_rows = min(options.first_batch_rows, options.batch_rows)
        self.count = 0
        self.pending: list[Any] = []
        self.row_cap = options.batch_rows
        self.sized = dtype.kind in ("str", "bytes", "HTML", "JSON", "Image", "Video", "Audio", "PDF")
        # Set when an op turns small inputs into large values (read(): a URL into a document).
        self.expanding = False
        self.output_bytes = 0
        self.output_rows = 0

    # Batches of URLs are tiny, but each row may become a 50 MB document once read. Plans with such
    # ops start with small batches and, once reads report sizes, size batches so their expected
    # output stays near ``batch_bytes``; the memory budget then bounds how many are in the pipeline.
    EXPANDING_FIRST_ROWS = 1

    def expect_expansion(self) -> None:
        self.expanding = True
        self.next_rows = min(self.next_rows, self.EXPANDING_FIRST_ROWS)

    def note_output(self, nbytes: int, rows: int) -> None:
        """Called by expanding ops (any thread, GIL held) with the bytes they produced for ``rows`` rows."""
        self.output_bytes += nbytes
        self.output_rows += rows

    def _expanding_rows(self) -> int:
        if not self.output_rows:
            return self.next_rows  # nothing read yet: stay small
        per_row = max(1.0, self.output_bytes / self.output_rows)
        return max(1, min(self.options.batch_rows, int(self.options.batch_bytes / per_row)))

    def objects_for(self, first_input: int) -> Any:
        """The input objects of the batch starting at ``first_input`` (row functions reuse them)."""
        return self.objects.get(first_input)

    def release(self, first_input: int) -> None:
        self.objects.pop(first_input, None)

    def _take(self) -> list[Any]:
        limit = self.next_rows
        if self.sequence is not None:  # lists and tuples: slice, no per-item iteration
            rows = list(self.sequence[self.position:self.position + limit])
            self.position += len(rows)
        else:
            rows = self.pending[:limit]
            self.pending = self.pending[limit:]
            if len(rows) < limit:
                rows.extend(itertools.islice(self.values, limit - len(rows)))
        if self.sized and len(rows) > 1:
            try:
                total = sum(map(len, rows))
            except TypeError:  # a value of the wrong type; it fails as a row later
                return rows
            if total > self.options.batch_bytes:
                sizes = itertools.accumulate(map(len, rows))
                cut = max(1, next(i for i, s in enumerate(sizes) if s >= self.options.batch_bytes))
                if self.sequence is not None:
                    self.position -= len(rows) - cut
                else:
                    self.pending = rows[cut:] + self.pending
                rows = rows[:cut]
                self.row_cap = cut  # values this large: stop growing batches past what fits
        return rows

    def __call__(self) -> Any:
        rows = self._take()
        if not rows:
            return None
        if self.expanding:
            self.next_rows = self._expanding_rows()
        else:
            self.next_rows = min(self.next_rows * 2, self.options.batch_rows, max(self.row_cap, 1))
        array, problems = values_to_arrow(rows, self.dtype)
        failures = [(i, self.root_node, self.field,
                     f"TypeError: input {self.count + i} {msg.replace('returned ', 'is ', 1)} for field "
                     f"{self.field!r} of flow {self.flow!r}") for i, msg in problems]
        first, self.count = self.count, self.count + len(rows)
        _core.untrack_list(rows)
        self.objects[first] = rows
        # Native types hash their own ids lazily (None); others are hashed here from their storage.
        ids = None if self.dtype.arrow_format else root_row_ids(array, self.dtype)
        return first, len(rows), {self.root_node: array}, ids, failures
