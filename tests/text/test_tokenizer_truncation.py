"""encode_batch_arrow: truncation identical to HF's, token ids as Arrow buffers."""
from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text_hard_cases import HARD_CASES

tokenizers = pytest.importorskip("tokenizers")

MULTILINGUAL = HARD_CASES + ["Привет, как дела? " * 40, "日本語の長い文章です。" * 60, "naïve café " * 200]


@pytest.fixture(scope="module")
def hf_truncating(tok):
    def make(max_length):
        t = tokenizers.Tokenizer.from_file(tok.path)
        t.no_padding()
        t.enable_truncation(max_length=max_length)
        return t
    return make


@pytest.mark.parametrize("max_length", [2, 3, 8, 64, 256])
def test_truncation_matches_hf(tok, hf_truncating, max_length):
    arr = tok.encode_batch_arrow(MULTILINGUAL, max_length=max_length)
    assert arr.type == pa.large_list(pa.int32())
    expected = [e.ids for e in hf_truncating(max_length).encode_batch(MULTILINGUAL)]
    assert arr.to_pylist() == expected


def test_no_limit_and_no_special_tokens_match_encode_batch(tok):
    assert tok.encode_batch_arrow(MULTILINGUAL).to_pylist() == tok.encode_batch(MULTILINGUAL)
    plain = tok.encode_batch_arrow(MULTILINGUAL, add_special_tokens=False, max_length=5).to_pylist()
    assert plain == [ids[:5] for ids in tok.encode_batch(MULTILINGUAL, add_special_tokens=False)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(st.sampled_from(list("ab .,é中😀\u0301[SEP]")), max_size=40), max_size=8),
       st.integers(2, 12))
def test_any_texts_truncate_like_hf(tok, hf_truncating, texts, max_length):
    expected = [e.ids for e in hf_truncating(max_length).encode_batch(texts)]
    assert tok.encode_batch_arrow(texts, max_length=max_length).to_pylist() == expected


def test_long_text_is_not_read_past_the_limit(tok):
    # A word of 30 MB would take seconds to normalize; truncated at 8 tokens only its prefix is read.
    huge = "word " * 4 + "x" * 30_000_000
    (ids,) = tok.encode_batch_arrow([huge], max_length=6).to_pylist()
    assert ids == tok.encode("word word word word")


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="max_length"):
        tok.encode_batch_arrow(["a"], max_length=0)
    with pytest.raises(TypeError, match="expected str"):
        tok.encode_batch_arrow(["a", 3])  # type: ignore[list-item]
    assert len(tok.encode_batch_arrow([])) == 0
