"""Sizes users write as numbers or strings (``"512MB"``, ``"1GiB"``): memory budgets, batch sizes,
the largest document a read takes."""
from __future__ import annotations

import re
from typing import Any

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(value: Any, what: str = "memory_budget") -> int:
    """``256 * 2**20``, ``"256MB"``, ``"1GiB"`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{what} must be bytes (int) or a size like '512MB' or '1GiB', got {value!r}")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise TypeError(f"{what} must be an int or a str like '512MB', got {type(value).__name__}")
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return n
