"""RateLimiter: requests-per-minute and tokens-per-minute token buckets shared by every op of a provider.

Tokens are estimated before a call and corrected from the usage the provider reports (``settle``),
so a run converges on the real token rate even when the estimate is off. The bucket holds at most
``burst`` requests (default: half a second's share, at least 1), which bounds any 1-second window
to the per-second share plus that burst (600/min: 10 + 5 = 15 requests).
"""
from __future__ import annotations

import asyncio
import time

from daft_flow.llm.checks import check_optional_limit


class _Bucket:
    def __init__(self, per_minute: float, capacity: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, capacity)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        amount = min(amount, self.capacity)  # one oversized request may still go, alone
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate


class RateLimiter:
    """Paces requests under ``requests_per_minute`` and ``tokens_per_minute`` (either may be None)."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 burst: float | None = None) -> None:
        requests_per_minute = check_optional_limit(requests_per_minute, "requests_per_minute")
        tokens_per_minute = check_optional_limit(tokens_per_minute, "tokens_per_minute")
        burst = check_optional_limit(burst, "burst")
        if burst is not None and requests_per_minute is None:
            raise ValueError("burst bounds the requests_per_minute bucket: set requests_per_minute too")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._rpm = _Bucket(requests_per_minute, burst if burst is not None else requests_per_minute / 120.0) \
            if requests_per_minute else None
        self._tpm = _Bucket(tokens_per_minute, tokens_per_minute / 60.0) if tokens_per_minute else None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def burst(self) -> float:
        return self._rpm.capacity if self._rpm else float("inf")

    async def acquire(self, tokens: int = 0) -> None:
        """Waits until one request of ~``tokens`` tokens may be sent. Callers are served in order."""
        if self._rpm is None and self._tpm is None:
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = 0.0
                for bucket, amount in ((self._rpm, 1.0), (self._tpm, float(tokens))):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(amount))
                if wait <= 0:
                    if self._rpm is not None:
                        self._rpm.level -= 1.0
                    if self._tpm is not None:
                        self._tpm.level -= min(float(tokens), self._tpm.capacity)
                    return
                await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Corrects the token bucket once the provider reported what a call really used."""
        if self._tpm is not None and actual >= 0:
            self._tpm.refill(time.monotonic())
            self._tpm.level = min(self._tpm.capacity, self._tpm.level + (estimated - actual))
