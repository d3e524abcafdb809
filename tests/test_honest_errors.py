"""Errors and results a new user meets in the first hour: they say what happened and what to do."""
import pyarrow as pa
import pytest

import daft_flow as dflow


def _fragile():
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: 12 // (x % 4), return_type=int)
    return flow


def test_flow_run_error_counts_failed_inputs_out_of_all_inputs(tmp_path):
    with pytest.raises(dflow.FlowRunError) as info:
        _fragile().collect_batch(range(10))
    assert str(info.value).startswith("3 of 10 inputs failed; first: input 0, row ")
    assert info.value.failed_inputs == [0, 4, 8]
    with pytest.raises(dflow.FlowRunError, match=r"^3 of 10 inputs failed; first: input 0"):
        _fragile().collect_arrow(range(10))
    # A child flow: several failed rows per input are counted as rows, inputs as inputs.
    doc = dflow.Flow("text", str)
    words = doc["text"].flat_map(str.split, return_type=list[str], field="word")
    words["n"] = words["word"].run_python(lambda w: 1 // (w != "x"), return_type=int)
    with pytest.raises(dflow.FlowRunError, match=r"^1 of 3 inputs failed \(2 rows\); first: input 1"):
        words.collect_batch(["a b", "x x c", "d"])
    fragile = _fragile()
    write = fragile.write_sink(dflow.JSONFileSink(str(tmp_path)), {"y": fragile["y"]})
    with pytest.raises(dflow.FlowRunError, match=r"3 of 12 inputs had rows that were not written"):
        write.collect_batch(range(12))


def test_collect_with_a_list_points_to_collect_batch():
    flow = dflow.Flow("document", str)
    with pytest.raises(TypeError, match=r"collect\(\) runs one input, but got a list of 2 values.*collect_batch"):
        flow.collect(["a", "b"])
    with pytest.raises(TypeError, match="collect_batch"):
        flow.collect(iter(["a"]))
    with pytest.raises(TypeError, match="collect_batch"):
        flow.collect(pa.array(["a"]))
    # Flows whose input is a list (or untyped) take lists in collect().
    lists = dflow.Flow("xs", list[int])
    lists["n"] = lists["xs"].run_python(len, return_type=int)
    assert lists.collect([1, 2, 3]) == {"xs": [1, 2, 3], "n": 3}
    assert dflow.Flow("v", dflow.Embedding[2]).collect([1.0, 2.0]) == {"v": [1.0, 2.0]}


def test_flow_with_a_name_and_no_type_explains_both_signatures():
    with pytest.raises(TypeError, match=r"Flow\('document'\) needs a type.*Flow\('document', str\).*Flow\(str\)"):
        dflow.Flow("document")
    assert dflow.Flow(str).name == "input"
    with pytest.raises(TypeError, match=r"the field name comes first.*Flow\('document', str\)"):
        dflow.Flow(str, "document")
    with pytest.raises(TypeError, match=r"pass the type itself.*Flow\('document', str\)"):
        dflow.Flow("document", "str")


def test_fields_show_types_as_users_write_them():
    doc = dflow.Flow("document", str)
    doc["size"] = doc["document"].run_python(len, return_type=int)
    doc["tags"] = doc["document"].run_python(str.split, return_type=list[str])
    assert repr(doc.fields) == "{'document': str, 'size': int, 'tags': list[str]}"


def test_stream_lineage_matches_collect_arrow_lineage():
    doc = dflow.Flow("text", str)
    words = doc["text"].flat_map(str.split, return_type=list[str], field="word")
    inputs = ["a b", "c", "", "d e f"]
    streamed = list(words.stream(inputs, lineage=True))
    table = words.collect_arrow(inputs, lineage=True)
    assert streamed == table.to_pylist()
    assert [r["_input_index"] for r in streamed] == [0, 0, 1, 3, 3, 3]


def _doc_chunks():
    doc = dflow.Flow("url", str)
    doc["document"] = doc["url"].run_python(lambda u: f"{u} one. {u} two. {u} three.", return_type=str)
    doc["size"] = doc["document"].run_python(len, return_type=int)
    chunks = doc["document"].chunk_text(max_chars=10, overlap=0)
    chunks["upper"] = chunks["chunk"].run_python(str.upper, return_type=str)
    return doc, chunks


def test_child_rows_carry_chosen_parent_fields():
    doc, chunks = _doc_chunks()
    rows = chunks.collect("u", include_parents=["url", "size"])
    assert rows and all(r["url"] == "u" and r["size"] == len("u one. u two. u three.") for r in rows)
    assert list(rows[0]) == ["chunk", "chunk_index", "start_offset", "end_offset", "upper", "url", "size"]
    by_field = chunks.collect_batch(["a", "b"], include_parents=[doc["url"]])
    assert [{r["url"] for r in rs} for rs in by_field] == [{"a"}, {"b"}]
    table = chunks.collect_arrow(["a"], include_parents=["url"])
    assert set(table.column("url").to_pylist()) == {"a"}
    streamed = list(chunks.stream(["a"], include_parents="url"))
    assert streamed == table.to_pylist()
    assert "url" not in chunks.fields  # the flow itself is unchanged
    # Through chain(): the parents are the chained copies.
    fetched = dflow.Flow(str).run_python(str.upper, return_type=str).chain(chunks)
    assert {r["url"] for r in fetched.collect("q", include_parents=["url"])} == {"Q"}


def test_include_parents_errors_name_what_exists():
    doc, chunks = _doc_chunks()
    with pytest.raises(KeyError, match="no parent flow of flow 'url.chunks' has a field 'title'.*'url', 'document'"):
        chunks.collect("u", include_parents=["title"])
    with pytest.raises(ValueError, match="already has a field 'upper'"):
        doc["upper"] = doc["url"].run_python(str.upper, return_type=str)
        chunks.collect("u", include_parents=["upper"])
    other = dflow.Flow("z", str)
    with pytest.raises(ValueError, match="not a parent of flow 'url.chunks'"):
        chunks.collect("u", include_parents=[other["z"]])
    with pytest.raises(TypeError, match="field names or parent fields"):
        chunks.collect("u", include_parents=[3])
