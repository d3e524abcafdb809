"""prompt() and embed_text(): templates with field placeholders, and the LLM op spec.

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
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daft_flow.expressions import Field

_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(_OPEN + r"([0-9a-f]+)" + _CLOSE)
_MAX_REGISTERED = 1 << 16
_registry: "OrderedDict[int, Field]" = OrderedDict()
_counter = itertools.count(1)
_lock = threading.Lock()

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

    @property
    def name(self) -> str:
        return "prompt" if self.kind == PROMPT else "embed_text"


def make_llm_spec(kind: str, *, provider: Any = None, model: str | None = None, max_tokens: int | None = None,
                  temperature: float | None = None, response_format: Any = None, options: dict[str, Any] | None = None,
                  ) -> LlmSpec:
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
    rf, output_model = _response_format(response_format, op)
    return LlmSpec(kind=kind, provider=provider, model=model or "", max_tokens=max_tokens or 0,
                   temperature=None if temperature is None else float(temperature), response_format=rf,
                   output_model=output_model, options=dict(options or {}))


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
