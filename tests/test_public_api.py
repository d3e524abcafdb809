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


def test_core_stub_declares_what_the_native_module_has():
    # daft_flow/_core.pyi is written by hand: every class, function and public member of the native
    # module must appear in it (and nothing that is not there), or type checkers see a stale API.
    import ast
    import inspect
    from pathlib import Path

    from daft_flow import _core

    tree = ast.parse(Path(_core.__file__).with_name("_core.pyi").read_text())

    def declared(body):
        names = set()
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
        return names

    module_names = {n for n in dir(_core) if not n.startswith("_")}
    assert declared(tree.body) == module_names
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not issubclass(getattr(_core, node.name), BaseException):
            cls = getattr(_core, node.name)
            public = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}
            assert declared(node.body) - {"__init__", "__len__", "__buffer__", "__arrow_c_array__"} == public, node.name
