"""prompt()/embed_text() construction: templates with field placeholders, validation, IR."""
import pytest

import daft_flow as dflow
from daft_flow.plan.trace import trace

PROMPT = "<doc>\n{doc}\n</doc>\n<chunk>{chunk}</chunk>\nsituate it"


def _flows():
    doc = dflow.Flow("url", str)
    doc["document"] = doc["url"].run_python(lambda u: u.upper(), return_type=str)
    chunks = doc["document"].chunk_text(max_chars=10, overlap=0)
    return doc, chunks


def test_format_field_makes_placeholders_with_parent_fields(default_to):
    doc, chunks = _flows()
    chunks["ctx"] = chunks.prompt(PROMPT.format(doc=doc["document"], chunk=chunks["chunk"]))
    assert chunks.fields["ctx"] == dflow.DataType("str")
    text = chunks.explain()
    assert "render_template" in text and "prompt[" in text
    node = [n for n in chunks.to_ir().nodes if n.WhichOneof("op") == "render_template"][0]
    assert list(node.render_template.literals) == ["<doc>\n", "\n</doc>\n<chunk>", "</chunk>\nsituate it"]


def test_fstring_and_named_fields(default_to):
    doc, chunks = _flows()
    f = chunks.prompt(f"summarize: {chunks['chunk']}")
    assert f.dtype == dflow.DataType("str")
    g = chunks.prompt("summarize {chunk} (#{chunk_index})")  # own fields by name, int converted to text
    assert g.dtype == dflow.DataType("str")


def test_template_naming_missing_field_fails_at_construction(default_to):
    doc, chunks = _flows()
    with pytest.raises(KeyError, match="missing"):
        chunks.prompt("summarize {missing}")
    with pytest.raises(KeyError, match="nope"):
        chunks.prompt(PROMPT.format(doc=doc["nope"], chunk=chunks["chunk"]))


def test_template_with_foreign_field_fails_at_construction(default_to):
    _, chunks = _flows()
    other = dflow.Flow("x", str)
    with pytest.raises(ValueError, match="neither flow"):
        chunks.prompt(PROMPT.format(doc=other["x"], chunk=chunks["chunk"]))
    doc, _ = _flows()
    with pytest.raises(ValueError, match="neither flow"):  # a child field in a parent's prompt
        doc.prompt(f"{chunks['chunk']}")


def test_field_format_spec_and_bad_options_fail():
    flow = dflow.Flow("x", str)
    with pytest.raises(TypeError, match="format spec"):
        f"{flow['x']:>10}"
    with pytest.raises(ValueError, match="max_tokens"):
        flow["x"].prompt("hi", max_tokens=0)
    with pytest.raises(TypeError, match="provider"):
        flow["x"].prompt("hi", provider="openai")
    with pytest.raises(ValueError, match="no field"):
        flow.prompt("no fields at all")


def test_ir_round_trip_keeps_llm_nodes(default_to):
    doc, chunks = _flows()
    chunks["ctx"] = chunks.prompt(PROMPT.format(doc=doc["document"], chunk=chunks["chunk"]), max_tokens=8,
                                  temperature=0.0)
    chunks["emb"] = chunks.embed_text(f"{chunks['ctx']}\n{chunks['chunk']}")
    traced = trace(chunks)
    again = dflow.Flow.from_bytes(chunks.to_bytes())
    assert trace(again).plan == traced.plan and again.fingerprint() == chunks.fingerprint()
    kinds = [n.WhichOneof("op") for n in traced.plan.nodes]
    assert kinds.count("llm_call") == 2 and kinds.count("render_template") == 2


def test_field_prompt_instruction_braces_are_literal_unless_fields_are_formatted_in(default_to):
    doc, chunks = _flows()
    chunks["a"] = chunks["chunk"].prompt('answer as JSON like {"title": "..."}')
    node = [n for n in chunks.to_ir().nodes if n.WhichOneof("op") == "render_template"][0]
    assert list(node.render_template.literals) == ['answer as JSON like {"title": "..."}\n\n', ""]
    chunks["b"] = chunks["chunk"].prompt(f"Document: {doc['document']}. Summarize the chunk:")
    lits = [list(n.render_template.literals) for n in chunks.to_ir().nodes if n.WhichOneof("op") == "render_template"]
    assert ["Document: ", ". Summarize the chunk:\n\n", ""] in lits


@pytest.mark.parametrize("char", ["\ue000", "\ue001"])
def test_reserved_placeholder_characters_are_named_in_the_error(char):
    flow = dflow.Flow("x", str)
    cases = [lambda: flow.prompt(f"a {char} b {{x}}"),                 # named-field template
             lambda: flow.prompt(f"{flow['x']} then {char}"),          # formatted field + stray char
             lambda: flow["x"].prompt(f"literal {char} instruction"),  # Field.prompt instruction
             lambda: flow.embed_text(f"{char}{{x}}")]
    for build in cases:
        with pytest.raises(ValueError, match=f"U\\+{ord(char):04X} at position .*reserves for field placeholders"):
            build()


@pytest.mark.parametrize("template, shown", [
    ('Return {"a": 1}', '{"a": 1}'), ("Return {0}", "{0}"), ("Return {}", "{}"), ("Return { x }", "{ x }"),
    ("use {x.title}", "{x.title}"),
])
def test_braces_that_are_not_field_names_get_the_literal_braces_hint(template, shown):
    flow = dflow.Flow("x", str)
    with pytest.raises(ValueError, match="literal braces") as info:
        flow.prompt(template)
    assert f"{shown} in the template is not a field name" in str(info.value)
    assert "{{" in str(info.value)


def test_unknown_name_and_bad_spec_also_hint_at_literal_braces():
    flow = dflow.Flow("x", str)
    with pytest.raises(KeyError, match="literal braces"):
        flow.prompt("Return {a}")
    with pytest.raises(ValueError, match="literal braces"):
        flow.prompt("Return {x!r}")
    flow["ok"] = flow.prompt('Return {{"a": 1}} for {x}', provider=dflow.OpenAIProvider(api_key="k"))
