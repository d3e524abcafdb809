"""The expression engine's case tables are generated from Python's own str methods and must be
regenerated when that changes (tools/gen_case_tables.py)."""
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "cpp" / "src" / "expr" / "case_tables.cc"


def test_generated_case_tables_are_fresh(tmp_path):
    committed = GENERATED.read_text()
    m = re.search(r"UNIDATA_VERSION (\S+)", committed)
    assert m, "case_tables.cc lacks its UNIDATA_VERSION line"
    if m.group(1) != unicodedata.unidata_version:
        pytest.skip(f"tables generated from Unicode {m.group(1)}, this Python has {unicodedata.unidata_version}")
    out = tmp_path / "case_tables.cc"
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_case_tables.py"), "--out", str(out)], check=True,
                   capture_output=True)
    assert out.read_text() == committed, "stale: run python3 tools/gen_case_tables.py and commit the result"
