"""Counting a request's tokens the way its model will, for cost estimates and budgets.

Which tokenizer counts a model's tokens, first match wins:

1. ``tiktoken`` (the ``estimate`` extra) when it knows the model (OpenAI's ``gpt-4o``,
   ``gpt-4.1``, ``text-embedding-3-*``, ...) and can load its encoding: the model's own
   tokenizer, so counts are exact (``exact=True``). tiktoken downloads an encoding once and caches
   it (``TIKTOKEN_CACHE_DIR``); where that fails (offline, no cache) the next rule applies.
2. the native WordPiece tokenizer (all-MiniLM-L6-v2's vocabulary): an estimate for any other
   model. On English prose it counts about as many tokens as BPE tokenizers do; other scripts
   and code can differ more, which is why budgets reserve ``INEXACT_MARGIN`` more for it.
3. ``ceil(UTF-8 bytes / 3)`` (``llm.tokens.estimate_tokens``) when the WordPiece vocabulary is
   not installed (it comes with the ``local`` extra).

A chat request also carries the message framing (role, separators, reply priming), which
``CHAT_FRAMING_TOKENS`` covers for the one-message requests ``prompt()`` sends.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence
from daft_flow.forksafe import ForkSafeLock

CHAT_FRAMING_TOKENS = 7  # OpenAI chat format: 3 per message + 3 priming the reply, rounded up
INEXACT_MARGIN = 1.25  # worst case over an estimated count: 25% more, plus the framing

_log = logging.getLogger("daft_flow")


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of texts for one model. ``exact``: the model's own tokenizer."""

    name: str
    exact: bool
    count_batch: Callable[[Sequence[str]], list[int]]

    def count(self, text: str) -> int:
        return self.count_batch([text])[0]

    def worst_case(self, tokens: int) -> int:
        """An upper bound of what a server counts for text we counted ``tokens``: the count itself
        with the model's tokenizer, else the count with a margin."""
        return tokens if self.exact else math.ceil(tokens * INEXACT_MARGIN)


_counters: dict[str, TokenCounter] = {}
_lock = ForkSafeLock()


def counter_for(model: str) -> TokenCounter:
    """The counter for ``model`` (see the module docstring); cached per model."""
    with _lock:
        counter = _counters.get(model)
    if counter is None:
        counter = _tiktoken_counter(model) or _wordpiece_counter() or _bytes_counter()
        with _lock:
            _counters[model] = counter
    return counter


def _tiktoken_counter(model: str) -> TokenCounter | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        return None  # not an OpenAI model name
    except Exception as e:  # noqa: BLE001 - the encoding could not be loaded (offline, no cache)
        _log.info("tiktoken knows model %r but could not load its encoding (%s: %s); counting tokens with "
                  "the WordPiece tokenizer instead", model, type(e).__name__, e)
        return None

    def count_batch(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in encoding.encode_ordinary_batch(list(texts))]

    return TokenCounter(f"tiktoken:{encoding.name}", True, count_batch)


def _wordpiece_counter() -> TokenCounter | None:
    from daft_flow.text.tokenizer import Tokenizer

    try:
        tokenizer = Tokenizer.default()
    except (ImportError, FileNotFoundError, OSError):
        return None

    def count_batch(texts: Sequence[str]) -> list[int]:
        return list(tokenizer.count_batch(list(texts), threads=1))

    return TokenCounter("wordpiece", False, count_batch)


def _bytes_counter() -> TokenCounter:
    from daft_flow.llm.tokens import estimate_tokens

    def count_batch(texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(t) for t in texts]

    return TokenCounter("bytes/3", False, count_batch)
