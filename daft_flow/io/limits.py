"""How long a read may take and how large a document may be.

A server that accepts a connection and never answers, one that trickles a byte a second forever,
an https URL served by a plain-HTTP server, an object store that hangs: each would hold a row (and
the run waiting for it) indefinitely. Every read therefore has three time limits and a size limit:

- ``connect`` (10 s): making the connection (TCP and TLS).
- ``read`` (30 s): the longest wait for the next bytes (the headers, then each part of the body).
- ``total`` (300 s): the whole read of one row, retries included. This is what stops a trickle.
- ``max_bytes`` (1 GiB): the largest document read; a larger one (or a body without a length that
  keeps coming) fails its row instead of filling memory.

A row that hits a limit fails with ``TimeoutError`` (or ``ValueError`` for the size) naming the op
and the URL; a timeout is not retried (a server that did not answer in time is not asked again
within the same row). Set them per op (``read(timeout=..., max_bytes=...)``), per run
(``collect(..., read_timeout=...)``) or for the process (``dflow.set_options(read_timeout=...,
read_max_bytes=...)``). ``timeout=5`` means "at most 5 s for this row" (connect and read limits
are capped by it); ``dflow.Timeout(connect=, read=, total=)`` sets each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class Timeout:
    """Time limits of a read, in seconds: ``connect`` (making the connection), ``read`` (the
    longest wait for the next bytes) and ``total`` (one row's whole read, retries included)."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Timeout: {name} must be a positive number of seconds, got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Timeout: {name} must be a positive, finite number of seconds, got {value!r}")

    @classmethod
    def of(cls, value: Any, what: str = "timeout") -> "Timeout":
        """A ``Timeout`` from a ``Timeout`` or a number of seconds (the total; the connect and read
        limits are capped by it)."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number of seconds or a dflow.Timeout, got {type(value).__name__}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{what} must be a positive, finite number of seconds, got {value!r}")
        default = cls()
        return cls(connect=min(default.connect, value), read=min(default.read, value), total=value)

    def __str__(self) -> str:
        return f"connect={self.connect:g}s, read={self.read:g}s, total={self.total:g}s"


def parse_max_bytes(value: Any, what: str = "max_bytes") -> int:
    """A positive byte count from an int or a size string (``"512MB"``, ``"2GiB"``)."""
    from daft_flow.units import parse_bytes

    return parse_bytes(value, what)


@dataclass(frozen=True)
class ReadLimits:
    """The limits one read op works under (its own settings over the run's and the process's)."""

    timeout: Timeout = Timeout()
    max_bytes: int = DEFAULT_MAX_BYTES


DEFAULT_LIMITS = ReadLimits()
_process_limits = DEFAULT_LIMITS


def process_limits() -> ReadLimits:
    """The process's read limits (``dflow.set_options(read_timeout=..., read_max_bytes=...)``): for
    reads that happen outside a run (a ``File`` read by a function, ``from_glob``) and read ops
    lowered without a run's options."""
    return _process_limits


def set_process_limits(value: ReadLimits) -> None:
    """Called by ``dflow.set_options`` (execution options own the user-facing setting)."""
    global _process_limits
    _process_limits = value
