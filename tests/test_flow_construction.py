import pytest

import daft_flow as dflow


def test_default_field_name():
    flow = dflow.Flow(str)
    assert flow.fields == {"input": dflow.DataType("str")}
    assert dflow.DEFAULT_FIELD == "input"


def test_setitem_adds_fields_and_ops_return_new_flows():
    doc = dflow.Flow("document", str)
    doc["n"] = doc["document"].run_python(len, return_type=int)
    derived = doc.run_python(lambda n: n * 2, return_type=int)
    assert list(doc.fields) == ["document", "n"]
    assert list(derived.fields) == ["document", "n", "run_python"]
    assert derived is not doc


def test_unknown_field_lists_the_fields_that_exist():
    doc = dflow.Flow("document", str)
    doc["size"] = doc["document"].run_python(len, return_type=int)
    with pytest.raises(KeyError) as e:
        doc["sizes"]
    assert "'document'" in str(e.value) and "'size'" in str(e.value) and "'sizes'" in str(e.value)


def test_annotation_mismatch_is_a_type_error_naming_flow_field_and_op():
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len, return_type=int)

    def shout(x: str) -> str:
        return x.upper()

    with pytest.raises(TypeError) as e:
        doc["n"].run_python(shout)
    msg = str(e.value)
    assert "run_python(" in msg and "shout" in msg and "'n'" in msg and "'doc'" in msg and "int" in msg


def test_int_field_accepted_by_float_parameter():
    flow = dflow.Flow("x", int)

    def half(x: float) -> float:
        return x / 2

    flow["h"] = flow["x"].run_python(half)
    assert flow.collect(3) == {"x": 3, "h": 1.5}


def test_wrong_arity_is_an_error():
    flow = dflow.Flow("x", int)
    with pytest.raises(TypeError, match="bound to 1 field"):
        flow["x"].run_python(lambda a, b: a)


def test_non_callable_and_non_field_values_are_rejected():
    flow = dflow.Flow("x", int)
    with pytest.raises(TypeError, match="callable"):
        flow["x"].run_python(3)
    with pytest.raises(TypeError, match="field expression"):
        flow["y"] = 5


def test_field_from_a_child_flow_cannot_be_assigned_to_the_parent():
    doc = dflow.Flow("doc", str)
    words = doc["doc"].flat_map(str.split, return_type=list[str], field="word")
    with pytest.raises(ValueError, match="neither flow"):
        doc["w"] = words["word"]


def test_initial_field_cannot_be_replaced_and_reserved_names_rejected():
    doc = dflow.Flow("doc", str)
    with pytest.raises(ValueError, match="initial field"):
        doc["doc"] = doc["doc"].run_python(str.upper, return_type=str)
    with pytest.raises(ValueError, match="reserved"):
        doc["_x"] = doc["doc"].run_python(str.upper, return_type=str)
    with pytest.raises(TypeError, match="non-empty"):
        dflow.Flow("", str)


def test_flat_map_checks_list_and_element_types():
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len, return_type=int)
    target = dflow.Flow("url", str)
    with pytest.raises(TypeError, match="needs a list"):
        doc["n"].flat_map(target)
    doc["ids"] = doc["doc"].run_python(lambda s: [1], return_type=list[int])
    with pytest.raises(TypeError, match="elements of type str"):
        doc["ids"].flat_map(target)


def test_chain_checks_the_bound_type():
    numbers = dflow.Flow("n", int)
    with pytest.raises(TypeError, match="chain"):
        dflow.Flow(str).chain(numbers)


def test_fields_have_no_truth_value_or_format():
    doc = dflow.Flow("doc", str)
    with pytest.raises(TypeError):
        bool(doc["doc"])
    # Formatting a field writes a placeholder for prompt()/embed_text() templates, not its value.
    text = f"{doc['doc']}"
    assert "doc" not in text and text != ""
    with pytest.raises(TypeError, match="format spec"):
        f"{doc['doc']:>5}"


def test_invalid_options_fail_early():
    doc = dflow.Flow("doc", str)
    with pytest.raises(ValueError, match="max_in_flight"):
        doc["doc"].run_python(str.upper, max_in_flight=0)
    with pytest.raises(TypeError, match="unknown execution option"):
        doc.collect("x", memory_budgt="1GB")
    with pytest.raises(ValueError, match="memory_budget"):
        doc.collect("x", memory_budget="lots")
