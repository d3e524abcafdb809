"""Sizes users write as numbers or strings (``"512MB"``, ``"1GiB"``, ``"10TB"``): memory budgets,
batch sizes, the largest document a read takes."""
from __future__ import annotations

import math
import numbers
import re
from typing import Any

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}

# The runtime counts bytes in 64-bit integers: a larger size means "no limit" and is held at this.
MAX_BYTES = 2**63 - 1


def parse_bytes(value: Any, what: str = "memory_budget") -> int:
    """``256 * 2**20``, ``"256MB"``, ``"1GiB"``, ``"10TB"``, ``1e9`` -> bytes. Sizes beyond what 64
    bits count (``2**64``, ``float("inf")``) mean no limit; numpy integers are ints."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a whole number of bytes or a str like '512MB', got bool")
    if isinstance(value, numbers.Integral):
        n = int(value)
    elif isinstance(value, numbers.Real) and (math.isinf(value) or float(value).is_integer()):
        n = MAX_BYTES if math.isinf(value) else int(value)  # 1e9 bytes; inf: no limit
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{what} must be bytes (int) or a size like '512MB', '1GiB' or '2TB', got {value!r}")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise TypeError(f"{what} must be a whole number of bytes or a str like '512MB', got "
                        f"{type(value).__name__} {value!r}")
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return min(n, MAX_BYTES)
