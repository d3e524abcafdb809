"""open_file() and read() over local paths, file://, HTTP (a local server) and S3 (moto on loopback)."""
from __future__ import annotations

import io
import os
import warnings

import pytest

import daft_flow as dflow

HTML = ("<!DOCTYPE html><html><head><title>T</title><style>p {}</style><script>var x = 1;</script></head>"
        "<body><h1>Heading</h1><p>First paragraph.</p><p>Second &amp; last.</p></body></html>")
CSV = "urls,n\nhttps://github.com/a/b,1\nhttps://example.org/x,2\nhttps://github.com/c/d,3\n"


def _pdf_bytes(text: str) -> bytes:
    """A one-page PDF with ``text`` (hand-written objects, so no PDF writer is needed)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _write_docs(root) -> dict[str, bytes]:
    docs = {
        "a.txt": "plain text ✓".encode(),
        "page.html": HTML.encode(),
        "noext": HTML.encode(),
        "data.csv": CSV.encode(),
        "data.json": b'{"a": [1, 2]}',
        "latin1.txt": "café crème brûlée, déjà vu à la carte".encode("latin-1"),
        "bom16.txt": "utf-16 with bom".encode("utf-16"),
        "doc.pdf": _pdf_bytes("Hello from a PDF"),
        "binary.bin": bytes(range(256)) * 8,
    }
    for name, data in docs.items():
        (root / name).write_bytes(data)
    return docs


def _check_texts(texts: dict[str, str]) -> None:
    assert texts["a.txt"] == "plain text ✓"
    for key in ("page.html", "noext"):
        assert texts[key] == "Heading\nFirst paragraph.\nSecond & last."
    assert texts["data.csv"] == CSV
    assert texts["data.json"] == '{"a": [1, 2]}'
    assert texts["latin1.txt"] == "café crème brûlée, déjà vu à la carte"
    assert texts["bom16.txt"] == "utf-16 with bom"
    assert "Hello from a PDF" in texts["doc.pdf"]


TEXT_NAMES = ["a.txt", "page.html", "noext", "data.csv", "data.json", "latin1.txt", "bom16.txt", "doc.pdf"]


def test_read_local_paths_and_file_urls(tmp_path):
    _write_docs(tmp_path)
    flow = dflow.Flow("url", str).open_file().read()
    urls = [str(tmp_path / n) for n in TEXT_NAMES[:4]] + [f"file://{tmp_path / n}" for n in TEXT_NAMES[4:]]
    rows = flow.collect_batch(urls)
    assert [r["file"] for r in rows] == [dflow.File(u) for u in urls]
    _check_texts({n: r["text"] for n, r in zip(TEXT_NAMES, rows)})


def test_read_http_concurrently_over_reused_connections(http_files, http_client):
    root, server = http_files
    _write_docs(root)
    for i in range(200):
        (root / f"f{i}.txt").write_text(f"file {i}")
    doc = dflow.Flow("url", str)
    doc["text"] = doc["url"].open_file().read(max_in_flight=8)
    rows = doc.collect_batch([f"{server.url}/{n}" for n in TEXT_NAMES])
    _check_texts({n: r["text"] for n, r in zip(TEXT_NAMES, rows)})
    before = server.requests
    rows = doc.collect_batch([f"{server.url}/f{i}.txt" for i in range(200)])
    assert [r["text"] for r in rows] == [f"file {i}" for i in range(200)]
    assert server.requests - before == 200
    assert len(server.connections) <= 8 + len(TEXT_NAMES), "connections are not reused"


def test_read_s3_through_aws_endpoint_url_alone(s3):
    client = s3.client()
    client.create_bucket(Bucket="docs")
    client.put_object(Bucket="docs", Key="a/page.html", Body=HTML.encode())
    client.put_object(Bucket="docs", Key="a/data.csv", Body=CSV.encode())
    rows = dflow.Flow(str).open_file().read().collect_batch(["s3://docs/a/page.html", "s3://docs/a/data.csv",
                                                             "s3://docs/a/missing.txt"], on_error="return")
    assert rows[0]["text"] == "Heading\nFirst paragraph.\nSecond & last."
    assert rows[1]["text"] == CSV
    assert isinstance(rows[2], dflow.RowFailure) and rows[2].input_index == 2
    assert isinstance(rows[2].error, FileNotFoundError) and "s3://docs/a/missing.txt" in str(rows[2].error)
    # A File handed to a function is a binary file object over S3 too.
    extract = dflow.Flow(str).open_file().run_python(_github_urls)
    assert extract.collect("s3://docs/a/data.csv")["github_urls"] == ["https://github.com/a/b", "https://github.com/c/d"]


def test_large_s3_objects_come_in_concurrent_ranges_into_one_buffer(s3, monkeypatch):
    from daft_flow import _core
    from daft_flow.execution.event_loop import submit
    from daft_flow.io import locations

    monkeypatch.setattr(locations, "RANGE_BYTES", 1 << 20)
    client = s3.client()
    client.create_bucket(Bucket="big")
    text = "".join(f"line {i:07d} of a large object\n" for i in range(200_000))  # 6.6 MB
    client.put_object(Bucket="big", Key="large.txt", Body=text.encode())
    client.put_object(Bucket="big", Key="empty.txt", Body=b"")
    client.put_object(Bucket="big", Key="exact.bin", Body=b"z" * locations.LARGE_BYTES)
    rows = dflow.Flow(str).open_file().read().collect_batch(
        ["s3://big/large.txt", "s3://big/empty.txt", "s3://big/exact.bin"])
    assert rows[0]["text"] == text and rows[1]["text"] == "" and rows[2]["text"] == "z" * locations.LARGE_BYTES
    data = submit(locations.fetch_bytes("s3://big/large.txt")).result()  # on the runtime's loop
    assert isinstance(data, _core.HostBuffer) and bytes(memoryview(data)) == text.encode()


def test_read_gs_through_storage_emulator_host(gcs, monkeypatch):
    from daft_flow.io import locations

    monkeypatch.setattr(locations, "RANGE_BYTES", 1 << 20)
    fs = gcs.filesystem()
    fs.mkdir("papers")
    big = "".join(f"paragraph {i} of a long paper\n" for i in range(100_000))  # 3.1 MB: ranged reads
    with warnings.catch_warnings():  # aiohttp frowns on gcsfs uploading a 3 MB body in one piece
        warnings.simplefilter("ignore", ResourceWarning)
        fs.pipe("papers/page.html", HTML.encode())
        fs.pipe("papers/long.txt", big.encode())
    urls = ["gs://papers/page.html", "gs://papers/long.txt", "gs://papers/missing.txt", "gs://nobucket/x.txt"]
    rows = dflow.Flow(str).open_file().read().collect_batch(urls, on_error="return")
    assert rows[0]["text"] == "Heading\nFirst paragraph.\nSecond & last."
    assert rows[1]["text"] == big
    for i in (2, 3):
        assert isinstance(rows[i], dflow.RowFailure) and rows[i].input_index == i
        assert isinstance(rows[i].error, FileNotFoundError) and urls[i] in str(rows[i].error)
    # A File handed to a function is a binary file object over GCS too.
    assert list(dflow.from_glob("gs://papers/*.txt")) == ["gs://papers/long.txt"]
    extract = dflow.Flow(str).open_file().run_python(_first_line, return_type=str)
    assert extract.collect("gs://papers/long.txt")["first_line"] == "paragraph 0 of a long paper"


def _first_line(file: dflow.File) -> str:
    return file.readline().decode().strip()


def _github_urls(csv_file: dflow.File) -> list[str]:
    import pandas as pd

    df = pd.read_csv(csv_file)
    return list(df[df["urls"].str.contains("github")]["urls"])


def test_file_is_a_binary_file_object_for_pandas(http_files):
    pytest.importorskip("pandas")
    root, server = http_files
    (root / "test.csv").write_text(CSV)

    def pandas_csv_extractor(csv_file: dflow.File):
        import pandas as pd

        df = pd.read_csv(csv_file)
        df = df.where(df["urls"].str.contains("github")).dropna()
        return list(df["urls"])

    csv_flow = dflow.Flow(str).open_file().run_python(pandas_csv_extractor)
    for url in (str(root / "test.csv"), f"{server.url}/test.csv"):
        assert csv_flow.collect(url)["pandas_csv_extractor"] == ["https://github.com/a/b", "https://github.com/c/d"]


def test_seed_flow_open_read_chain_and_flat_map(http_files):
    root, server = http_files
    (root / "doc.md").write_text("Alpha beta gamma. " * 50)
    (root / "test.csv").write_text(f"urls\n{server.url}/doc.md\nhttps://example.org/skip\n")
    chunk_flow = dflow.Flow("document", str).chunk_text(max_chars=200, overlap=0)
    url_flow = dflow.Flow(str).open_file().read().chain(chunk_flow)
    chunks = url_flow.collect(f"{server.url}/doc.md")
    assert "".join(c["chunk"] for c in chunks).replace(" ", "") == ("Alpha beta gamma. " * 50).replace(" ", "")

    def local_urls(csv_file: dflow.File) -> list[str]:
        import pandas as pd

        urls = pd.read_csv(csv_file)["urls"]
        return list(urls[urls.str.startswith(server.url)])

    csv_flow = dflow.Flow(str).open_file().run_python(local_urls).flat_map(url_flow)
    assert csv_flow.collect(f"{server.url}/test.csv") == chunks


def test_bad_rows_fail_alone_naming_url_and_row(http_files, http_client, tmp_path):
    root, server = http_files
    (root / "ok.txt").write_text("fine")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    inputs = [
        f"{server.url}/ok.txt",          # 0 ok
        str(tmp_path / "missing.txt"),   # 1 missing local file
        f"{server.url}/missing.txt",     # 2 404
        f"{server.url}/forbidden.txt",   # 3 403
        "nosuchscheme://x/y",            # 4 unsupported scheme
        "http://",                       # 5 invalid URL
        "http://[::1/x",                 # 6 invalid URL
        str(tmp_path / "bin.dat"),       # 7 undecodable bytes
        str(tmp_path / "adir"),          # 8 a directory
        f"{server.url}/error.txt",       # 9 500 (retried, then failed)
        str(root / "ok.txt"),            # 10 ok
        "http://127.0.0.1:1/x.txt",      # 11 connection refused
        "/dev/zero",                     # 12 a device that never ends
        str(tmp_path / "fifo"),          # 13 a FIFO no one writes to (opening it would block)
        "ftp://127.0.0.1:1/x.txt",       # 14 a blocking filesystem whose host (from the URL) refuses
        "file://",                       # 15 a scheme and nothing else
    ]
    flow = dflow.Flow("url", str).open_file().read()
    rows = flow.collect_batch(inputs, on_error="return")
    assert rows[0]["text"] == "fine" and rows[10]["text"] == "fine"
    expected = {1: FileNotFoundError, 2: FileNotFoundError, 3: PermissionError, 4: ValueError, 5: ValueError,
                6: ValueError, 7: ValueError, 8: IsADirectoryError, 9: Exception, 11: Exception, 12: OSError,
                13: OSError, 14: ConnectionRefusedError, 15: ValueError}
    for i, kind in expected.items():
        failure = rows[i]
        assert isinstance(failure, dflow.RowFailure), (i, failure)
        assert failure.input_index == i and len(failure.row_id) == 16
        assert isinstance(failure.error, kind), (i, failure.error)
        url = inputs[i] if i == 15 else inputs[i].removeprefix("file://")
        assert url in str(failure.error) or url in str(failure), (i, str(failure))
        notes = "\n".join(getattr(failure.error, "__notes__", []))
        assert f"input {i}" in notes and failure.row_id in notes
    assert rows[4].op == "open_file" and rows[7].op == "read"
    assert "not a regular file" in str(rows[12].error) and "not a regular file" in str(rows[13].error)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        flow.collect(f"{server.url}/missing.txt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_local(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("x")
    p.chmod(0)
    with pytest.raises(PermissionError, match="secret.txt"):
        dflow.Flow(str).open_file().collect(str(p))


def test_other_fsspec_protocols_are_recognised():
    pytest.importorskip("fsspec")
    from daft_flow.io.locations import check_protocol

    check_protocol("memory", "memory://x")
    import fsspec

    with fsspec.open("memory://dir/doc.txt", "wb") as f:
        f.write(b"in memory")
    assert dflow.Flow(str).open_file().read().collect("memory://dir/doc.txt")["text"] == "in memory"
    for protocol in ("gs", "hf"):
        try:
            check_protocol(protocol, f"{protocol}://bucket/x")
        except ImportError as e:  # its package is not installed: said plainly, with the URL
            assert f"{protocol}://bucket/x" in str(e)


def test_types_are_checked_when_built():
    with pytest.raises(TypeError, match='open_file\\(\\) needs str, field "n" of flow "doc" is int'):
        doc = dflow.Flow("doc", str)
        doc["n"] = doc["doc"].run_python(len, return_type=int)
        doc.open_file()
    doc = dflow.Flow("doc", str)
    with pytest.raises(TypeError, match='read\\(\\) needs File, field "doc" of flow "doc" is str'):
        doc["doc"].read()
    with pytest.raises(ValueError, match="max_in_flight"):
        doc["doc"].open_file().read(max_in_flight=0)


def test_explain_and_ir_name_the_builtins():
    from daft_flow.plan.serialize import read_plan
    from daft_flow.plan.trace import trace

    flow = dflow.Flow("url", str).open_file().read(max_in_flight=16)
    text = flow.explain()
    assert "file: File = open_file [row-wise](#0)" in text
    assert "text: str = read [async, max_in_flight=16](#1)" in text
    assert "run_python" not in text
    traced = trace(flow)
    assert trace(dflow.Flow.from_bytes(flow.to_bytes())).plan == traced.plan
    remote = read_plan(flow.to_bytes())
    assert remote.objects[0].__module__ == "daft_flow.io.ops"


def test_batches_of_urls_are_sized_by_what_reads_return():
    from daft_flow.execution.options import get_options
    from daft_flow.execution.source import InputSource
    from daft_flow.types import DataType

    opts = get_options(batch_bytes="4MB")
    source = InputSource([f"u{i}" for i in range(10_000)], DataType("str"), 0, "url", "url", opts)
    source.expect_expansion()
    sizes = [source()[1] for _ in range(3)]
    assert sizes == [1, 1, 1]  # nothing read yet: one URL at a time
    source.note_output(50 * 10**6, 1)  # a 50 MB document per URL
    assert source()[1] == 1 and source()[1] == 1
    source.output_bytes, source.output_rows = 0, 0
    source.note_output(100 * 100_000, 100)  # 100 KB documents: about 4 MB of them per batch
    source()
    assert 35 <= source()[1] <= 42


def test_reads_in_flight_are_charged_to_the_memory_budget(http_files):
    # A URL costs a few bytes, the document it becomes 5 MB. The first URL is a probe; from then
    # on each admitted URL is charged its expected document, so a 12 MB budget allows two at once
    # (without the charge, every async slot of the read stage would be filled).
    root, server = http_files
    server.latency = 0.05
    body = "y" * (5 * 10**6)
    for i in range(12):
        (root / f"doc{i}.txt").write_text(body)
    flow = dflow.Flow(str).open_file().read()
    n = 0
    for row in flow.stream([f"{server.url}/doc{i}.txt" for i in range(12)], memory_budget="12MB"):
        assert len(row["text"]) == len(body)
        n += 1
    assert n == 12
    assert server.max_in_flight <= 2, f"{server.max_in_flight} reads of 5 MB in flight with a 12 MB budget"


def test_a_probe_whose_read_failed_does_not_stall_the_run(http_files):
    root, server = http_files
    (root / "ok.txt").write_text("fine")
    flow = dflow.Flow(str).open_file().read()
    urls = [f"{server.url}/missing{i}.txt" for i in range(3)] + [f"{server.url}/ok.txt"] * 3
    rows = flow.collect_batch(urls, on_error="return")
    assert [isinstance(r, dflow.RowFailure) for r in rows] == [True] * 3 + [False] * 3
    assert [r["text"] for r in rows[3:]] == ["fine"] * 3


def test_an_input_whose_reads_all_fail_is_not_probed_one_by_one(http_files):
    # Probing row sizes admits one URL at a time until a read succeeds; a wrong base URL never
    # succeeds, so after a few probes the reads run concurrently again.
    root, server = http_files
    server.latency = 0.02
    urls = [f"{server.url}/wrong/{i}.txt" for i in range(120)]
    rows = dflow.Flow(str).open_file().read().collect_batch(urls, on_error="return")
    assert all(isinstance(r, dflow.RowFailure) and isinstance(r.error, FileNotFoundError) for r in rows)
    assert server.max_in_flight > 1


def test_large_files_read_with_flat_memory(tmp_path):
    psutil = pytest.importorskip("psutil")
    body = ("x" * 99 + "\n") * 100_000  # 10 MB
    for i in range(24):
        (tmp_path / f"big{i}.txt").write_text(body)
    chunks = dflow.Flow("document", str).chunk_text(max_chars=100_000, overlap=0)
    flow = dflow.Flow(str).open_file().read().chain(chunks)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    n = 0
    for _ in flow.stream([str(tmp_path / f"big{i}.txt") for i in range(24)], memory_budget="40MB"):
        n += 1
        peak = max(peak, proc.memory_info().rss)
    assert n == 24 * 100
    # Held at once, the files' bytes, text and Arrow copies would take 720 MB.
    assert peak - base < 350 * 10**6, f"RSS grew {(peak - base) / 1e6:.0f} MB reading 240 MB with a 40 MB budget"


def test_transient_http_errors_are_retried(http_files, http_client, monkeypatch):
    from daft_flow.io import locations

    from daft_flow.retry import Backoff

    monkeypatch.setattr(locations, "_BACKOFF", Backoff(initial=0.001, maximum=0.001))
    root, server = http_files
    (root / "doc.txt").write_text("eventually")
    server.busy = 3  # three 429s (Retry-After: 0), spread over the rows below
    flow = dflow.Flow(str).open_file().read()
    rows = flow.collect_batch([f"{server.url}/busy/doc.txt"] * 4)
    assert [r["text"] for r in rows] == ["eventually"] * 4
    assert server.busy <= 0
    before = server.requests
    with pytest.raises(Exception, match="error.txt"):
        flow.collect(f"{server.url}/error.txt")
    assert server.requests - before == 1 + locations.RETRIES


def test_large_files_are_read_into_runtime_buffers(http_files, http_client):
    root, server = http_files
    text = ("größer als ein Megabyte ✓ " * 50_000)[:1_500_000]
    (root / "big.txt").write_text(text)
    (root / "big-latin1.txt").write_bytes(("déjà vu " * 200_000).encode("latin-1"))
    (root / "big.html").write_text("<html><body><p>" + "x" * 1_200_000 + "</p></body></html>")
    (root / "big.bin").write_bytes(bytes(range(256)) * 5000)
    flow = dflow.Flow("url", str)
    flow["text"] = flow["url"].open_file().read()
    for base in (str(root), server.url):
        rows = flow.collect_batch([f"{base}/big.txt", f"{base}/big-latin1.txt", f"{base}/big.html",
                                   f"{base}/big.bin"], on_error="return")
        assert rows[0]["text"] == text
        assert rows[1]["text"] == "déjà vu " * 200_000
        assert rows[2]["text"] == "x" * 1_200_000
        assert isinstance(rows[3], dflow.RowFailure) and "big.bin" in str(rows[3].error)
        raw = dflow.Flow(str).open_file().read(as_bytes=True).collect(f"{base}/big.bin")
        assert raw["data"] == bytes(range(256)) * 5000
    chunks = dflow.Flow("document", str).chunk_text(max_chars=100_000, overlap=0)
    got = dflow.Flow(str).open_file().read().chain(chunks).collect(f"{server.url}/big.txt")
    assert "".join(c["chunk"] for c in got) == text


def test_a_large_file_is_held_once(tmp_path):
    psutil = pytest.importorskip("psutil")
    import threading
    import time

    size = 64 * 10**6
    path = tmp_path / "big.txt"
    with open(path, "w") as f:
        for _ in range(size // 10**6):
            f.write(("x" * 99 + "\n") * 10_000)
    flow = dflow.Flow(str).open_file().read()
    flow.collect_arrow([str(tmp_path / "missing")], on_error="skip")  # warm up
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak, done = [base], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        table = flow.collect_arrow([str(path)])
    finally:
        done.set()
        sampler.join()
    assert table.column("text")[0].as_py()[:3] == "xxx" and len(table.column("text")[0].as_py()) == size
    # bytes, then str, then Arrow would be 3x; read into one buffer that Arrow keeps, it is 1x.
    assert peak[0] - base < 1.4 * size, f"peak RSS growth {(peak[0] - base) / 1e6:.0f} MB for a 64 MB file"
