"""The input side of a run: pulls Python values from any iterable into Arrow batches."""
from __future__ import annotations

from typing import Any, Iterator

from daft_flow.execution.convert import root_row_ids, values_to_arrow
from daft_flow.execution.options import ExecutionOptions
from daft_flow.types import DataType


class InputSource:
    """Called by the runtime's source thread (GIL held) for each next batch of root rows.

    Batches start small so the first results stream out early, then double up to ``batch_rows``;
    a batch also closes once its str/bytes inputs reach ``batch_bytes``.
    """

    def __init__(self, values: Iterator[Any], dtype: DataType, root_node: int, field: str, flow: str,
                 options: ExecutionOptions) -> None:
        self.values, self.dtype, self.root_node = values, dtype, root_node
        self.field, self.flow = field, flow
        self.options = options
        self.next_rows = min(options.first_batch_rows, options.batch_rows)
        self.count = 0
        self.done = False

    def __call__(self) -> Any:
        if self.done:
            return None
        rows: list[Any] = []
        size, limit, budget = 0, self.next_rows, self.options.batch_bytes
        for value in self.values:
            rows.append(value)
            if isinstance(value, (str, bytes)):
                size += len(value)
            if len(rows) >= limit or size >= budget:
                break
        else:
            self.done = True
        if not rows:
            return None
        self.next_rows = min(self.next_rows * 2, self.options.batch_rows)
        array, problems = values_to_arrow(rows, self.dtype)
        failures = [(i, self.root_node, self.field,
                     f"TypeError: input {self.count + i} {msg.replace('returned ', 'is ', 1)} for field "
                     f"{self.field!r} of flow {self.flow!r}") for i, msg in problems]
        first, self.count = self.count, self.count + len(rows)
        return first, len(rows), {self.root_node: array}, root_row_ids(array, self.dtype), failures
