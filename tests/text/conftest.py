from __future__ import annotations

import pytest

from daft_flow.text import Tokenizer


@pytest.fixture(scope="session")
def tok() -> Tokenizer:
    return Tokenizer.default()


@pytest.fixture(scope="session")
def hf(tok):
    tokenizers = pytest.importorskip("tokenizers")
    t = tokenizers.Tokenizer.from_file(tok.path)
    t.no_truncation()
    t.no_padding()
    return t
