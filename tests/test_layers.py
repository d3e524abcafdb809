"""Which package may import which: io/ is below execution/ (runs build on files and sinks, never the
reverse), and the provider module does not know the embedded provider built on it."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "daft_flow"


def _imports(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_io_never_imports_execution():
    for path in sorted((ROOT / "io").glob("*.py")):
        bad = sorted(n for n in _imports(path) if n == "daft_flow.execution" or n.startswith("daft_flow.execution."))
        assert not bad, f"{path.name} imports {bad}"


def test_the_provider_module_does_not_import_the_local_one():
    assert not any(n.startswith("daft_flow.llm.local") for n in _imports(ROOT / "llm" / "provider.py"))
    assert not any(n.startswith("daft_flow.llm.defaults") for n in _imports(ROOT / "llm" / "local.py"))
