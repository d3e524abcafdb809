"""Answers cut at max_tokens: the finish reason is kept, counted in usage and logged once per op."""
import logging

import pytest

import daft_flow as dflow


def test_truncated_answers_are_counted_and_logged_once_per_op(fault_server, provider, caplog):
    flow = dflow.Flow("text", str)
    flow["cut"] = flow["text"].prompt("summarize", provider=provider, max_tokens=3)
    flow["whole"] = flow["text"].prompt("summarize", provider=provider, max_tokens=64)
    with caplog.at_level(logging.INFO, logger="daft_flow"):
        rows = flow.collect_batch([f"row {i} has quite a few words in it" for i in range(30)])
    assert len(rows) == 30
    usage = flow.last_usage()
    assert usage["cut"].truncated == 30 and usage["whole"].truncated == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one for the op, not one per row
    assert "prompt computing field 'cut' of flow 'text': 30 of 30 answer(s) were cut at max_tokens=3" in warnings[0]
    assert "truncated=30" in repr(usage)


def test_include_finish_reason_keeps_it_per_row(fault_server, provider):
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=provider, max_tokens=4, include_finish_reason=True)
    assert flow.fields["a"] == dflow.DataType("JSON")
    short, long = flow.collect_batch(["hi", "one two three four five six"])
    assert short["a"]["finish_reason"] == "stop" and short["a"]["answer"].startswith("answer ")
    assert long["a"]["finish_reason"] == "length"
    with pytest.raises(TypeError, match="include_finish_reason must be True or False"):
        flow["text"].prompt("q", include_finish_reason="yes")


class PlainText(dflow.Provider):
    """A custom provider that returns plain strings: its finish reasons are unknown (None)."""

    model = "plain"

    async def complete(self, prompt, *, model, usage, **kwargs):
        usage.add(requests=1)
        return prompt.upper()

    async def embed(self, texts, *, model, usage):
        raise NotImplementedError


def test_providers_may_return_plain_text():
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q:", provider=PlainText(), include_finish_reason=True)
    flow["b"] = flow["text"].prompt("q:", provider=PlainText())
    row = flow.collect("x")
    assert row["a"] == {"answer": "Q:\n\nX", "finish_reason": None} and row["b"] == "Q:\n\nX"


def test_usage_is_the_last_run_even_without_llm_ops(fault_server, provider):
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=provider, max_tokens=4)
    flow.collect("x")
    assert dflow.usage()["a"].requests == 1 and flow.last_usage() is dflow.usage()
    plain = dflow.Flow("n", int)
    plain["m"] = plain["n"].run_python(lambda n: n + 1, return_type=int)
    assert plain.last_usage() is None  # not run yet
    plain.collect(1)
    assert len(dflow.usage()) == 0 and not dflow.usage() and repr(dflow.usage()) == "UsageReport()"
    assert len(plain.last_usage()) == 0 and flow.last_usage()["a"].requests == 1
