"""flow.estimate() and max_cost_usd against the fault server, which reports usage and counts requests."""
import random

import pytest

import daft_flow as dflow
from daft_flow.errors import NOT_DONE
from daft_flow.execution.estimate import DEFAULT_OUTPUT_TOKENS

# Plain English prose, what the seed's flows summarise: the fault server counts whitespace words,
# our WordPiece tokenizer word pieces and punctuation (about 10-20% more on such text).
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "The five boxing wizards jump quickly.",
    "Sphinx of black quartz, judge my vow.", "A data engine moves batches of rows between operators.",
    "Every input row ends in exactly one place.", "Large documents are read once and split into chunks.",
    "The model writes a short summary of each chunk of text.", "Rate limits keep the requests under the quota.",
    "Nobody likes to pay twice for the same answer.", "The report shows where the time went.",
]
CHAT_PRICE, EMBED_PRICE = (2.0, 8.0), 0.5  # USD per 1M tokens


def documents(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(4, 30))) for _ in range(n)]


def billed(stats: dict) -> float:
    """What the server's reported usage costs at our prices (chat and embedding tokens split by kind)."""
    embed_tokens = stats.get("embedding_tokens", 0)
    return ((stats["prompt_tokens"] - embed_tokens) * CHAT_PRICE[0] + stats["completion_tokens"] * CHAT_PRICE[1]
            + embed_tokens * EMBED_PRICE) / 1e6


@pytest.fixture
def priced():
    dflow.set_price("fault-chat", input=CHAT_PRICE[0], output=CHAT_PRICE[1])
    dflow.set_price("fault-embed", input=EMBED_PRICE)


def pipeline(provider):
    doc = dflow.Flow("doc", str)
    chunks = doc["doc"].chunk_text(max_chars=300, overlap=40)
    chunks["summary"] = chunks["chunk"].prompt("Summarize this chunk of text in one sentence.", provider=provider,
                                                max_tokens=24)
    chunks["embedding"] = chunks.embed_text(f"{chunks['summary']}\n{chunks['chunk']}", provider=provider)
    return chunks


def test_estimate_matches_what_the_run_uses(provider, fault_server, priced):
    flow = pipeline(provider)
    docs = documents(60)
    estimate = flow.estimate(docs)
    assert fault_server.stats().get("received", 0) == 0  # estimating sends nothing
    assert estimate.inputs == estimate.sampled == 60 and estimate.scale == 1.0
    flow.collect_batch(docs)
    server = fault_server.stats()
    usage = flow.last_usage()
    assert server["received"] == usage.total("requests")  # no faults: the run sent each request once
    summary = estimate.ops["summary"]
    assert summary.requests == usage["summary"].requests  # one request per chunk, exactly
    assert summary.output_tokens == 24 * summary.requests  # max_tokens is the expected answer
    assert abs(estimate.requests - server["received"]) <= 0.02 * server["received"]
    assert abs(estimate.input_tokens - server["prompt_tokens"]) <= 0.35 * server["prompt_tokens"]
    assert summary.tokenizer == "wordpiece" and not summary.exact_tokens  # the fault model's tokenizer is unknown
    assert estimate.cost_usd == pytest.approx(summary.cost_usd + estimate.ops["embedding"].cost_usd)
    assert estimate.duration_s is None  # no rate limits: nothing bounds it but the server


def test_a_sample_is_extrapolated(provider, fault_server, priced):
    flow = pipeline(provider)
    docs = documents(80)
    full = flow.estimate(docs)
    part = flow.estimate(docs, sample=20)
    assert part.sampled == 20 and part.inputs == 80 and part.scale == 4.0
    assert abs(part.ops["summary"].requests - full.ops["summary"].requests) <= 0.15 * full.ops["summary"].requests
    share = flow.estimate(iter(docs), sample=0.5)  # an iterator is read to know how many inputs it has
    assert share.sampled == 40 and share.inputs == 80
    assert fault_server.stats().get("received", 0) == 0


def test_estimate_writes_no_sink_and_uses_the_rate_limits(fault_server, tmp_path, priced):
    limited = dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                                   requests_per_minute=600, tokens_per_minute=60_000)
    doc = dflow.Flow("doc", str)
    doc["summary"] = doc["doc"].prompt("Summarize.", provider=limited)  # no max_tokens: the default rule
    sink = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"summary": doc["summary"]})
    docs = documents(30)
    estimate = sink.estimate(docs)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    op = estimate.ops["summary"]
    assert op.requests == 30 and op.output_tokens == 30 * DEFAULT_OUTPUT_TOKENS
    tokens = op.input_tokens + op.output_tokens
    assert op.duration_s == pytest.approx(60 * max(30 / 600, tokens / 60_000))
    assert estimate.duration_s == op.duration_s
    assert doc.estimate(docs, output_tokens=10).ops["summary"].output_tokens == 300
    assert fault_server.stats().get("received", 0) == 0


def test_estimate_rejects_bad_arguments(provider):
    flow = pipeline(provider)
    with pytest.raises(ValueError, match="sample must be"):
        flow.estimate(["a"], sample=0)
    with pytest.raises(ValueError, match="sample must be"):
        flow.estimate(["a"], sample=1.5)
    with pytest.raises(ValueError, match="output_tokens must be"):
        flow.estimate(["a"], output_tokens=-1)
    with pytest.raises(TypeError, match="iterable of inputs"):
        flow.estimate("a single string")


def test_budget_at_half_the_cost_bills_at_most_the_budget(provider, fault_server, priced):
    flow = pipeline(provider)
    docs = documents(60)
    flow.collect_batch(docs)
    full = billed(fault_server.stats())
    assert full == pytest.approx(flow.last_run().cost_usd)
    fault_server.reset_counters()
    fault_server.configure(latency=0.01)  # requests overlap: reservations are made while others are in flight
    budget = full / 2
    # Small batches, so rows finish both LLM ops before the budget is gone (in one big batch every
    # summary is asked for before any embedding, and the budget would end between the two).
    results = flow.collect_batch(docs, max_cost_usd=budget, on_error="return", batch_rows=8, first_batch_rows=8,
                                 async_concurrency=1)
    spent = billed(fault_server.stats())
    assert 0 < spent <= budget
    report = flow.last_run()
    assert report.budget["spent_usd"] == pytest.approx(spent) and report.budget["exhausted"]
    failures = [r for rows in results for r in rows if isinstance(r, dflow.RowFailure)]
    done = [r for rows in results for r in rows if isinstance(r, dict)]
    assert failures and done and all(isinstance(f.error, dflow.BudgetExceeded) for f in failures)
    chunks = report.accounting["doc.chunks"]
    assert chunks["rows"] == chunks["succeeded"] + chunks["failed"] == len(done) + len(failures)
    assert report.flows["doc.chunks"].budget_exceeded == len(failures)
    assert report.ops["summary"].failures_by_type.get("BudgetExceeded", 0) + \
        report.ops["embedding"].failures_by_type.get("BudgetExceeded", 0) == len(failures)
    assert 0 < report.budget["requests_refused"] <= len(failures)  # an embedding request holds several rows
    assert isinstance(failures[0].error, NOT_DONE)  # a checkpoint would run these rows again


def test_budget_stops_a_stream_and_a_multisink(provider, fault_server, priced, tmp_path):
    doc = dflow.Flow("doc", str)
    doc["summary"] = doc["doc"].prompt("Summarize.", provider=provider, max_tokens=10)
    docs = documents(40)
    stream = doc.stream(docs, max_cost_usd=3e-3, on_error="skip")
    rows = list(stream)
    assert billed(fault_server.stats()) <= 3e-3
    assert rows and stream.failures and len(rows) + len(stream.failures) == 40
    fault_server.reset_counters()
    chunks = doc["doc"].chunk_text(max_chars=200)
    chunks["summary"] = chunks["chunk"].prompt("Summarize.", provider=provider, max_tokens=10)
    a = chunks.write_sink(dflow.JSONFileSink(str(tmp_path / "a")), {"s": chunks["summary"]})
    b = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "b")), {"d": doc["doc"]})
    results = dflow.collect(dflow.Multisink([a, b]), docs[0], max_cost_usd=1e-9, on_error="return")
    assert results[0].rows_written == 0 and isinstance(results[0].failures[0].error, dflow.BudgetExceeded)
    assert results[1].rows_written == 1  # the document needs no request: its sink still gets it
    assert fault_server.stats().get("received", 0) == 0


def test_budget_needs_bounded_requests(provider, priced):
    doc = dflow.Flow("doc", str)
    doc["summary"] = doc["doc"].prompt("Summarize.", provider=provider)
    with pytest.raises(ValueError, match="no max_tokens"):
        doc.collect_batch(["x"], max_cost_usd=1.0)
    other = dflow.Flow("doc", str)
    other["summary"] = other["doc"].prompt("Summarize.", provider=provider, model="unpriced-model", max_tokens=5)
    with pytest.raises(ValueError, match="'unpriced-model'.*has no price"):
        other.collect_batch(["x"], max_cost_usd=1.0)
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="max_cost_usd must be"):
            doc.collect_batch(["x"], max_cost_usd=bad)
