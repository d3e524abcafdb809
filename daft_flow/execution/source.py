"""The input side of a run: pulls Python values from any iterable into Arrow batches."""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

from daft_flow import _core
from daft_flow.convert import UnreadableInput, root_row_ids, values_to_arrow
from daft_flow.execution.options import ExecutionOptions
from daft_flow.types import DataType

_SIZED_KINDS = ("str", "bytes", "HTML", "JSON", "Image", "Video", "Audio", "PDF")
_NONE = "is None"  # the problem of a None input in a field that is not optional
_UNREADABLE = "\0unreadable: "  # prefixes the reason an input could not be read


def _is_numpy_vector(values: Any) -> bool:
    return type(values).__module__ == "numpy" and type(values).__name__ == "ndarray" and values.ndim == 1


class InputSource:
    """Called by the runtime's source thread (GIL held) for each next batch of root rows.

    Batches start small so the first results stream out early, then double up to ``batch_rows``;
    a batch of str/bytes inputs also closes once its values reach ``batch_bytes``, and, once the
    runtime knows how many bytes a root row grows into through the whole plan (child levels
    included), a batch holds about ``batch_bytes`` (or an eighth of the memory budget) of that.
    After a batch cut short by size, batches grow back by doubling. A list input is read in place
    (no slice copies); a 1-D numpy array a slice at a time; other iterables with ``itertools.islice``.
    Row functions reading the root field reuse the input objects (see ``objects_for``): do not
    mutate an input list while a run reads it.
    """

    def __init__(self, values: Iterable[Any], dtype: DataType, root_node: int, field: str, flow: str,
                 options: ExecutionOptions, max_inputs: int | None = None, first_rows: int = 0,
                 skip: Any = None) -> None:
        self.array = values if _is_numpy_vector(values) else None
        self.sequence = values if isinstance(values, list) else None
        # Arrow inputs of the root field's type are sliced, never converted (see io/sources.ArrowColumn).
        self.arrow_chunks = getattr(values, "chunks", None) if type(values).__name__ == "ArrowColumn" else None
        self.arrow_chunk: Any = None
        self.arrow_pos = 0
        self.position = 0
        self.values: Iterator[Any] = iter(()) if self.array is not None else iter(values)
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
        self.sized = dtype.kind in _SIZED_KINDS
        self.footprint_target = max(options.batch_bytes, options.memory_budget // 8)
        # Set when an op turns small inputs into large values (read(): a URL into a document).
        self.expanding = False
        self.output_bytes = 0
        self.output_rows = 0
        self.batches = 0  # batches handed to the runtime so far
        # A resumed checkpoint's done inputs (checkpoint.run.DoneInputs): read past, never run.
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

    def expect_fan_out(self) -> None:
        """A plan with flat_map: one input may have any number of children. The first batch is
        one row; later ones follow the runtime's measure of how large a root row grows."""
        self.next_rows = min(self.next_rows, 1)

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

    def objects_for(self, first_input: int) -> Any:
        """(list, offset) holding the input objects of the batch starting at ``first_input``."""
        return self.objects.get(first_input)

    def release(self, first_input: int) -> None:
        self.objects.pop(first_input, None)

    def _limit(self, expected_row_bytes: int) -> int:
        limit = self.next_rows
        if expected_row_bytes > 0 and not self.expanding:
            limit = min(limit, max(1, self.footprint_target // expected_row_bytes))
        if self.max_inputs is not None:
            limit = min(limit, self.max_inputs - self.count)
        if self.skip is not None:  # a batch ends before the next input a resumed checkpoint has done
            limit = min(limit, self.skip.next_start(self.count) - self.count)
        return limit

    def _skip_done(self) -> None:
        """Reads past the inputs a resumed checkpoint has done, checking they are the inputs (the
        sum of their row ids) it recorded."""
        while (done := self.skip.range_at(self.count)) is not None:
            if self.max_inputs is not None and self.count >= self.max_inputs:
                return
            want = done.stop - self.count
            total = got = 0
            while got < want:
                part = self._take(min(want - got, 65536))
                if part is None:
                    break
                total, got = total + part[0], got + part[1]
            self.count += got
            self.skip.check(done, total, got, self.count)

    def _take(self, n: int) -> tuple[int, int] | None:
        """Consumes the next ``n`` (at most) inputs without running them: (sum of their row ids, count)."""
        from daft_flow.convert import root_id_array

        if self.arrow_chunks is not None:
            part = self._next_arrow(n)
            if part is None:
                return None
        else:
            values, start, stop = self._next_values(n)
            if start >= stop:
                return None
            if self.sequence is not None:
                self.position = stop
            part = values[start:stop]
        return int(root_id_array(part, self.dtype, self.count).sum(dtype="uint64")), len(part)

    def _end(self) -> None:
        if self.skip is not None:
            self.skip.note_end(self.count)  # every input was read: a checkpoint may now be complete
        return None

    def _next_values(self, limit: int) -> tuple[list[Any], int, int]:
        """The next candidate batch as (list, start, stop); it may be cut shorter by size."""
        if self.sequence is not None:
            start = self.position
            return self.sequence, start, min(start + limit, len(self.sequence))
        if self.array is not None:
            rows = self.array[self.position:self.position + limit].tolist()  # numpy scalars -> Python
            self.position += len(rows)
            return rows, 0, len(rows)
        rows = self.pending[:limit]
        self.pending = self.pending[limit:]
        if len(rows) < limit:
            rows.extend(itertools.islice(self.values, limit - len(rows)))
        _core.untrack_list(rows)  # only holds the caller's values: keep the cyclic GC off it
        return rows, 0, len(rows)

    def _convert(self, values: list[Any], start: int, stop: int) -> tuple[Any, list[tuple[int, str]], int]:
        fmt = self.dtype.arrow_format
        optional = self.dtype.optional
        if fmt:
            try:
                max_bytes = self.options.batch_bytes if self.sized else 0
                column, consumed = _core.from_pylist_range(values, fmt, start, stop, max_bytes, optional)
                return column, [], consumed
            except (TypeError, OverflowError, UnicodeEncodeError):
                pass  # some value is not of the field's type: the checked path names each one
        rows = values[start:stop]
        if self.sized and len(rows) > 1:
            try:
                sizes = list(itertools.accumulate(map(len, rows)))
                if sizes[-1] > self.options.batch_bytes:
                    rows = rows[:next(i for i, s in enumerate(sizes) if s >= self.options.batch_bytes) + 1]
            except Exception:
                pass  # a value without a (working) length: it fails as a row below
        unreadable = {i: v.reason for i, v in enumerate(rows) if isinstance(v, UnreadableInput)}
        nulls = [] if optional or self.dtype.kind == "any" else [i for i, v in enumerate(rows) if v is None]
        if unreadable:
            rows = [None if i in unreadable else v for i, v in enumerate(rows)]
        array, problems = values_to_arrow(rows, self.dtype)
        problems += [(i, _UNREADABLE + reason) for i, reason in unreadable.items()]
        problems += [(i, _NONE) for i in nulls]
        return array, problems, len(rows)

    def _message(self, index: int, problem: str) -> str:
        where = f"for field {self.field!r} of flow {self.flow!r}"
        if problem is _NONE:
            return (f"TypeError: input {index} is None {where}, whose type {self.dtype} is not optional; declare "
                    f"the flow as Flow({self.field!r}, {self.dtype} | None) to accept None")
        if problem.startswith(_UNREADABLE):
            return f"ValueError: input {index} {where} cannot be read: {problem[len(_UNREADABLE):]}"
        return f"TypeError: input {index} {problem.replace('returned ', 'is ', 1)} {where}"

    def _next_arrow(self, limit: int) -> Any:
        """The next slice of the current Arrow chunk, sized by rows and bytes; None at the end."""
        while self.arrow_chunk is None or self.arrow_pos >= len(self.arrow_chunk):
            self.arrow_chunk = next(self.arrow_chunks, None)
            self.arrow_pos = 0
            if self.arrow_chunk is None:
                return None
        chunk = self.arrow_chunk
        rows = limit
        if self.sized and len(chunk):
            per_row = max(1.0, chunk.nbytes / len(chunk))
            rows = max(1, min(rows, int(self.options.batch_bytes / per_row)))
        part = chunk.slice(self.arrow_pos, rows)
        self.arrow_pos += len(part)
        return part

    def _arrow_is_clean(self, part: Any) -> bool:
        """Whether an Arrow slice can go through as it is: no None in a field that is not optional,
        and (strings) valid UTF-8. Else its values take the checked path, which fails just those rows."""
        if part.null_count and not self.dtype.optional:
            return False
        if self.dtype.arrow_format == "U":
            import pyarrow as pa

            from daft_flow import _core

            try:
                part.validate()  # buffer sizes, first and last offsets
                # Offsets in order and UTF-8, natively: mostly-ASCII text in one pass over the bytes
                # rather than pyarrow's call per value (None: a layout it does not read).
                valid = _core.strings_are_valid_utf8(part)
                if valid is None:
                    part.validate(full=True)
                    valid = True
            except pa.ArrowInvalid:
                return False
            return valid
        return True

    def __call__(self, expected_row_bytes: int = 0) -> Any:
        """The next batch. ``expected_row_bytes``: what the runtime has seen a root row grow into."""
        if self.skip is not None:
            self._skip_done()
        if self.max_inputs is not None and self.count >= self.max_inputs:
            return self._end()  # limit() reached: the rest of the input is never read
        limit = self._limit(expected_row_bytes)
        if self.arrow_chunks is not None:
            part = self._next_arrow(limit)
            if part is None:
                return self._end()
            if self._arrow_is_clean(part):
                self.batches += 1
                self.next_rows = max(1, min(len(part) * 2, self.options.batch_rows))
                first, self.count = self.count, self.count + len(part)
                return first, len(part), {self.root_node: part}, None, []
            from daft_flow.io.sources import python_values

            values: list[Any] = python_values(part)
            start, stop = 0, len(values)
        else:
            values, start, stop = self._next_values(limit)
        if start >= stop:
            return self._end()
        array, problems, consumed = self._convert(values, start, stop)
        if self.sequence is not None:
            self.position = start + consumed
        elif self.arrow_chunks is not None:
            self.arrow_pos -= stop - start - consumed  # the rest of the slice comes next time
            values = values[:consumed]
        elif consumed < stop - start:
            self.pending = values[consumed:] + self.pending
            values = values[:consumed]
        self.batches += 1
        if self.expanding:
            self.next_rows = self._expanding_rows()
        else:
            # Doubling from what this batch really held: after a batch cut short by one large
            # value, batches grow back instead of staying at that size.
            self.next_rows = max(1, min(consumed * 2, self.options.batch_rows))
        first = self.count
        failures = [(i, self.root_node, self.field, self._message(first + i, msg)) for i, msg in sorted(problems)]
        self.count += consumed
        self.objects[first] = (values, start)
        # Native types hash their own ids lazily (None); others are hashed here from their storage.
        ids = None if self.dtype.arrow_format else root_row_ids(array, self.dtype, first)
        return first, consumed, {self.root_node: array}, ids, failures
