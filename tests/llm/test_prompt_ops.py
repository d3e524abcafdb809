"""prompt() and embed_text() end to end against the fault server on loopback."""
import pydantic
import pytest

import daft_flow as dflow


def test_field_prompt_collects_answers_and_usage(fault_server, provider):
    flow = dflow.Flow("text", str)
    flow["summary"] = flow["text"].prompt("summarize this", provider=provider, max_tokens=6)
    rows = flow.collect_batch([f"row number {i} has some words" for i in range(20)])
    assert all(r["summary"].startswith("answer ") for r in rows)
    assert len(rows[0]["summary"].split()) <= 6
    usage = flow.last_usage()
    stats = fault_server.stats()
    assert usage["summary"].requests == stats["received"] == 20
    assert usage["summary"].input_tokens == stats["prompt_tokens"]
    assert usage["summary"].output_tokens == stats["completion_tokens"]
    assert usage["summary"].rows == 20 and usage["summary"].errors == 0
    assert dflow.usage() is usage


def test_contextual_template_reads_parent_fields_natively(fault_server, default_to):
    doc = dflow.Flow("document", str)
    chunks = doc["document"].chunk_text(max_chars=20, overlap=0)
    chunks["ctx"] = chunks.prompt("DOC {d} CHUNK {c} END".format(d=doc["document"], c=chunks["chunk"]),
                                  max_tokens=64)
    text = "alpha beta gamma delta. epsilon zeta eta theta. iota kappa."
    rows = chunks.collect(text)
    assert len(rows) >= 3
    for r in rows:
        # The fault server echoes the prompt after "answer <hash>": the rendered template.
        assert r["ctx"].split()[2:] == f"DOC {text} CHUNK {r['chunk']} END".split()


def test_retries_429_500_drops_and_counts_match(fault_server, provider):
    fault_server.configure(rate_limit_rate=0.15, error_rate=0.1, drop_rate=0.05)
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=provider, max_tokens=4)
    rows = flow.collect_batch([f"input {i}" for i in range(40)])
    assert len(rows) == 40 and all(r["a"] for r in rows)
    u = flow.last_usage()["a"]
    stats = fault_server.stats()
    assert u.requests == stats["received"]
    assert u.retries == stats["received"] - 40 > 0
    assert stats["chat"] == stats["received"]
    assert u.input_tokens == stats["prompt_tokens"]


def test_slow_answers_time_out_and_retry(fault_server):
    fault_server.configure(slow_rate=0.3, slow_seconds=1.0)
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                             timeout=0.3, max_retries=6)
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=p, max_tokens=4)
    rows = flow.collect_batch([f"slow {i}" for i in range(12)])
    assert all(r["a"] for r in rows)
    assert flow.last_usage()["a"].retries == fault_server.stats().get("slow", 0) > 0


def test_provider_error_after_retries_fails_row_with_message_and_row_id(fault_server):
    fault_server.configure(error_rate=1.0)
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                             max_retries=2)
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=p)
    with pytest.raises(dflow.ProviderError, match="injected server error") as info:
        flow.collect("doomed")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "row" in notes and "prompt" in notes
    assert fault_server.stats()["received"] == 3
    assert flow.last_usage()["a"].errors == 1 and flow.last_usage()["a"].retries == 2


def test_invalid_key_is_one_error_not_one_per_row(fault_server):
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key="wrong", model="fault-chat",
                             max_concurrency=1)
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=p)
    with pytest.raises(dflow.ProviderConfigError, match="Incorrect API key"):
        flow.collect_batch([f"r{i}" for i in range(50)])
    assert fault_server.stats()["received"] <= 2


def test_unknown_model_is_one_error(fault_server, provider):
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=provider, model="gpt-nonexistent")
    with pytest.raises(dflow.ProviderConfigError, match="does not exist"):
        flow.collect_batch([f"r{i}" for i in range(30)])


def test_structured_output_with_pydantic(fault_server, provider):
    class Info(pydantic.BaseModel):
        title: str
        score: int

    flow = dflow.Flow("text", str)
    flow["info"] = flow["text"].prompt("extract", provider=provider, response_format=Info)
    assert flow.fields["info"] == dflow.DataType("JSON")
    row = flow.collect("some text")
    assert set(row["info"]) == {"title", "score"} and isinstance(row["info"]["score"], int)


def test_embed_text_batches_inputs_per_request(fault_server):
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key,
                             embedding_model="fault-embed", embedding_batch_size=16, embedding_dim=384)
    flow = dflow.Flow("text", str)
    flow["emb"] = flow["text"].embed_text(provider=p)
    assert flow.fields["emb"] == dflow.DataType.embedding(384)
    rows = flow.collect_batch([f"text {i}" for i in range(64)], first_batch_rows=64)
    assert all(len(r["emb"]) == 384 for r in rows)
    stats = fault_server.stats()
    assert stats["embedding_inputs"] == 64 and stats["embeddings"] == 4
    assert flow.last_usage()["emb"].requests == 4


def test_rate_limiter_paces_requests_per_minute(fault_server):
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                             requests_per_minute=600, burst=1)
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=p)
    import time

    start = time.monotonic()
    flow.collect_batch([f"r{i}" for i in range(15)])
    assert time.monotonic() - start >= 1.3  # 15 requests at 10/s, one at a time


def test_cached_tokens_and_cost_from_price_table(fault_server, provider):
    dflow.set_price("fault-chat", input=1.0, cached_input=0.5, output=2.0)
    try:
        doc = dflow.Flow("document", str)
        chunks = doc["document"].chunk_text(max_chars=40, overlap=0)
        chunks["ctx"] = chunks.prompt("{d}\n---\n{c}".format(d=doc["document"], c=chunks["chunk"]), max_tokens=4,
                                      provider=provider)
        document = " ".join(f"word{i}" for i in range(80))
        rows = chunks.collect(document)
        u = chunks.last_usage()["ctx"]
        stats = fault_server.stats()
        assert len(rows) > 2 and u.cached_tokens == stats["cached_tokens"] > 0
        expected = ((u.input_tokens - u.cached_tokens) * 1.0 + u.cached_tokens * 0.5 + u.output_tokens * 2.0) / 1e6
        assert u.cost_usd == pytest.approx(expected)
    finally:
        from daft_flow.llm.usage import PRICES

        PRICES.pop("fault-chat", None)


def test_tokens_per_minute_limit_paces_and_settles(fault_server):
    p = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                             tokens_per_minute=12000)  # 200 tokens/s, at most 200 saved up
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=p, max_tokens=40)
    import time

    words = " ".join(f"w{i}" for i in range(60))
    start = time.monotonic()
    flow.collect_batch([f"{i} {words}" for i in range(6)])  # ~100 tokens per request, as reported
    assert time.monotonic() - start >= 1.0
    # Reported usage replaces the estimates: the bucket was charged what the server counted.
    assert flow.last_usage()["a"].input_tokens == fault_server.stats()["prompt_tokens"]


def test_null_template_field_fails_the_row_not_the_run(fault_server, provider):
    flow = dflow.Flow("text", str)
    flow["maybe"] = flow["text"].run_python(lambda t: None if t == "bad" else t, return_type=str)
    flow["a"] = flow.prompt("Q: {maybe}", provider=provider)
    out = flow.collect_batch(["good", "bad"], on_error="return")
    assert out[0]["a"].startswith("answer")
    assert isinstance(out[1], dflow.RowFailure) and "null" in str(out[1].error)


def test_stream_prompt_rows(fault_server, default_to):
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q")
    got = [r["a"] for r in flow.stream([f"s{i}" for i in range(10)])]
    assert len(got) == 10 and all(got)


def test_run_stopped_early_cancels_in_flight_requests(fault_server, provider):
    import time

    fault_server.configure(slow_rate=1.0, slow_seconds=4.0)

    def stop_on(text: str) -> str:
        if text == "stop":
            raise KeyboardInterrupt
        return text

    flow = dflow.Flow("text", str)
    flow["checked"] = flow["text"].run_python(stop_on)
    flow["a"] = flow["checked"].prompt("q", provider=provider)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        flow.collect_batch(["slow one", "stop", "x"], first_batch_rows=1)
    assert time.monotonic() - start < 3.0  # not waiting for the 4-second answer
