import daft_flow as dflow


def test_public_names_are_exported():
    for name in dflow.__all__:
        assert hasattr(dflow, name), name
    for name in ("Flow", "Field", "JSON", "File", "Embedding", "FlowRunError", "RowFailure", "Tokenizer",
                 "BatchError", "ChildFlowError", "set_options"):
        assert name in dflow.__all__


def test_docstring_example_runs():
    doc = dflow.Flow("document", str)
    doc["words"] = doc["document"].run_python(lambda s: len(s.split()), return_type=int)
    assert doc.collect("the quick brown fox") == {"document": "the quick brown fox", "words": 4}


def test_set_options_changes_defaults():
    from daft_flow.execution.options import get_options

    before = get_options()
    try:
        dflow.set_options(memory_budget="64MB", batch_rows=1000)
        assert get_options().memory_budget == 64 * 10**6 and get_options().batch_rows == 1000
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
        assert [r["y"] for r in flow.collect_batch(range(3000))] == list(range(1, 3001))
    finally:
        dflow.set_options(memory_budget=before.memory_budget, batch_rows=before.batch_rows)
