"""Cost estimates before a run: ``flow.estimate(inputs, sample=None)``.

The plan runs for real up to its LLM calls, with three changes:

- every LLM op talks to a ``CountingProvider`` instead of its provider: it counts the request's
  input tokens with the model's tokenizer (``llm.model_tokens``), books the expected output
  tokens, and answers with a placeholder of that length (a JSON example for structured output)
  without sending anything; embeddings are grouped into requests exactly as the provider groups
  them, and answered with zero vectors;
- Python functions no LLM op depends on (directly or through the levels it lives in) answer None
  without being called; sinks are among them, so nothing is written;
- the run records nothing (``dflow.last_run()`` and ``dflow.usage()`` keep the last real run) and
  shows no progress.

So reads, chunking, templates and the Python functions that feed a template run on the inputs,
and the requests and input tokens are those the run would send. Expected output tokens are the
op's ``max_tokens`` (what a budget reserves), else ``DEFAULT_OUTPUT_TOKENS``, unless
``output_tokens=`` says otherwise. Ops after an LLM op see placeholder answers: a function that
parses an answer may fail on them, and rows it fails send no later requests (the estimate then
counts fewer; ``failed_rows`` says how many rows failed while estimating). Functions that no LLM
op needs are not run, so rows they would fail are counted as if they went on (an over-estimate).

``sample=n`` (or a share in (0, 1]) runs evenly spaced inputs and scales the counts by
inputs / sampled. The duration is what the provider's rate limits allow: the requests and tokens
of all ops sharing a provider against its requests- and tokens-per-minute (None for a provider
without limits); providers work in parallel, so the run's is the longest of them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

from daft_flow.llm.model_tokens import CHAT_FRAMING_TOKENS, counter_for
from daft_flow.llm.provider import Provider
from daft_flow.llm.usage import cost_of

DEFAULT_OUTPUT_TOKENS = 256  # the answer length assumed for prompts without max_tokens


@dataclass
class OpEstimate:
    """One LLM op: what running it on the inputs would use."""

    key: str
    op: str             # "prompt" or "embed_text"
    field: str
    flow: str
    model: str
    provider: str
    tokenizer: str      # what counted the input tokens ("tiktoken:o200k_base", "wordpiece", ...)
    exact_tokens: bool  # counted with the model's own tokenizer
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0  # expected
    cost_usd: float | None = None  # None: the model has no price (dflow.set_price)
    duration_s: float | None = None  # this op alone under its provider's limits

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Estimate:
    """What a run would use, per LLM op and in total (``estimate.ops["summary"].requests``)."""

    ops: dict[str, OpEstimate]
    inputs: int | None        # inputs of the run (None when unknown: an iterator)
    sampled: int              # inputs the estimate ran
    scale: float              # counts were multiplied by this (inputs / sampled)
    duration_s: float | None  # the longest provider under its rate limits; None without limits
    failed_rows: int = 0      # rows that failed while estimating (see the module docstring)
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(op.requests for op in self.ops.values())

    @property
    def input_tokens(self) -> int:
        return sum(op.input_tokens for op in self.ops.values())

    @property
    def output_tokens(self) -> int:
        return sum(op.output_tokens for op in self.ops.values())

    @property
    def cost_usd(self) -> float | None:
        costs = [op.cost_usd for op in self.ops.values()]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "sampled": self.sampled, "scale": self.scale, "requests": self.requests,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd,
                "duration_s": self.duration_s, "failed_rows": self.failed_rows, "notes": list(self.notes),
                "ops": {k: op.as_dict() for k, op in self.ops.items()}}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    def __repr__(self) -> str:
        def money(c: float | None) -> str:
            return "no price" if c is None else f"${c:.4f}"

        def secs(s: float | None) -> str:
            return "no limits" if s is None else f"{s:,.0f} s"

        head = f"Estimate({self.inputs if self.inputs is not None else '?'} inputs"
        if self.sampled != self.inputs:
            head += f", from a sample of {self.sampled}"
        lines = [head + f": {self.requests:,} requests, {self.input_tokens:,} input + {self.output_tokens:,} output "
                 f"tokens, {money(self.cost_usd)}, {secs(self.duration_s)}"]
        for k, op in self.ops.items():
            lines.append(f"  {k}: {op.op} {op.model}: {op.requests:,} requests, {op.input_tokens:,} in "
                         f"({op.tokenizer}) + {op.output_tokens:,} out, {money(op.cost_usd)}, {secs(op.duration_s)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines) + ")"


class CountingProvider(Provider):
    """Stands in for a provider while estimating: counts, answers placeholders, sends nothing."""

    def __init__(self, real: Provider, output_tokens: int | None) -> None:
        self.real = real
        self.model, self.embedding_model = real.model, real.embedding_model
        self.embedding_dim = real.embedding_dim
        self.output_tokens = output_tokens
        self.ops: dict[int, Any] = {}  # OpUsage objects of the ops using it

    def describe(self) -> str:
        return self.real.describe()

    def _note(self, usage: Any) -> None:
        op = getattr(usage, "op_usage", usage)
        self.ops[id(op)] = op

    async def complete(self, prompt: str, *, model: str, usage: Any, max_tokens: int | None = None,
                       temperature: float | None = None, response_format: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None) -> str:
        self._note(usage)
        counter = counter_for(model)
        n_in = counter.count(prompt) + (CHAT_FRAMING_TOKENS if counter.exact else 0)
        n_out = self.output_tokens or max_tokens or DEFAULT_OUTPUT_TOKENS
        usage.add(requests=1, input_tokens=n_in, output_tokens=n_out)
        if response_format is not None:
            from daft_flow.llm.schema_example import example_value

            schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get("schema") or {}
            return json.dumps(example_value(schema, "0000"))
        return " ".join(["x"] * n_out)  # as long as an answer is expected to be, for templates reading it

    async def embed(self, texts: Sequence[str], *, model: str, usage: Any) -> list[list[float]]:
        self._note(usage)
        usage.add(requests=1, input_tokens=sum(counter_for(model).count_batch(list(texts))))
        return [[0.0] * max(1, self.embedding_dim) for _ in texts]

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        return self.real.embedding_batches(texts)


def _needed_nodes(plan: Any) -> set[int]:
    """Nodes some LLM op needs: its inputs, theirs, and what makes the levels they live in."""
    needed: set[int] = set()
    stack = [n.id for n in plan.nodes if n.WhichOneof("op") == "llm_call"]
    while stack:
        i = stack.pop()
        if i in needed:
            continue
        needed.add(i)
        node = plan.nodes[i]
        stack.extend(node.inputs)
        level = plan.levels[node.level]
        while level.parent >= 0:
            stack.append(level.source_node)
            level = plan.levels[level.parent]
    return needed


def _none_row(*args: Any) -> None:
    return None


def _none_batch(*columns: Any) -> list[None]:
    return [None] * (len(columns[0]) if columns else 0)


async def _none_async(*args: Any) -> None:
    return None


def estimation_plan(traced: Any, output_tokens: int | None) -> tuple[Any, list[CountingProvider]]:
    """A copy of ``traced`` that counts instead of calling models (see the module docstring)."""
    from daft_flow.llm.defaults import default_provider
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import TracedPlan

    if any(n.HasField("cache") for n in traced.plan.nodes) and not traced.plan.fingerprint:
        from daft_flow.plan.fingerprint import fingerprint_plan

        fingerprint_plan(traced)  # cache keys are the real ops' (counting providers change no key)
    plan = ir.Plan()
    plan.CopyFrom(traced.plan)
    objects = list(traced.objects)

    def add(obj: Any) -> int:
        """Appends to the object table (plan.objects[i] describes objects[i])."""
        objects.append(obj)
        plan.objects.add(module=type(obj).__module__, qualname=getattr(obj, "__qualname__", type(obj).__qualname__))
        return len(objects) - 1

    needed = _needed_nodes(plan)
    counting: dict[int, CountingProvider] = {}
    nulls = {ir.PythonUdf.ROW: _none_row, ir.PythonUdf.BATCH: _none_batch, ir.PythonUdf.ASYNC: _none_async}
    for node in plan.nodes:
        kind = node.WhichOneof("op")
        if kind == "llm_call":
            c = node.llm_call
            real = objects[c.provider_ref] if c.provider_ref >= 0 else default_provider()
            if id(real) not in counting:
                counting[id(real)] = CountingProvider(real, output_tokens)
            c.provider_ref = add(counting[id(real)])
        elif kind == "python_udf" and node.id not in needed:
            node.python_udf.fn_ref = add(nulls[node.python_udf.mode])
        if node.HasField("cache"):  # rows the cache holds cost nothing; placeholders are never stored
            from daft_flow.cache import ReadOnly, resolve

            node.cache.cache_ref = add(ReadOnly(resolve(node.cache.cache_ref, objects)))
    return TracedPlan(plan, objects), list(counting.values())


def _sample(values: Any, total: int | None, sample: int | float | None) -> tuple[Any, int | None, int, float]:
    """(inputs to run, inputs in all, inputs run, scale)."""
    if sample is None:
        return values, total, total or 0, 1.0
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or sample <= 0 or \
            (isinstance(sample, float) and sample > 1):
        raise ValueError(f"estimate(): sample must be a number of inputs (int > 0) or a share in (0, 1], got {sample!r}")
    if total is None:  # an iterator: its length is needed to extrapolate
        values = list(values)
        total = len(values)
    n = min(total, sample if isinstance(sample, int) else max(1, math.ceil(sample * total)))
    if n == total:
        return values, total, total, 1.0
    indices = [i * total // n for i in range(n)]
    import pyarrow as pa

    if isinstance(values, (pa.Table, pa.RecordBatch, pa.Array, pa.ChunkedArray)):
        picked: Any = values.take(pa.array(indices, type=pa.int64()))
    else:
        seq = values if hasattr(values, "__getitem__") else list(values)
        picked = [seq[i] for i in indices]
    return picked, total, n, total / n


def estimate(target: Any, inputs: Iterable[Any], *, sample: int | float | None = None,
             output_tokens: int | None = None, **options: Any) -> Estimate:
    """See ``Flow.estimate`` and the module docstring. ``target``: a Flow, SinkFlow or Multisink."""
    from daft_flow.execution.runner import _input_count, run_batches
    from daft_flow.plan.trace import trace, trace_outputs

    if output_tokens is not None and (isinstance(output_tokens, bool) or not isinstance(output_tokens, int)
                                      or output_tokens <= 0):
        raise ValueError(f"estimate(): output_tokens must be a positive int, got {output_tokens!r}")
    options.pop("max_cost_usd", None)  # counting sends nothing
    options["progress"] = False
    sinks = getattr(target, "sinks", None)
    if sinks is not None:  # a Multisink
        traced, _ = trace_outputs([s.rows for s in sinks])
    else:
        traced = trace(getattr(target, "rows", target))  # a SinkFlow's rows, or a Flow
    if isinstance(inputs, (str, bytes)):
        raise TypeError("estimate() takes an iterable of inputs, like collect_batch; for one input use [value]")
    values, total, sampled, scale = _sample(inputs, _input_count(inputs), sample)
    counting_plan, providers = estimation_plan(traced, output_tokens)

    class _Owner:
        _last_usage: Any = None
        _last_run: Any = None

    owner = _Owner()
    for _ in run_batches(counting_plan, values, lambda run: None, usage_owner=owner, record=False, **options):
        pass
    report = owner._last_run
    if not sampled:
        sampled = report.inputs if report is not None else 0
        total = total if total is not None else sampled
    ops: dict[str, OpEstimate] = {}
    busy: dict[int, tuple[Any, int, int]] = {}  # per provider: (limiter, requests, tokens)
    usage = owner._last_usage
    for key, u in (usage.ops.items() if usage is not None else ()):
        provider = next((p for p in providers if id(u) in p.ops), None)
        counter = counter_for(u.model)
        requests, n_in, n_out = round(u.requests * scale), round(u.input_tokens * scale), round(u.output_tokens * scale)
        op = OpEstimate(key, u.op, u.field, u.flow, u.model, provider.describe() if provider else "",
                        counter.name, counter.exact, requests, n_in, n_out, cost_of(u.model, n_in, 0, n_out))
        limiter = getattr(provider.real, "limiter", None) if provider is not None else None
        op.duration_s = _duration(limiter, requests, n_in + n_out)
        ops[key] = op
        if provider is not None:
            _, r, t = busy.get(id(provider), (limiter, 0, 0))
            busy[id(provider)] = (limiter, r + requests, t + n_in + n_out)
    durations = [_duration(limiter, r, t) for limiter, r, t in busy.values()]
    known = [d for d in durations if d is not None]
    result = Estimate(ops, total, sampled, scale, max(known) if known else None)
    if report is not None:
        result.failed_rows = sum(f.failed - f.skipped for f in report.flows.values())
        if result.failed_rows:
            result.notes.append(f"{result.failed_rows} row(s) failed while estimating (ops reading placeholder "
                                "answers, or bad inputs); requests after them are not counted")
    for op in ops.values():
        if op.cost_usd is None:
            result.notes.append(f"model {op.model!r} has no price: set one with dflow.set_price")
        if not op.exact_tokens:
            result.notes.append(f"{op.key}: input tokens of {op.model!r} estimated with {op.tokenizer}")
    return result


def _duration(limiter: Any, requests: int, tokens: int) -> float | None:
    rpm = getattr(limiter, "requests_per_minute", None)
    tpm = getattr(limiter, "tokens_per_minute", None)
    if not rpm and not tpm:
        return None
    return 60.0 * max(requests / rpm if rpm else 0.0, tokens / tpm if tpm else 0.0)
