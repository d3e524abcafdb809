"""The run report as HTML: self-contained, and drawn by a real browser (headless Chromium)."""
import json
import shutil
import subprocess

import pytest

import daft_flow as dflow
from daft_flow.execution.report_html import PALETTE


def _odd(n: int) -> int:
    if n % 10 == 3:
        raise ValueError("three")
    return n


@pytest.fixture
def report(provider, fault_server):
    fault_server.configure(latency=0.01)
    dflow.set_price("fault-chat", input=1.0, output=2.0)
    doc = dflow.Flow("n", int)
    doc["checked"] = doc["n"].run_python(_odd, return_type=int)
    doc["text"] = doc["checked"].run_python(lambda n: f"document number {n} " * (1 + n % 7), return_type=str)
    chunks = doc["text"].chunk_text(max_chars=60, overlap=0)
    chunks["summary"] = chunks["chunk"].prompt("Summarize: {chunk}", provider=provider, max_tokens=6)
    chunks.collect_batch(range(120), on_error="return", batch_rows=16, first_batch_rows=16)
    return chunks.last_run()


def test_html_is_one_self_contained_page(report, tmp_path):
    path = report.to_html(tmp_path / "report.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3  # throughput, latency of summary, time
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page and "@import" not in page  # nothing fetched
    assert "Request latency: summary" in page and "ValueError: 12" in page  # the failures by type
    assert report._repr_html_().count("<svg") == 3
    data = json.loads(report.to_json())
    assert data["ops"]["summary"]["latency"]["count"] == report.ops["summary"].requests
    assert sum(int(v) for v in data["ops"]["summary"]["latency"]["buckets"].values()) == report.ops["summary"].requests


def _colour_count(image, hex_colour: str, tolerance: int = 24) -> int:
    target = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(n for n, px in image.getcolors(maxcolors=1 << 20)
               if all(abs(a - b) <= tolerance for a, b in zip(px[:3], target)))


def test_a_real_browser_draws_the_plots(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium (Debian package chromium)")
    image_module = pytest.importorskip("PIL.Image")
    page = report.to_html(tmp_path / "report.html")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1600", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    image = image_module.open(shot).convert("RGB")
    assert image.size == (1000, 1600)
    # Each colour covers more than its legend swatch (10 x 10 pixels): the lines and bars were
    # drawn. Blue: the inputs finished per second; red: the summary's answers per second and the
    # busy time per op; green: the latency bars of the summary's requests.
    assert _colour_count(image, PALETTE[0]) > 300
    assert _colour_count(image, PALETTE[2]) > 1000
    assert _colour_count(image, PALETTE[1]) > 1000
    white = _colour_count(image, "#ffffff", tolerance=2)
    assert white < 0.97 * image.size[0] * image.size[1]  # not a blank page
