"""In a real Jupyter kernel (run by nbclient): live progress as an HTML table updated in place, and
the run report shown inline through ``_repr_html_``."""
from pathlib import Path

import pytest

import daft_flow as dflow

# The kernel imports the daft_flow this process runs (an installed wheel or an in-place build).
PACKAGE_PARENT = Path(dflow.__file__).resolve().parents[1]

CELLS = [
    f"import sys\nsys.path.insert(0, {str(PACKAGE_PARENT)!r})\nimport time\nimport daft_flow as dflow\n"
    "from daft_flow.execution import progress\nprogress.SHOW_AFTER_S = 0.0",
    "def slow(x: int) -> int:\n    time.sleep(0.01)\n    return x\n\n"
    "flow = dflow.Flow('numbers', int)\nflow['y'] = flow['numbers'].run_python(slow, return_type=int)\n"
    "out = flow.collect_batch(list(range(150)), batch_rows=16, first_batch_rows=16)",
    "flow.last_run()",
]


def test_progress_and_report_in_a_notebook():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    run_cell, report_cell = nb.cells[1], nb.cells[2]
    shown = [o for o in run_cell.outputs if o.output_type == "display_data"]
    assert len(shown) == 1  # one table, updated in place
    table = shown[0].data["text/html"]
    assert "daft_flow · numbers · 150/150 inputs (100%)" in table and "rows/s" in table
    assert not [o for o in run_cell.outputs if o.output_type == "stream"]  # nothing printed
    html = report_cell.outputs[0].data["text/html"]
    assert "Run of flow numbers: completed" in html and html.count("<svg") == 2
