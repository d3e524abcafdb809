"""The input side of a run: pulls Python values from any iterable into Arrow batches."""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import pyarrow as pa

from daft_flow import _core
from daft_flow.convert import root_row_ids, values_to_arrow
from daft_flow.execution.options import ExecutionOptions
from daft_flow.types import DataType

_SIZED_KINDS = ("str", "bytes", "HTML", "JSON", "Image", "Video", "Audio", "PDF")


class InputSource:
    """Called by the runtime's source thread (GIL held) for each next batch of root rows.

    Batches start small so the first results stream out early, then double up to ``batch_rows``;
    a batch of str/bytes inputs also closes once its values reach ``batch_bytes``. A list input is
    read in place (no slice copies); other iterables are taken with ``itertools.islice``.
    Row functions reading the root field reuse the input objects (see ``objects_for``): do not
    mutate an input list while a run reads it.
    """

    def __init__(self, values: Iterable[Any], dtype: DataType, root_node: int, field: str, flow: str,
                 options: ExecutionOptions, max_inputs: int | None = None, first_rows: int = 0,
                 skip: Any = None) -> None:
        self.sequence = values if isinstance(values, list) else None
        # Arrow inputs of the root field's type are sliced, never converted (see io/sources.ArrowColumn).
        self.arrow_chunks = getattr(values, "chunks", None) if type(values).__name__ == "ArrowColumn" else None
        self.arrow_chunk: Any = None
        self.arrow_pos = 0
        self.position = 0
        self.values: Iterator[Any] = iter(values)
        self.objects: dict[int, tuple[list[Any], int]] = {}
        self.dtype, self.root_node = dtype, root_node
        self.field, self.flow = field, flow
        self.options = options
        self.next_rows = min(options.first_batch_rows, options.batch_rows)
        self.count = 0
        # limit(): read at most `max_inputs` inputs (None: all); `first_rows` starts batches that small
        # when the consumer may stop after a few rows.
        self.max_inputs = max_inputs
        if first_rows:
            self.next_rows = max(1, min(self.next_rows, first_rows))
        self.pending: list[Any] = []
        self.row_cap = options.batch_rows
        self.sized = dtype.kind in _SIZED_KINDS
        # Set when an op turns small inputs into large values (read(): a URL into a document).
        self.expanding = False
        self.output_bytes = 0
        self.output_rows = 0
        self.batches = 0  # batches handed to the runtime so far
        # A resumed checkpoint's done inputs (checkpoint.resume.DoneInputs): read past, never run.
        self.skip = skip

    # Batches of URLs are tiny, but each row may become a 50 MB document once read. Plans with such
    # ops start with small batches and, once reads report sizes, size batches so their expected
    # output stays near ``batch_bytes``; the memory budget then bounds how many are in the pipeline.
    EXPANDING_FIRST_ROWS = 1
    # After as many batches without a single successful read as the runtime probes (a wrong base
    # URL, say), batches grow as usual so an input that only fails still fails fast.
    EXPANDING_PROBES = _core.MAX_FOOTPRINT_PROBES

    def expect_expansion(self) -> None:
        self.expanding = True
        self.next_rows = min(self.next_rows, self.EXPANDING_FIRST_ROWS)

    def note_output(self, nbytes: int, rows: int) -> None:
        """Called by expanding ops (any thread, GIL held) with the bytes they produced for ``rows`` rows."""
        self.output_bytes += nbytes
        self.output_rows += rows

    def _expanding_rows(self) -> int:
        if not self.output_rows:
            if self.batches < self.EXPANDING_PROBES:
                return self.next_rows  # nothing read yet: stay small
            return min(self.next_rows * 2, self.options.batch_rows)
        per_row = max(1.0, self.output_bytes / self.output_rows)
        return max(1, min(self.options.batch_rows, int(self.options.batch_bytes / per_row)))

    def _end(self) -> None:
        if self.skip is not None:
            self.skip.note_end(self.count)  # every input was read: a checkpoint may now be complete
        return None

    def objects_for(self, first_input: int) -> Any:
        """(list, offset) holding the input objects of the batch starting at ``first_input``."""
        return self.objects.get(first_input)

    def release(self, first_input: int) -> None:
        self.objects.pop(first_input, None)

    def _room(self, rows: int) -> int:
        """``rows`` cut so the batch ends before limit() and before the next done input."""
        if self.max_inputs is not None:
            rows = min(rows, self.max_inputs - self.count)
        if self.skip is not None:
            rows = min(rows, self.skip.next_start(self.count) - self.count)
        return rows

    def _skip_done(self) -> None:
        """Reads past the inputs a resumed checkpoint has done, checking they are the same inputs
        (their row ids' sum) the checkpoint recorded."""
        skip = self.skip
        while True:
            done = skip.range_at(self.count)
            if done is None:
                return
            if self.max_inputs is not None:
                if self.count >= self.max_inputs:
                    return
            want = done.stop - self.count
            total, got = 0, 0
            while got < want:
                part = self._take(min(want - got, 65536))
                if part is None:
                    break
                total += part[0]
                got += part[1]
            self.count += got
            skip.check(done, total, got, self.count)
            if got < want:
                return

    def _take(self, n: int) -> tuple[int, int] | None:
        """Consumes the next ``n`` (at most) inputs without running them: (sum of their row ids, count)."""
        import numpy as np

        if self.arrow_chunks is not None:
            while self.arrow_chunk is None or self.arrow_pos >= len(self.arrow_chunk):
                self.arrow_chunk = next(self.arrow_chunks, None)
                self.arrow_pos = 0
                if self.arrow_chunk is None:
                    return None
            part = self.arrow_chunk.slice(self.arrow_pos, n)
            self.arrow_pos += len(part)
            ids = root_row_ids(part, self.dtype)
        else:
            if self.sequence is not None:
                values = self.sequence[self.position:self.position + n]
                self.position += len(values)
            else:
                values = self.pending[:n]
                self.pending = self.pending[n:]
                if len(values) < n:
                    values.extend(itertools.islice(self.values, n - len(values)))
            if not values:
                return None
            array, _ = values_to_arrow(values, self.dtype)
            ids = root_row_ids(array, self.dtype)
            part = values
        total = int(np.asarray(pa.array(ids), dtype=np.uint64).sum(dtype=np.uint64))
        return total, len(part)

    def _next_values(self) -> tuple[list[Any], int, int]:
        """The next candidate batch as (list, start, stop); it may be cut shorter by size."""
        limit = self._room(self.next_rows)
        if self.sequence is not None:
            start = self.position
            return self.sequence, start, min(start + limit, len(self.sequence))
        rows = self.pending[:limit]
        self.pending = self.pending[limit:]
        if len(rows) < limit:
            rows.extend(itertools.islice(self.values, limit - len(rows)))
        _core.untrack_list(rows)  # only holds the caller's values: keep the cyclic GC off it
        return rows, 0, len(rows)

    def _convert(self, values: list[Any], start: int, stop: int) -> tuple[Any, list[tuple[int, str]], int]:
        fmt = self.dtype.arrow_format
        if fmt:
            try:
                max_bytes = self.options.batch_bytes if self.sized else 0
                column, consumed = _core.from_pylist_range(values, fmt, start, stop, max_bytes)
                return column, [], consumed
            except (TypeError, OverflowError, UnicodeEncodeError):
                pass  # some value is not of the field's type: the checked path names each one
        rows = values[start:stop]
        if self.sized and len(rows) > 1:
            try:
                sizes = list(itertools.accumulate(map(len, rows)))
                if sizes[-1] > self.options.batch_bytes:
                    rows = rows[:max(1, next(i for i, s in enumerate(sizes) if s >= self.options.batch_bytes))]
            except TypeError:
                pass  # a value without a length: it fails as a row below
        array, problems = values_to_arrow(rows, self.dtype)
        return array, problems, len(rows)

    def _next_arrow(self) -> Any:
        """The next batch as a slice of the current Arrow chunk, sized by rows and bytes."""
        while self.arrow_chunk is None or self.arrow_pos >= len(self.arrow_chunk):
            self.arrow_chunk = next(self.arrow_chunks, None)
            self.arrow_pos = 0
            if self.arrow_chunk is None:
                return None
        chunk = self.arrow_chunk
        rows = self._room(self.next_rows)
        if self.sized and len(chunk):
            per_row = max(1.0, chunk.nbytes / len(chunk))
            rows = max(1, min(rows, int(self.options.batch_bytes / per_row)))
        part = chunk.slice(self.arrow_pos, rows)
        self.arrow_pos += len(part)
        self.batches += 1
        self.next_rows = min(self.next_rows * 2, self.options.batch_rows)
        first, self.count = self.count, self.count + len(part)
        return first, len(part), {self.root_node: part}, None, []

    def __call__(self) -> Any:
        if self.skip is not None:
            self._skip_done()
        if self.max_inputs is not None and self.count >= self.max_inputs:
            return self._end()  # limit() reached: the rest of the input is never read
        if self.arrow_chunks is not None:
            batch = self._next_arrow()
            return batch if batch is not None else self._end()
        values, start, stop = self._next_values()
        if start >= stop:
            return self._end()
        array, problems, consumed = self._convert(values, start, stop)
        if self.sequence is not None:
            self.position = start + consumed
        elif consumed < stop:
            self.pending = values[consumed:] + self.pending
            values = values[:consumed]
        if consumed < stop - start:
            self.row_cap = consumed  # values this large: stop growing batches past what fits
        self.batches += 1
        if self.expanding:
            self.next_rows = self._expanding_rows()
        else:
            self.next_rows = min(self.next_rows * 2, self.options.batch_rows, max(self.row_cap, 1))
        failures = [(i, self.root_node, self.field,
                     f"TypeError: input {self.count + i} {msg.replace('returned ', 'is ', 1)} for field "
                     f"{self.field!r} of flow {self.flow!r}") for i, msg in problems]
        first, self.count = self.count, self.count + consumed
        self.objects[first] = (values, start)
        # Native types hash their own ids lazily (None); others are hashed here from their storage.
        ids = None if self.dtype.arrow_format else root_row_ids(array, self.dtype)
        return first, consumed, {self.root_node: array}, ids, failures
