"""A hard cost budget for one run (``max_cost_usd=``).

Before each request an LLM op reserves the request's worst-case cost: its input tokens (counted
with the model's tokenizer where known, else estimated with a margin, see ``model_tokens``) plus
``max_tokens`` of output, at the model's prices. A reservation that fits next to what was spent
and what is reserved by requests in flight is granted; one that does not waits while requests are
in flight (they usually cost less than reserved and give the difference back), in order (no
request overtakes one that waits), and when nothing is left in flight and it still does not fit
the budget is exhausted: this request and every later one fail their row with
``dflow.BudgetExceeded`` without being sent. When a request ends, its
reservation is replaced by what it cost (the usage the server reported; 0 when it never answered).

All reservations happen on the runtime's event loop thread, so the arithmetic needs no lock; the
waiting is done with futures of that loop.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Any

from daft_flow.errors import BudgetExceeded
from daft_flow.llm.model_tokens import CHAT_FRAMING_TOKENS, counter_for
from daft_flow.llm.usage import PRICES, cost_of

_log = logging.getLogger("daft_flow")


def check_max_cost(value: Any) -> float | None:
    """``max_cost_usd`` as a float, or None (no budget); a clear error for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_cost_usd must be a positive number of US dollars (or None), got {value!r}")
    return float(value)


class CostBudget:
    """The budget of one run; shared by every LLM op of the run."""

    def __init__(self, max_cost_usd: float) -> None:
        self.max_cost_usd = max_cost_usd
        self.spent_usd = 0.0      # settled requests, at the usage they reported
        self.reserved_usd = 0.0   # requests in flight, at their worst case
        self.granted = 0          # reservations granted
        self.refused = 0          # requests not sent (their rows failed with BudgetExceeded)
        self.exhausted = False
        self.in_flight = 0        # granted and not settled (counted: summed floats drift)
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()

    # -- what an op checks before the run starts -----------------------------------------------
    @staticmethod
    def check_op(op: str, field: str, flow: str, model: str, max_tokens: int, embed: bool) -> None:
        """Raises when a request of this op has no bounded worst case: no price for its model, or a
        prompt without ``max_tokens`` (its answer could be as long as the model allows)."""
        where = f"{op} computing field {field!r} of flow {flow!r}"
        if model not in PRICES:
            raise ValueError(f"max_cost_usd: model {model!r} of {where} has no price; set one with "
                             f"dflow.set_price({model!r}, input=..., output=...) (USD per 1M tokens)")
        if not embed and not max_tokens:
            raise ValueError(f"max_cost_usd: {where} has no max_tokens, so one answer's cost has no bound; "
                             f"give the op max_tokens=")

    # -- worst cases ---------------------------------------------------------------------------------
    @staticmethod
    def prompt_worst_case(model: str, text: str, max_tokens: int) -> float:
        counter = counter_for(model)
        tokens = counter.worst_case(counter.count(text)) + CHAT_FRAMING_TOKENS
        return cost_of(model, tokens, 0, max_tokens) or 0.0

    @staticmethod
    def embed_worst_case(model: str, texts: list[str]) -> float:
        counter = counter_for(model)
        tokens = sum(counter.worst_case(n) for n in counter.count_batch(texts))
        return cost_of(model, tokens, 0, 0) or 0.0

    # -- reservations (event loop thread) ------------------------------------------------------
    def _fits(self, cost: float) -> bool:
        return self.spent_usd + self.reserved_usd + cost <= self.max_cost_usd

    def _refusal(self, cost: float) -> BudgetExceeded:
        self.refused += 1
        return BudgetExceeded(
            f"max_cost_usd={self.max_cost_usd:g} reached: ${self.spent_usd:.6f} spent, and this request could cost "
            f"up to ${cost:.6f}; it was not sent (the row was not run)", self.max_cost_usd, self.spent_usd)

    def _grant(self, cost: float) -> None:
        self.reserved_usd += cost
        self.granted += 1
        self.in_flight += 1

    async def reserve(self, cost: float) -> None:
        """Waits until ``cost`` fits; raises ``BudgetExceeded`` once the budget is exhausted.
        Requests are served in order: a large one (an embedding batch) is not overtaken by a
        stream of small ones."""
        if self.exhausted:
            raise self._refusal(cost)
        if not self._waiters and self._fits(cost):
            self._grant(cost)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((cost, waiter))
        self._serve()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.settle(cost, 0.0)  # granted, but the request will not be sent
            raise

    def _serve(self) -> None:
        """Grants waiting reservations in order while they fit; refuses all of them once the first
        cannot fit and nothing in flight can give anything back."""
        while self._waiters:
            cost, waiter = self._waiters[0]
            if waiter.done():  # cancelled while waiting
                self._waiters.popleft()
            elif self._fits(cost):
                self._waiters.popleft()
                self._grant(cost)
                waiter.set_result(None)
            elif self.in_flight == 0:
                self.exhausted = True
                _log.info("max_cost_usd=%g reached ($%.6f spent): no more LLM requests in this run; the rows "
                          "that needed one fail with BudgetExceeded", self.max_cost_usd, self.spent_usd)
                while self._waiters:
                    cost, waiter = self._waiters.popleft()
                    if not waiter.done():
                        waiter.set_exception(self._refusal(cost))
            else:
                return

    def settle(self, reserved: float, actual: float) -> None:
        """A request holding ``reserved`` ended having cost ``actual``."""
        self.in_flight -= 1
        self.reserved_usd = max(0.0, self.reserved_usd - reserved) if self.in_flight else 0.0
        self.spent_usd += actual
        self._serve()

    def as_dict(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "spent_usd": self.spent_usd, "requests_granted": self.granted,
                "requests_refused": self.refused, "exhausted": self.exhausted}
