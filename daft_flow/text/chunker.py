"""Native chunkers (internal): split texts into (start, end) str offset spans.

The boundary rules and limits are documented in cpp/include/dflow/text/chunker.h; in short: a chunk
ends after a blank line, else a line break, else a sentence end, else whitespace, else at the limit;
no chunk exceeds max_chars; no chunk holds more than max_tokens tokens (special tokens excluded) unless
one code point alone yields more; empty text gives no chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

from daft_flow import _core
from daft_flow.text.tokenizer import Tokenizer

__all__ = ["chunk_offsets"]


def chunk_offsets(
    texts: Sequence[str],
    max_chars: int | None = None,
    overlap: int = 0,
    max_tokens: int | None = None,
    overlap_tokens: int = 0,
    tokenizer: Tokenizer | None = None,
    threads: int | None = None,
) -> list[list[tuple[int, int]]]:
    """Chunk each text by characters (max_chars) or by tokens (max_tokens); exactly one is required.

    Returns, per text, the chunks as (start, end) offsets into the str (code point indices). Texts are
    processed in parallel on the native thread pool with the GIL released (threads=None: all cores).
    Invalid parameters raise ValueError. For tokens, tokenizer=None uses ``Tokenizer.default()``.
    """
    if isinstance(texts, str):
        raise TypeError("chunk_offsets() takes a sequence of str, not a single str")
    if (max_chars is None) == (max_tokens is None):
        raise ValueError("chunk_offsets() needs exactly one of max_chars or max_tokens")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if max_chars is not None:
        if overlap_tokens:
            raise ValueError("overlap_tokens applies to max_tokens; use overlap with max_chars")
        return _core.chunk_chars(texts, max_chars, overlap, threads or 0)
    if overlap:
        raise ValueError("overlap applies to max_chars; use overlap_tokens with max_tokens")
    tok = tokenizer if tokenizer is not None else Tokenizer.default()
    if not isinstance(tok, Tokenizer):
        raise TypeError(f"tokenizer must be a daft_flow.text.Tokenizer, got {type(tok).__name__}")
    return _core.chunk_tokens(texts, max_tokens, overlap_tokens, tok._native, threads or 0)
