"""prompt() and embed_text(): templates with field placeholders, the LLM op spec, and the
``llm_call`` op (requests as coroutines on the runtime's event loop, ``LlmRunner``).

Formatting a Field into a string (``PROMPT.format(doc=doc_flow["document"])`` or an f-string)
writes a placeholder marker: two private-use code points around the field's registration number.
``parse_template`` turns such a string back into literal parts and fields when the op is built;
templates without markers may name fields as ``{name}`` (``str.format`` syntax, ``{{``/``}}`` for
literal braces), resolved against the flow and its parents.
"""
from __future__ import annotations

import itertools
import json
import re
import string
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daft_flow.forksafe import ForkSafeLock
from daft_flow.ops.registry import Expr, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.expressions import Field
    from daft_flow.flow import Flow
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer

_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(_OPEN + r"([0-9a-f]+)" + _CLOSE)
_MAX_REGISTERED = 1 << 16
_registry: "OrderedDict[int, Field]" = OrderedDict()
_counter = itertools.count(1)
_lock = ForkSafeLock()

PROMPT, EMBED = "prompt", "embed"


def placeholder(f: "Field") -> str:
    """The marker that stands for ``f`` inside a formatted string."""
    with _lock:
        key = next(_counter)
        _registry[key] = f
        while len(_registry) > _MAX_REGISTERED:
            _registry.popitem(last=False)
    return f"{_OPEN}{key:x}{_CLOSE}"


def has_placeholders(text: str) -> bool:
    return _OPEN in text


# Literal braces are the common way a template goes wrong (a JSON example in a prompt).
BRACES_HINT = 'write {{ and }} for literal braces (a JSON example: \'Return {{"a": 1}}\')'


def check_reserved(template: str, op: str) -> None:
    """Raises if ``template`` holds U+E000/U+E001 outside a field placeholder: daft_flow reserves
    these private-use characters to mark where formatted fields go, so a literal one is ambiguous."""
    outside = _MARKER.sub(lambda m: " " * len(m.group(0)), template)
    for pos, ch in enumerate(outside):
        if ch in (_OPEN, _CLOSE):
            raise ValueError(f"{op}: the template contains U+{ord(ch):04X} at position {pos}, a private-use character "
                             f"daft_flow reserves for field placeholders; remove it from the literal text "
                             f"(text.replace({ch!r}, ''))")


def parse_template(template: str, lookup: Any, op: str) -> tuple[list[str], list["Field"]]:
    """Splits ``template`` into ``literals`` (one more than fields) and the fields between them.

    ``lookup(name)`` resolves ``{name}`` placeholders in templates that carry no markers.
    """
    if not isinstance(template, str):
        raise TypeError(f"{op} needs a str template or a field, got {type(template).__name__}")
    check_reserved(template, op)
    literals: list[str] = []
    fields: list["Field"] = []
    if has_placeholders(template):
        pos = 0
        for m in _MARKER.finditer(template):
            with _lock:
                f = _registry.get(int(m.group(1), 16))
            if f is None:
                raise ValueError(f"{op}: the template refers to a field placeholder that is no longer known; "
                                 "format the template right before building the op")
            literals.append(template[pos:m.start()])
            fields.append(f)
            pos = m.end()
        literals.append(template[pos:])
        return literals, fields
    current = ""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"{op}: invalid template ({e}); {BRACES_HINT}") from e
    for text, name, spec, conv in parsed:
        current += text
        if name is None:
            continue
        if not name.isidentifier():
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{op}: {shown} in the template is not a field name; {BRACES_HINT}")
        if spec or conv:
            raise ValueError(f"{op}: placeholder {{{name}}} cannot have a format spec or conversion; {BRACES_HINT}")
        literals.append(current)
        fields.append(lookup(name))
        current = ""
    literals.append(current)
    return literals, fields


@dataclass(frozen=True, eq=False)
class LlmSpec:
    """An LLM op: which provider/model, and the request options."""

    kind: str                       # PROMPT | EMBED
    provider: Any = None            # a Provider, or None for the default at run time
    model: str = ""                 # "" = the provider's default
    max_tokens: int = 0             # 0 = provider default
    temperature: float | None = None
    response_format: dict[str, Any] | None = None  # structured output: OpenAI response_format
    output_model: Any = None        # a pydantic model class validating structured output
    options: dict[str, Any] = field(default_factory=dict)
    include_finish_reason: bool = False  # the field is {"answer": ..., "finish_reason": ...}

    @property
    def name(self) -> str:
        return "prompt" if self.kind == PROMPT else "embed_text"


def make_llm_spec(kind: str, *, provider: Any = None, model: str | None = None, max_tokens: int | None = None,
                  temperature: float | None = None, response_format: Any = None, options: dict[str, Any] | None = None,
                  include_finish_reason: bool = False) -> LlmSpec:
    from daft_flow.llm.provider import Provider

    op = "prompt()" if kind == PROMPT else "embed_text()"
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"{op}: provider must be a dflow provider (e.g. dflow.OpenAIProvider), "
                        f"got {type(provider).__name__}")
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError(f"{op}: model must be a non-empty str, got {model!r}")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0):
        raise ValueError(f"{op}: max_tokens must be a positive int, got {max_tokens!r}")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        raise ValueError(f"{op}: temperature must be a number in [0, 2], got {temperature!r}")
    if not isinstance(include_finish_reason, bool):
        raise TypeError(f"{op}: include_finish_reason must be True or False, got {include_finish_reason!r}")
    rf, output_model = _response_format(response_format, op)
    options = _check_options(options, op)
    return LlmSpec(kind=kind, provider=provider, model=model or "", max_tokens=max_tokens or 0,
                   temperature=None if temperature is None else float(temperature), response_format=rf,
                   output_model=output_model, options=options, include_finish_reason=include_finish_reason)


def _check_options(options: Any, op: str) -> dict[str, Any]:
    """Request parameters are sent as JSON and kept in the plan as JSON: they must be JSON."""
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise TypeError(f"{op}: options must be a dict of str -> JSON value, got {options!r}")
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{op}: options must be JSON values (they are sent in the request body): {e}") from None
    secret = _credential_key(options)
    if secret is not None:
        raise ValueError(f"{op}: options[{secret!r}] looks like a credential; options are part of the plan (explain, "
                         "fingerprints, plans sent to other processes), so credentials go to the provider: "
                         "OpenAIProvider(api_key=... or api_key_env=...)")
    return dict(options)


def _credential_key(value: Any, path: str = "") -> str | None:
    from daft_flow.plan.logic_hash import is_credential_name

    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else k
            if is_credential_name(k):
                return where
            found = _credential_key(v, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _credential_key(v, path)
            if found is not None:
                return found
    return None


def _response_format(value: Any, op: str) -> tuple[dict[str, Any] | None, Any]:
    if value is None:
        return None, None
    model_json_schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(model_json_schema):
        schema = model_json_schema()
        return {"type": "json_schema", "json_schema": {"name": value.__name__, "schema": schema}}, value
    if isinstance(value, dict):
        if value.get("type") in ("json_schema", "json_object"):
            return dict(value), None
        return {"type": "json_schema", "json_schema": {"name": str(value.get("title", "output")), "schema": value}}, None
    raise TypeError(f"{op}: response_format must be a pydantic model class or a JSON schema dict, "
                    f"got {type(value).__name__}")


def parse_structured(text: str, spec: LlmSpec) -> Any:
    """A structured answer as JSON, validated by the pydantic model when one was given."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"prompt(): the model's answer is not JSON: {text[:200]!r}") from e
    if spec.output_model is not None:
        return spec.output_model.model_validate(value).model_dump(mode="json")
    return value


def llm_field(spec: LlmSpec, literals: list[str], fields: list["Field"], target: "Flow | None", op: str) -> "Field":
    """The Field of an LLM op over a template: rendered natively, then sent to the provider."""
    from daft_flow.expressions import Field, deepest_flow
    from daft_flow.ops.python_udf import PythonCall, make_udf
    from daft_flow.ops.render_template import RenderTemplate

    if target is None and fields:
        target = deepest_flow(tuple(fields))
    if target is None or not fields:
        raise ValueError(f"{op}: the template uses no field; format fields into it "
                         "(TEMPLATE.format(x=flow[\"x\"])) or call prompt() on a field")
    levels = target._level.ancestors()
    args: list[Expr] = []
    for f in fields:
        if not isinstance(f, Field):
            raise TypeError(f"{op}: template values must be fields, got {type(f).__name__}")
        if not any(f._flow._level.same_rows(lvl) for lvl in levels):
            raise ValueError(f"{op}: field {f.name!r} belongs to flow {f._flow.name!r}, which is neither flow "
                             f"{target.name!r} nor one of its parents")
        if f.dtype.kind in ("str", "HTML"):
            args.append(f._expr)
        else:
            udf = make_udf(as_text, return_type=str, batch=False, max_in_flight=None, batch_size=None,
                           where=f"field {f.name!r} of flow {f._flow.name!r}")
            args.append(PythonCall(udf, (f._expr,)))
    if len(args) == 1 and literals == ["", ""]:
        text: Expr = args[0]
    else:
        text = RenderTemplate(literals, tuple(args))
    return Field(LlmCall(spec, text, _result_type(spec)), target, spec.name)


def _result_type(spec: LlmSpec) -> DataType:
    if spec.kind == EMBED:
        dim = getattr(spec.provider, "embedding_dim", 0) if spec.provider is not None else 0
        return DataType.embedding(dim) if dim else DataType("Embedding")
    structured = spec.response_format is not None or spec.include_finish_reason
    return DataType("JSON") if structured else DataType("str")


def as_text(value: Any) -> str:
    """A non-text template value as text: JSON for dicts and lists, ``str`` for the rest."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_KINDS = {PROMPT: 0, EMBED: 1}  # ir.LlmCall.Kind


@register
class LlmCall(Expr):
    """prompt() / embed_text() of the text ``arg``."""

    kind = "llm_call"

    def __init__(self, spec: LlmSpec, arg: Expr, dtype: DataType) -> None:
        self.spec = spec
        self.arg = arg
        self.dtype = dtype

    def label(self) -> str:
        return str(self.spec.name)

    def inputs(self) -> tuple[Expr, ...]:
        return (self.arg,)

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        spec, msg = self.spec, node.llm_call
        msg.kind = _KINDS[spec.kind]  # type: ignore[assignment]
        msg.model, msg.max_tokens = spec.model, spec.max_tokens
        msg.provider_ref = -1 if spec.provider is None else t.ref(spec.provider)
        msg.provider = "default" if spec.provider is None else spec.provider.describe()
        if spec.temperature is not None:
            msg.has_temperature, msg.temperature = True, spec.temperature
        if spec.response_format is not None:
            # Key order kept: a JSON schema's property order is what the model fills in first.
            msg.response_format_json = json.dumps(spec.response_format)
        if spec.options:
            msg.options_json = json.dumps(spec.options, sort_keys=True)
        msg.output_model_ref = -1 if spec.output_model is None else t.ref(spec.output_model)
        msg.include_finish_reason = spec.include_finish_reason

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        c = node.llm_call
        kind = "embed_text" if c.kind == _KINDS[EMBED] else "prompt"
        opts = [c.provider] + ([f"model={c.model}"] if c.model else []) + \
            ([f"max_tokens={c.max_tokens}"] if c.max_tokens else []) + \
            ([f"temperature={c.temperature:g}"] if c.has_temperature else []) + \
            (["structured"] if c.response_format_json else []) + \
            (["with finish_reason"] if c.include_finish_reason else [])
        return f"{kind}[{', '.join(opts)}]"

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        c = node.llm_call
        if c.provider_ref >= 0:
            provider = plan.objects[c.provider_ref].fingerprint
        else:  # the default provider is chosen where the plan runs: this process's is what would answer
            from daft_flow.llm.defaults import default_provider
            from daft_flow.plan.logic_hash import digest

            provider = "default:" + digest(default_provider())
        return {"kind": int(c.kind), "provider": provider,
                "model": c.model, "max_tokens": c.max_tokens,
                "temperature": repr(c.temperature) if c.has_temperature else None,
                "response_format": c.response_format_json, "options": c.options_json,
                "output_model": plan.objects[c.output_model_ref].fingerprint if c.output_model_ref >= 0 else "",
                "include_finish_reason": c.include_finish_reason}

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        from daft_flow.plan.trace import dtype_from_ir

        return LlmCall(cls.spec_of(node, objects), args[0], dtype_from_ir(node.type))

    @classmethod
    def spec_of(cls, node: "ir.Node", objects: list[Any]) -> LlmSpec:
        c = node.llm_call
        return LlmSpec(kind=EMBED if c.kind == _KINDS[EMBED] else PROMPT,
                       provider=objects[c.provider_ref] if c.provider_ref >= 0 else None, model=c.model,
                       max_tokens=c.max_tokens, temperature=c.temperature if c.has_temperature else None,
                       response_format=json.loads(c.response_format_json) if c.response_format_json else None,
                       output_model=objects[c.output_model_ref] if c.output_model_ref >= 0 else None,
                       options=json.loads(c.options_json) if c.options_json else {},
                       include_finish_reason=c.include_finish_reason)

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        from daft_flow import _core
        from daft_flow.execution.python_runners import LlmRunner
        from daft_flow.llm.defaults import default_provider

        c = node.llm_call
        spec = cls.spec_of(node, ctx.objects)
        provider = spec.provider if spec.provider is not None else default_provider()
        embed = spec.kind == EMBED
        model = c.model or (provider.embedding_model if embed else provider.model)
        name = spec.name
        field = node.name or name
        report = ctx.usage
        if all(p is not provider for p in report.providers):
            provider._begin_run()  # the run holds the provider until run_batches ends it (_end_run)
            report.providers.append(provider)
        cap = 0 if embed else (spec.max_tokens or getattr(provider, "default_max_tokens", 0))
        op_usage = report.op(field if field not in report.ops else f"{field}#{node.id}", op=name, field=field,
                             flow=ctx.plan.levels[node.level].flow, model=model, max_tokens=cap)
        arg = _core.ArgSpec(node.inputs[0], ctx.plan.nodes[node.inputs[0]].level)
        info = _core.OpInfo(node.id, node.level, [arg], name, field, ctx.plan.levels[node.level].flow)
        runner = LlmRunner(spec, provider, model, name, ctx.out_type(node), op_usage)
        # In a checkpointed run every answer is journaled as it arrives, cache= or not.
        ctx.run.add_python_batch(info, ctx.cached(node, runner, name, journal=True), ctx.options.async_concurrency)
        ctx.cancellables.append(runner)
