"""chunk_text and tokenize: option checking at construction (the work itself is native)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from daft_flow.types import DataType

DEFAULT_MAX_CHARS = 1000
DEFAULT_OVERLAP = 200
DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32

_TEXT_KINDS = ("str", "HTML")


@dataclass(frozen=True)
class ChunkSpec:
    """How chunk_text splits: by characters (``max_tokens == 0``) or by tokens of ``tokenizer``."""

    max_chars: int = DEFAULT_MAX_CHARS
    overlap: int = DEFAULT_OVERLAP
    max_tokens: int = 0
    overlap_tokens: int = 0
    tokenizer: str = ""


def check_text(dtype: DataType, op: str, field: str, flow: str) -> None:
    if dtype.kind not in _TEXT_KINDS:
        raise TypeError(f'{op} needs str, field "{field}" of flow "{flow}" is {dtype}')


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"chunk_text(): {name} must be a positive int, got {value!r}")
    return value


def _overlap(name: str, value: Any, limit: int, limit_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"chunk_text(): {name} must be an int >= 0, got {value!r}")
    if value >= limit:
        raise ValueError(f"chunk_text(): {name} ({value}) must be smaller than {limit_name} ({limit})")
    return value


def tokenizer_path(tokenizer: Any) -> str:
    """A ``dflow.Tokenizer``, a path to tokenizer.json / vocab.txt, or None (the default model's)."""
    from daft_flow.text.tokenizer import Tokenizer

    if tokenizer is None:
        return Tokenizer.default().path
    if isinstance(tokenizer, Tokenizer):
        return tokenizer.path
    if isinstance(tokenizer, (str, os.PathLike)):
        return Tokenizer.from_file(tokenizer).path  # loads it now: a bad file fails at construction
    raise TypeError(f"tokenizer must be a dflow.Tokenizer or a path to tokenizer.json/vocab.txt, "
                    f"got {type(tokenizer).__name__}")


def make_chunk_spec(max_chars: Any = None, overlap: Any = None, max_tokens: Any = None, overlap_tokens: Any = None,
                    tokenizer: Any = None) -> ChunkSpec:
    by_tokens = max_tokens is not None or overlap_tokens is not None or tokenizer is not None
    if by_tokens:
        if max_chars is not None or overlap is not None:
            raise ValueError("chunk_text(): chunk either by characters (max_chars, overlap) or by tokens "
                             "(max_tokens, overlap_tokens, tokenizer), not both")
        limit = _positive("max_tokens", DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
        default_overlap = min(DEFAULT_OVERLAP_TOKENS, limit // 8)
        over = _overlap("overlap_tokens", default_overlap if overlap_tokens is None else overlap_tokens, limit,
                        "max_tokens")
        return ChunkSpec(max_chars=0, overlap=0, max_tokens=limit, overlap_tokens=over,
                         tokenizer=tokenizer_path(tokenizer))
    limit = _positive("max_chars", DEFAULT_MAX_CHARS if max_chars is None else max_chars)
    default_overlap = min(DEFAULT_OVERLAP, limit // 5)
    over = _overlap("overlap", default_overlap if overlap is None else overlap, limit, "max_chars")
    return ChunkSpec(max_chars=limit, overlap=over)
