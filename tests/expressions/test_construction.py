"""Expressions are typed when they are built: mistakes fail then, naming the flow, field and op."""
from __future__ import annotations

import pytest

import daft_flow as dflow


@pytest.fixture
def doc():
    doc = dflow.Flow("document", str)
    doc["n"] = doc["document"].str.len()
    doc["meta"] = doc["document"].run_python(lambda s: {"a": 1}, return_type=dflow.JSON)
    doc["blob"] = doc["document"].run_python(lambda s: s.encode(), return_type=bytes)
    doc["ok"] = doc["n"] > 3
    return doc


def test_type_mismatches_name_flow_field_and_op(doc):
    with pytest.raises(TypeError, match=r"str\.lower\(\) needs a str, but field 'n' of flow 'document' is int"):
        doc["n"].str.lower()
    with pytest.raises(TypeError, match=r"\+ needs numbers \(or two str, for \+\), but field 'document' of flow "
                                        r"'document' \(str\) is not"):
        doc["document"] + doc["n"]
    with pytest.raises(TypeError, match=r"- needs numbers, but the literal 'x' \(str\) is not"):
        doc["n"] - "x"
    with pytest.raises(TypeError, match=r"< compares two numbers, two str or two bools, not field 'n'"):
        _ = doc["n"] < "x"
    with pytest.raises(TypeError, match=r"& combines bools .* field 'n' of flow 'document' \(int\) is not a bool"):
        doc["ok"] & doc["n"]
    with pytest.raises(TypeError, match=r"list\.len\(\) needs a list, but field 'document'"):
        doc["document"].list.len()
    with pytest.raises(TypeError, match=r"embedding\.norm\(\) needs an Embedding, but field 'n'"):
        doc["n"].embedding.norm()
    with pytest.raises(TypeError, match=r"is_null cannot use field 'blob' of flow 'document' \(bytes\)"):
        doc["blob"].is_null()
    with pytest.raises(TypeError, match=r"cast\(\) cannot convert field 'ok' of flow 'document' from bool to JSON"):
        doc["ok"].cast(dflow.JSON)
    with pytest.raises(TypeError, match=r"if_else\(\) branches must have one type"):
        dflow.if_else(doc["ok"], doc["n"], "x")
    with pytest.raises(TypeError, match=r"fill_null\(\) on field 'n' .* cannot use the literal 'x'"):
        doc["n"].fill_null("x")
    with pytest.raises(TypeError, match=r"json.get\(\) needs JSON text"):
        doc["n"].json.get("a", int)


def test_bad_options_fail_at_construction(doc):
    with pytest.raises(ValueError, match=r"str\.extract on field 'document'.*invalid regex \(unclosed"):
        doc["document"].str.extract("(unclosed")
    with pytest.raises(ValueError, match=r"group 2 does not exist"):
        doc["document"].str.extract("(a)", 2)
    with pytest.raises(ValueError, match=r"invalid regex"):
        doc["document"].str.count_matches(r"(a)\1")  # backreferences: not in RE2
    with pytest.raises(ValueError, match=r"invalid path a\.\.b"):
        doc["meta"].json.get("a..b", int)
    with pytest.raises(ValueError, match="empty separator"):
        doc["document"].str.split("")
    with pytest.raises(OverflowError, match="does not fit in 64 bits"):
        doc["n"] + 2**70
    with pytest.raises(TypeError, match="cannot use a dict value"):
        doc["n"] + {"a": 1}


def test_fields_stay_usable_as_dict_keys_and_in_templates(doc):
    f = doc["n"]
    assert {f: 1}[f] == 1
    assert f in {f}
    assert isinstance(f == 3, dflow.Field)
    with pytest.raises(TypeError, match="no truth value"):
        bool(f == 3)
    with pytest.raises(TypeError, match="no truth value"):
        if 1 < f < 3:  # a chained comparison needs bool() of the first: a build-time mistake
            pass
    assert "\ue000" in f"{doc['document']}"  # formatting into a prompt template still works


def test_result_types_and_names(doc):
    assert (doc["n"] / 2).dtype == dflow.DataType("float")
    assert (doc["n"] // 2).dtype == dflow.DataType("int")
    assert (doc["n"] * 2.0).dtype == dflow.DataType("float")
    assert (doc["document"] + "!").dtype == dflow.DataType("str")
    assert doc["document"].str.split().dtype == dflow.DataType.list_of(dflow.DataType("str"))
    assert doc["meta"].json.get("a", int).dtype == dflow.DataType("int")
    assert doc["meta"].json.get("a", dflow.JSON).dtype == dflow.DataType("JSON")
    assert dflow.if_else(doc["ok"], doc["n"], 0.5).dtype == dflow.DataType("float")
    assert (doc["n"] * 2).name == "(n * 2)"
    assert doc["document"].str.lower().name == "document.str.lower()"


def test_filter_and_select_check_their_arguments(doc):
    with pytest.raises(TypeError, match="filter\\(\\) needs a bool predicate, but field 'n'"):
        doc.filter(doc["n"])
    with pytest.raises(TypeError, match="needs a bool field expression"):
        doc.filter(True)
    other = dflow.Flow("x", str)
    with pytest.raises(ValueError, match="neither that flow nor one of its parents"):
        doc.filter(other["x"].str.len() > 1)
    chunks = doc["document"].chunk_text(max_chars=10)
    with pytest.raises(ValueError, match="computed per row of the parent flow 'document'; filter that flow"):
        chunks.filter(doc["n"] > 1)
    with pytest.raises(KeyError, match="has no field 'nope'"):
        doc.select("nope")
    with pytest.raises(ValueError, match="would keep no field"):
        doc.select("n").exclude("n")
    with pytest.raises(ValueError, match="non-negative int"):
        doc.limit(-1)
