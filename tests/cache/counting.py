"""Functions whose calls tests count. The counts live in ``counting_state`` (another module), so
calling these functions never changes their fingerprints, and so never their cache keys."""
from __future__ import annotations

import asyncio

import counting_state as state


def reset() -> None:
    state.seen.clear()
    state.fail_on.clear()


def count(x: object) -> int:
    return state.seen[x]


def total() -> int:
    return sum(state.seen.values())


def double(x: int) -> int:
    state.seen[x] += 1
    if x in state.fail_on:
        raise ValueError(f"failing on {x}")
    return x * 2


def double_batch(xs: list) -> list:
    for x in xs:
        state.seen[x] += 1
    return [x * 2 for x in xs]


async def double_async(x: int) -> int:
    state.seen[x] += 1
    await asyncio.sleep(0)
    return x * 2


def shout(s: str) -> str:
    state.seen[s] += 1
    return s.upper()
