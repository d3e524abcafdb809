"""One retry timing for every request daft_flow repeats: LLM calls, file reads, sink writes.

What is worth retrying stays with each caller (an HTTP 429 for a provider, a dropped connection for
a read, anything but a data error for a sink); how long to wait is decided here:

- ``parse_retry_after(headers)``: the wait a server asked for, from ``retry-after-ms`` (OpenAI) or
  ``Retry-After`` (seconds or an HTTP date); absent, unreadable, infinite or NaN values are ignored,
  negative ones count as 0, and waits are capped (``RETRY_AFTER_MAX_S``, 60 s): a server asking
  for hours (or a broken header) must not park a row that long.
- ``Backoff.delay(attempt, retry_after)``: the server's wait (capped again at the caller's
  ``max_retry_after``) with up to 25% jitter, so clients told the same second do not all come back
  in it; else exponential backoff with "equal jitter": between half and all of
  ``initial * multiplier ** attempt``, capped at ``maximum``.
"""
from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass
from typing import Any

RETRY_AFTER_MAX_S = 60.0  # the longest wait a server can ask for and get


def parse_retry_after(headers: Any, now: float | None = None, maximum: float = RETRY_AFTER_MAX_S) -> float | None:
    """Seconds to wait that ``headers`` (any mapping with ``get``, case-insensitive or not) ask
    for, at most ``maximum``; None when they ask for nothing readable."""
    if headers is None or not hasattr(headers, "get"):
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("Retry-After-Ms", 1000.0), ("retry-after", 1.0),
                        ("Retry-After", 1.0)):
        value = headers.get(name)
        if value is None or value == "":
            continue
        seconds = _seconds(str(value).strip(), now)
        if seconds is not None:
            return min(maximum, max(0.0, seconds / scale))
    return None


def _seconds(value: str, now: float | None) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:  # an HTTP date: wait until then
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return seconds if math.isfinite(seconds) else None


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""

    initial: float = 0.1  # the first backoff's upper bound, seconds
    maximum: float = 20.0  # no backoff is longer
    multiplier: float = 2.0
    max_retry_after: float = RETRY_AFTER_MAX_S  # the longest server-requested wait honoured

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.max_retry_after, max(0.0, retry_after)) * random.uniform(1.0, 1.25)
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt))
        return random.uniform(base / 2, base)
