"""chunk_text and tokenize as flow ops: child flows, parent fields, errors at construction."""
import pytest

import daft_flow as dflow
from daft_flow.text import Tokenizer


def test_seed_quickstart_runs_as_far_as_chunking():
    document_flow = dflow.Flow("document", str)
    chunk_flow = document_flow.chunk_text()
    rows = chunk_flow.collect("The quick brown fox jumps over the lazy dog")
    assert rows == [{"chunk": "The quick brown fox jumps over the lazy dog", "chunk_index": 0,
                     "start_offset": 0, "end_offset": 43}]
    batch = chunk_flow.collect_batch([
        "The quick brown fox jumps over the lazy dog",
        "The five boxing wizards jump quickly",
        "Sphinx of black quartz, judge my vow",
    ])
    assert [len(r) for r in batch] == [1, 1, 1]


def test_chunks_cover_text_with_offsets_and_read_parent_fields():
    doc = dflow.Flow("document", str)
    doc["title"] = doc["document"].run_python(lambda d: d.split(".")[0], return_type=str)
    chunks = doc["document"].chunk_text(max_chars=60, overlap=10)
    chunks["title"] = chunks["chunk"].run_python(lambda c, t: t, doc["title"], return_type=str)
    text = "Ünïcödé title. " + " ".join(f"sentence number {i} ends here." for i in range(40))
    rows = chunks.collect(text)
    assert len(rows) > 5
    for i, r in enumerate(rows):
        assert text[r["start_offset"]:r["end_offset"]] == r["chunk"]
        assert r["chunk_index"] == i and len(r["chunk"]) <= 60 and r["title"] == "Ünïcödé title"
    assert rows[0]["start_offset"] == 0 and rows[-1]["end_offset"] == len(text)


def test_chunk_by_tokens_respects_the_limit():
    tok = Tokenizer.default()
    chunks = dflow.Flow("d", str).chunk_text(max_tokens=16, overlap_tokens=4, tokenizer=tok)
    chunks["ids"] = chunks["chunk"].tokenize(tok, add_special_tokens=False)
    text = "Tokenizers split words into word pieces; chunking by tokens keeps every chunk under a model's limit. " * 5
    rows = chunks.collect(text)
    assert len(rows) > 3
    assert all(len(r["ids"]) <= 16 for r in rows)
    assert rows[0]["ids"] == tok.encode(rows[0]["chunk"], add_special_tokens=False)


def test_empty_and_null_texts_have_no_chunks():
    chunks = dflow.Flow("d", str | None).chunk_text(max_chars=10, overlap=2)
    assert chunks.collect_batch(["", None, "ok"]) == [[], [], [
        {"chunk": "ok", "chunk_index": 0, "start_offset": 0, "end_offset": 2}]]


def test_tokenize_matches_the_tokenizer():
    tok = Tokenizer.default()
    flow = dflow.Flow("t", str)
    flow["ids"] = flow["t"].tokenize()
    texts = ["Hello, world!", "日本語", "", "naïve café"]
    assert [r["ids"] for r in flow.collect_batch(texts)] == tok.encode_batch(texts)


def test_chunk_text_needs_str():
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len, return_type=int)
    with pytest.raises(TypeError, match='chunk_text\\(\\) needs str, field "n" of flow "doc" is int'):
        doc["n"].chunk_text()
    with pytest.raises(TypeError, match="tokenize"):
        doc["n"].tokenize()


@pytest.mark.parametrize("kwargs, match", [
    ({"max_chars": 0}, "max_chars must be a positive int"),
    ({"max_chars": 100, "overlap": 100}, "must be smaller than max_chars"),
    ({"max_chars": 100, "overlap": -1}, ">= 0"),
    ({"max_tokens": 8, "overlap_tokens": 8}, "must be smaller than max_tokens"),
    ({"max_chars": 10, "max_tokens": 10}, "not both"),
])
def test_invalid_chunk_parameters_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dflow.Flow("d", str).chunk_text(**kwargs)


def test_unknown_tokenizer_fails_at_construction(tmp_path):
    with pytest.raises(ValueError, match="nope.json"):
        dflow.Flow("d", str).chunk_text(max_tokens=10, tokenizer=str(tmp_path / "nope.json"))
    with pytest.raises(TypeError, match="tokenizer must be"):
        dflow.Flow("d", str).chunk_text(max_tokens=10, tokenizer=42)


def test_chunk_flow_round_trips_through_the_ir():
    from daft_flow.plan.trace import trace

    chunks = dflow.Flow("d", str).chunk_text(max_tokens=32, overlap_tokens=4)
    chunks["ids"] = chunks["chunk"].tokenize()
    traced = trace(chunks)
    again = dflow.Flow.from_bytes(chunks.to_bytes())
    assert trace(again).plan == traced.plan
    assert again.collect("some text to chunk by tokens") == chunks.collect("some text to chunk by tokens")
    assert "chunk_text max_tokens=32" in chunks.explain()
