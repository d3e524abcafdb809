"""Writing batches of rows to a sink (``SinkWriter``, the function of a write_sink op) and what a
run reports per sink (``SinkResult``).

``flow.write_sink(sink, fields)`` (``daft_flow/sink_flow.py``) adds a batch op whose function is a
``SinkWriter``: it hands each batch of rows to the sink, retrying failed writes with exponential
backoff and jitter; rows whose batch still cannot be written fail with a ``SinkWriteError`` naming
the sink and the rows. Sinks make each write all-or-nothing, so a retry never writes a row twice.
Running sink flows (``run_sinks``) is ``daft_flow/execution/sinks.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from daft_flow.errors import BatchError, RowFailure
from daft_flow.io.sinks import Sink
from daft_flow.retry import Backoff
from daft_flow.types import DataType


class SinkWriteError(BatchError):
    """A sink could not write a batch after its retries; ``rows`` rows were not written."""


@dataclass
class SinkResult:
    """What one run wrote to one sink."""

    sink: str
    rows_written: int
    paths: list[str] = field(default_factory=list)  # where rows went (files, objects, tables), in order
    failures: list[RowFailure] = field(default_factory=list)  # rows that did not reach the sink
    data: Any = field(default=None, repr=False)  # what in-memory sinks hold (ArrowSink, DaftSink)

    def __str__(self) -> str:
        failed = f", {len(self.failures)} row(s) failed" if self.failures else ""
        return f"{self.sink}: {self.rows_written} row(s) written to {len(self.paths)} location(s){failed}"


_NOT_RETRYABLE = (TypeError, ValueError, KeyError, AttributeError, NotImplementedError)


class SinkWriter:
    """The batch function of a write_sink op: rows of a batch -> where each row was written."""

    def __init__(self, sink: Sink, names: list[str], types: list[DataType], retries: int = 3,
                 backoff: float = 0.05) -> None:
        self.sink, self.names, self.types = sink, names, types
        self.retries, self.backoff = retries, Backoff(initial=backoff, maximum=5.0)
        self.written = 0
        self.attempts = 0

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: the sink and the columns written (not run counters)."""
        return {"sink": self.sink, "names": self.names, "types": [str(t) for t in self.types]}

    def begin(self) -> None:
        self.written = 0
        self.attempts = 0
        self.sink.begin(dict(zip(self.names, self.types)))

    def finish(self) -> None:
        self.sink.close()

    def __call__(self, *columns: list[Any]) -> list[str]:
        k = len(self.names)
        rows = [dict(zip(self.names, values)) for values in zip(*columns[:k])]
        attempt = 0
        while True:
            self.attempts += 1
            try:
                where = self.sink.write(rows)
                break
            except Exception as e:
                if attempt >= self.retries or isinstance(e, _NOT_RETRYABLE):
                    tries = f"after {attempt + 1} attempts" if attempt else "(not retried)"
                    err = SinkWriteError(f"{self.sink.describe()} could not write a batch of {len(rows)} row(s) "
                                         f"{tries}: {type(e).__name__}: {e}", batch_size=len(rows))
                    raise err from e
                time.sleep(self.backoff.delay(attempt))
                attempt += 1
        if len(where) != len(rows):
            raise SinkWriteError(f"{self.sink.describe()} reported {len(where)} locations for {len(rows)} rows",
                                 batch_size=len(rows))
        self.written += len(rows)
        return list(where)
