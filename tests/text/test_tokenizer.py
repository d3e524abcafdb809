from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daft_flow.text import Tokenizer, UnsupportedTokenizer

from text_hard_cases import HARD_CASES

tokenizers = pytest.importorskip("tokenizers")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Characters around the interesting classes: ASCII, accents, CJK, whitespace, controls, punctuation.
ALPHABET = st.sampled_from(
    list("aAzZ09 .,!?'\"-_#[]()\t\n\r") + ["é", "É", "e\u0301", "ß", "İ", "中", "한", "😀", "\u00a0", "\u3000",
                                          "\x00", "\x7f", "\u200b", "\ufffd", "«", "—", "…", "ﬁ", "Σ", "[SEP]",
                                          "[CLS]", "##", "\u0301", "\U00020000", "\uf900"]
)
MIXED = st.lists(ALPHABET, max_size=60).map("".join)


def hf_offsets_ok(ours, theirs):
    return ours == [tuple(o) for o in theirs]


@pytest.mark.parametrize("text", HARD_CASES, ids=range(len(HARD_CASES)))
def test_hard_cases_match_hf(tok, hf, text):
    enc = hf.encode(text)
    assert tok.encode(text) == enc.ids
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == enc.ids
    assert hf_offsets_ok(offsets, enc.offsets)
    assert tok.encode(text, add_special_tokens=False) == hf.encode(text, add_special_tokens=False).ids
    assert tok.count(text) == len(hf.encode(text, add_special_tokens=False).ids)


def test_encode_batch_matches_hf(tok, hf):
    texts = HARD_CASES * 5
    expected = [e.ids for e in hf.encode_batch(texts)]
    assert tok.encode_batch(texts) == expected
    assert tok.encode_batch(texts, threads=1) == expected
    assert tok.encode_batch(texts, add_special_tokens=False) == [
        e.ids for e in hf.encode_batch(texts, add_special_tokens=False)
    ]
    assert tok.count_batch(texts) == [len(x) - 2 for x in expected]
    assert tok.encode_batch([]) == []


@SETTINGS
@given(st.text(max_size=80))
def test_any_text_matches_hf(tok, hf, text):
    enc = hf.encode(text)
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == enc.ids
    assert hf_offsets_ok(offsets, enc.offsets)


@SETTINGS
@given(MIXED)
def test_mixed_text_matches_hf(tok, hf, text):
    enc = hf.encode(text)
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == enc.ids
    assert hf_offsets_ok(offsets, enc.offsets)


def _multilingual_sample() -> list[str]:
    """Real text in many scripts from what ships on the machine: translated gettext catalogs (as the
    tokenize benchmark's multilingual corpus uses), CPython's CJK test texts, rich's emoji."""
    import gettext
    import sysconfig

    from rich._emoji_codes import EMOJI

    texts = []
    for mo in sorted(Path("/usr/share/locale").glob("*/LC_MESSAGES/glib20.mo"))[:40]:
        with mo.open("rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
        messages = [v for k, v in sorted(catalog.items(), key=lambda kv: str(kv[0])) if k and isinstance(v, str)]
        texts.append("\n".join(messages[:150]))
    cjk = Path(sysconfig.get_paths()["stdlib"]) / "test" / "cjkencodings"
    texts += [p.read_text(encoding="utf-8") for p in sorted(cjk.glob("*-utf8.txt"))]
    emoji = sorted(EMOJI.values())
    return [t + " " + " ".join(emoji[i::40][:30]) for i, t in enumerate(texts)]


def test_multilingual_text_matches_hf(tok, hf):
    texts = _multilingual_sample()
    if len(texts) < 5:
        pytest.skip("no translated catalogs or CPython CJK test texts on this machine")
    encs = hf.encode_batch(texts)
    assert tok.encode_batch(texts) == [e.ids for e in encs]
    for text, enc in zip(texts, encs):
        ids, offsets = tok.encode_with_offsets(text)
        assert ids == enc.ids
        assert hf_offsets_ok(offsets, enc.offsets)
    assert tok.count_batch(texts) == [len(e.ids) - 2 for e in encs]


def test_every_code_point_matches_hf(tok, hf):
    # One text per code point, in context, so every Unicode table entry is compared with HF.
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = [" ".join(f"a{chr(c)}b {chr(c)}" for c in cps[i : i + 64]) for i in range(0, len(cps), 64)]
    ours = tok.encode_batch(texts, add_special_tokens=False)
    theirs = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad = [texts[i][:40] for i in range(len(texts)) if ours[i] != theirs[i]]
    assert not bad, bad[:5]


@pytest.mark.parametrize(
    "normalizer",
    [
        {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": False},
        {"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": False, "strip_accents": True, "lowercase": False},
        {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": False, "lowercase": True},
        None,
    ],
    ids=["cased", "strip-only", "lower-no-strip", "no-normalizer"],
)
def test_normalizer_variants_match_hf(tok, tmp_path, normalizer):
    data = json.loads(Path(tok.path).read_text(encoding="utf-8"))
    data["normalizer"] = normalizer
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    ours = Tokenizer.from_file(path)
    theirs = tokenizers.Tokenizer.from_file(str(path))
    theirs.no_truncation()
    theirs.no_padding()
    for text in HARD_CASES:
        enc = theirs.encode(text)
        ids, offsets = ours.encode_with_offsets(text)
        assert ids == enc.ids, text
        assert hf_offsets_ok(offsets, enc.offsets), text


def test_vocab_txt_matches_hf_bert_wordpiece(tok):
    vocab = str(tok.path).replace("tokenizer.json", "vocab.txt")
    ours = Tokenizer.from_file(vocab)
    theirs = tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)
    for text in HARD_CASES:
        assert ours.encode(text) == theirs.encode(text).ids, text
    assert ours.vocab_size == theirs.get_vocab_size()


def test_bert_processing_post_processor(tok, tmp_path):
    data = json.loads(Path(tok.path).read_text(encoding="utf-8"))
    data["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert Tokenizer.from_file(path).encode("hi there") == tok.encode("hi there")


def test_api_basics(tok):
    assert tok.encode("hello world") == [101, 7592, 2088, 102]
    assert tok.encode("hello world", add_special_tokens=False) == [7592, 2088]
    assert tok.count("hello world") == 2
    assert tok.count("") == 0
    assert tok.encode("") == [101, 102]
    assert tok.encode_with_offsets("hello world") == ([101, 7592, 2088, 102], [(0, 0), (0, 5), (6, 11), (0, 0)])
    assert tok.token_to_id("[CLS]") == 101
    assert tok.token_to_id("no-such-token") is None
    assert tok.vocab_size == 30522
    with pytest.raises(TypeError):
        tok.encode(b"bytes")  # type: ignore[arg-type]


def test_missing_file_raises_value_error(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match="nope.json"):
        Tokenizer.from_file(missing)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.json", "{not json"),
        ("other.json", '{"hello": 1}'),
        ("model.bin", "\x00\x01binary"),
        ("empty.json", ""),
        ("vocab.txt", "hello\nworld\n"),  # no [UNK]
    ],
)
def test_invalid_files_raise_value_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        Tokenizer.from_file(path)


def test_bpe_model_is_not_implemented(tmp_path):
    from tokenizers import models

    bpe = tokenizers.Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    path = tmp_path / "bpe.json"
    bpe.save(str(path))
    with pytest.raises(NotImplementedError, match="BPE"):
        Tokenizer.from_file(path)
    with pytest.raises(UnsupportedTokenizer, match="bpe.json"):
        Tokenizer.from_file(path)


def test_unsupported_normalizer_is_not_implemented(tok, tmp_path):
    data = json.loads(Path(tok.path).read_text(encoding="utf-8"))
    data["normalizer"] = {"type": "NFKC"}
    path = tmp_path / "nfkc.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(NotImplementedError, match="NFKC"):
        Tokenizer.from_file(path)
