"""Checks of the numbers users configure providers and prices with.

A limit of 0, a negative retry count or a NaN price is never a way of saying "no limit" or "free":
each is rejected when the object is made, with the parameter's name, instead of silently turning
into unlimited requests or a nonsense cost later.
"""
from __future__ import annotations

import math
from typing import Any


def check_number(value: Any, what: str, *, positive: bool = True, integer: bool = False, hint: str = "") -> Any:
    """``value`` as a finite number, > 0 (``positive``) or >= 0; an int when ``integer``.

    Raises ``TypeError`` for non-numbers (``True`` included) and ``ValueError`` for the rest,
    naming ``what`` (e.g. ``"OpenAIProvider: requests_per_minute"``).
    """
    kind = "int" if integer else "number"
    sign = "positive" if positive else "non-negative"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise TypeError(f"{what} must be a {sign} {kind}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be a {sign} {kind}, got {value!r}{hint}")
    return value


def check_optional_limit(value: Any, what: str) -> float | None:
    """None (no limit) or a positive finite number."""
    return None if value is None else check_number(value, what, hint=" (None means no limit)")
