"""A deterministic value matching a (simple) JSON schema: the fault server's structured answers,
and the placeholder answers of a cost estimate."""
from __future__ import annotations

from typing import Any


def example_value(schema: dict[str, Any], seed: str) -> Any:
    """A value of ``schema``'s shape (objects, arrays, integers, numbers, booleans, strings);
    ``seed`` (hex digits) varies the numbers and strings."""
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        return {k: example_value(v, seed) for k, v in schema.get("properties", {}).items()}
    if t == "array":
        return [example_value(schema.get("items", {}), seed)]
    if t == "integer":
        return int(seed[:4], 16)
    if t == "number":
        return int(seed[:4], 16) / 16.0
    if t == "boolean":
        return True
    return f"value-{seed}"
