from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daft_flow import _core
from daft_flow.text import chunk_offsets

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Unicode White_Space: what the chunker (and the tokenizer) treat as whitespace.
WS = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}
PIECES = st.sampled_from(
    ["word", "Hello", "x", "lorem", "ipsum", "é", "中文", "😀", "e\u0301", " ", "  ", "\n", "\n\n", "\t", ". ", "! ",
     "? ", ",", "—", "\u3000", "supercalifragilistic", "한국어", "[SEP]", "\x00", "ab" * 30]
)
DOCS = st.lists(PIECES, max_size=200).map("".join)


def check_cover(text, spans, overlap):
    if text == "":
        assert spans == []
        return
    assert spans, "non-empty text must give at least one chunk"
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    for s, e in spans:
        assert 0 <= s < e <= len(text)
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 < e1, "chunks must advance"
        assert s1 <= e0, "no gaps"
        assert e0 - s1 <= overlap, "overlap larger than configured"


def token_spans(tok, text):
    return tok.encode_with_offsets(text, add_special_tokens=False)[1]


@SETTINGS
@given(DOCS, st.integers(1, 80), st.data())
def test_char_chunks_properties(text, max_chars, data):
    overlap = data.draw(st.integers(0, max_chars - 1))
    spans = chunk_offsets([text], max_chars=max_chars, overlap=overlap)[0]
    check_cover(text, spans, overlap)
    for s, e in spans:
        assert e - s <= max_chars
        chunk = text[s:e]
        assert chunk == text[s:e] and len(chunk) == e - s
    # The cut prefers whitespace: if one fits (with room beyond the overlap), the chunk ends after whitespace.
    for s, e in spans[:-1]:
        if any(text[p - 1] in WS for p in range(s + overlap + 1, s + max_chars + 1)):
            assert text[e - 1] in WS, (text, s, e)


@SETTINGS
@given(st.text(max_size=300), st.integers(1, 50))
def test_char_chunks_any_text(text, max_chars):
    spans = chunk_offsets([text], max_chars=max_chars, overlap=max_chars // 3)[0]
    check_cover(text, spans, max_chars // 3)
    assert all(e - s <= max_chars for s, e in spans)


@SETTINGS
@given(DOCS, st.integers(1, 40), st.data())
def test_token_chunks_properties(tok, text, max_tokens, data):
    overlap = data.draw(st.integers(0, max_tokens - 1))
    spans = chunk_offsets([text], max_tokens=max_tokens, overlap_tokens=overlap, tokenizer=tok)[0]
    check_cover(text, spans, len(text))
    toks = token_spans(tok, text)
    for s, e in spans:
        inside = [t for t in toks if s <= t[0] and t[1] <= e]
        # Code points are never split: only the tokens of the chunk's last code point may exceed the limit.
        last_cp = [t for t in inside if t == (e - 1, e)]
        assert len(inside) <= max_tokens or (len(last_cp) > 1 and len(inside) - len(last_cp) < max_tokens)
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        # Chunk edges sit between tokens, never inside one.
        assert not any(a < e0 < b or a < s1 < b for a, b in toks)
        shared = [t for t in toks if s1 <= t[0] and t[1] <= e0]
        assert len(shared) <= overlap


def test_exact_overlap_without_whitespace():
    text = "abcdefghij" * 10
    spans = chunk_offsets([text], max_chars=30, overlap=10)[0]
    assert spans[:3] == [(0, 30), (20, 50), (40, 70)]
    assert spans[-1][1] == 100


def test_prefers_paragraph_then_line_then_sentence_then_word():
    para = "First para one. Two words\n\nSecond para"
    assert chunk_offsets([para], max_chars=35)[0][0] == (0, 27)
    line = "line one is here\nline two. Is here"
    assert chunk_offsets([line], max_chars=30)[0][0] == (0, 17)
    sent = "Sentence one. Sentence two goes on"
    assert chunk_offsets([sent], max_chars=30)[0][0] == (0, 14)
    words = "alpha beta gamma delta"
    assert chunk_offsets([words], max_chars=13)[0][0] == (0, 11)


def test_overlap_snaps_to_word_start():
    text = "aaaa bbbb cccc dddd eeee ffff gggg"
    spans = chunk_offsets([text], max_chars=15, overlap=7)[0]
    check_cover(text, spans, 7)
    for s, _ in spans[1:]:
        assert text[s - 1] == " "


def test_empty_and_whitespace_texts(tok):
    assert chunk_offsets(["", " ", "\n\n"], max_chars=5) == [[], [(0, 1)], [(0, 2)]]
    assert chunk_offsets(["", "   "], max_tokens=5, tokenizer=tok) == [[], [(0, 3)]]


def test_code_points_never_split():
    text = "😀é中" * 50
    spans = chunk_offsets([text], max_chars=7, overlap=2)[0]
    assert "".join(text[s:e] for s, e in spans if True)  # slicing a str is always whole code points
    assert all(e - s <= 7 for s, e in spans)
    # Byte-level safety: the native side works on UTF-8 and must map back to the same str indices.
    assert spans[0] == (0, 7)


def test_long_word_split_at_token_boundaries(tok):
    text = "antidisestablishmentarianism" * 20
    spans = chunk_offsets([text], max_tokens=5, tokenizer=tok)[0]
    toks = token_spans(tok, text)
    check_cover(text, spans, 0)
    for s, e in spans:
        assert len([t for t in toks if s <= t[0] and t[1] <= e]) <= 5


def test_threads_and_batch_agree(tok):
    texts = ["Paragraph one. More text here.\n\nParagraph two, with words. " * 40, "", "short"] * 20
    one = chunk_offsets(texts, max_chars=100, overlap=20, threads=1)
    assert chunk_offsets(texts, max_chars=100, overlap=20, threads=2) == one
    assert one == [_core.chunk_chars([t], 100, 20)[0] for t in texts]
    t1 = chunk_offsets(texts, max_tokens=32, overlap_tokens=4, tokenizer=tok, threads=1)
    assert chunk_offsets(texts, max_tokens=32, overlap_tokens=4, tokenizer=tok, threads=2) == t1


def test_default_tokenizer_used_for_tokens():
    assert chunk_offsets(["hello world"], max_tokens=1) == [[(0, 6), (6, 11)]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chars": 0},
        {"max_chars": -5},
        {"max_chars": 10, "overlap": 10},
        {"max_chars": 10, "overlap": 11},
        {"max_chars": 10, "overlap": -1},
        {"max_tokens": 0},
        {"max_tokens": 8, "overlap_tokens": 8},
        {"max_tokens": 8, "overlap_tokens": -1},
        {},
        {"max_chars": 10, "max_tokens": 10},
        {"max_chars": 10, "overlap_tokens": 2},
        {"max_tokens": 10, "overlap": 2},
        {"max_chars": 10, "threads": 0},
    ],
)
def test_invalid_params_raise(tok, kwargs):
    if "max_tokens" in kwargs:
        kwargs = {**kwargs, "tokenizer": tok}
    with pytest.raises(ValueError):
        chunk_offsets(["some text"], **kwargs)


def test_invalid_params_raise_even_for_empty_input():
    with pytest.raises(ValueError):
        chunk_offsets([], max_chars=10, overlap=10)


def test_non_str_input_raises_type_error():
    with pytest.raises(TypeError):
        chunk_offsets("not a list", max_chars=10)
    with pytest.raises(TypeError):
        chunk_offsets([b"bytes"], max_chars=10)  # type: ignore[list-item]
