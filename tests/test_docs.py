"""Every snippet in README.md and docs/ runs as written.

Each Markdown file's code blocks run top to bottom in one namespace, in a fresh working directory:
```python blocks are executed, ```pycon blocks are doctests (what they print is checked, ``...``
matches anything). Other languages (shell commands) are not Python and are not run. LLM snippets
run on the embedded offline model, as a user's would.
"""
from __future__ import annotations

import doctest
import logging
import re
from pathlib import Path

import pytest

import daft_flow as dflow

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_NOT_PYTHON = {"bash", "sh", "console", "text", ""}


def blocks(path: Path) -> list[tuple[str, str, int]]:
    """(language, code, line number) of each fenced block."""
    text = path.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2) for m in _FENCE.finditer(text)]


def test_every_block_is_python_or_a_shell_command():
    for path in DOCS:
        for lang, _, line in blocks(path):
            assert lang in {"python", "pycon"} | _NOT_PYTHON, f"{path.name}:{line}: block of unknown language {lang!r}"


@pytest.fixture
def clean_state(tmp_path, monkeypatch):
    """A fresh directory; no provider, option or logging changes leak out of a document."""
    from daft_flow.execution import options

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(options, "_defaults", options._defaults)
    logger = logging.getLogger("daft_flow")
    level = logger.level
    prices = dict(dflow.llm.PRICES)
    yield
    dflow.set_provider(None)
    logger.setLevel(level)
    dflow.llm.PRICES.clear()
    dflow.llm.PRICES.update(prices)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_snippets_run_as_written(path, clean_state):
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    parser = doctest.DocTestParser()
    runs = 0
    for lang, code, line in blocks(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the documentation's own code
            runs += 1
        elif lang == "pycon":
            test = parser.get_doctest(code, namespace, where, str(path), line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            failures: list[str] = []
            runner.run(test, out=failures.append, clear_globs=False)
            assert runner.failures == 0, "".join(failures)
            namespace.update(test.globs)
            runs += 1
    if path.name in ("README.md", "user-guide.md"):
        assert runs > 0
