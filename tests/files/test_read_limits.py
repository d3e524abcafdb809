"""read() against hostile servers: every read is bounded in time and size, and fails its row with
an error naming the op and the URL (credentials redacted) instead of hanging or filling memory."""
from __future__ import annotations

import threading
import traceback

import pytest

import daft_flow as dflow
from servers_fixture import HostileHTTPServer, SilentSocket

pytestmark = pytest.mark.usefixtures("http_client")  # every test, through libcurl and through aiohttp

# A short read limit for servers that never answer; connecting and the total stay generous, so a
# loaded machine cannot turn an expected read-limit failure (or a good row) into another outcome.
QUICK = dflow.Timeout(connect=5, read=0.5, total=10)
PATIENT = dflow.Timeout(connect=5, read=5, total=30)  # when good rows share the run (a loaded machine is slow)


@pytest.fixture
def hostile():
    with HostileHTTPServer() as server:
        yield server


def _read_flow(**read_kwargs):
    return dflow.Flow("url", str).open_file().read(**read_kwargs)


def _failure(row, error_type):
    assert isinstance(row, dflow.RowFailure), row
    assert isinstance(row.error, error_type), repr(row.error)
    assert row.op in ("read", "read_bytes") and row.field in ("text", "data")
    return str(row.error)


def test_a_server_that_never_answers_fails_the_row_not_the_run(hostile):
    with SilentSocket() as silent:
        urls = [f"{hostile.url}/hang", f"{silent.url}/doc.txt", f"{hostile.url}/ok"]
        rows = _read_flow(timeout=PATIENT).collect_batch(urls, on_error="return")
    for url, row in zip(urls[:2], rows[:2]):
        message = _failure(row, TimeoutError)
        assert message.startswith(f"read(): {url}: no bytes for 5 s (read limit)"), message
        assert "read(timeout=" in message and "set_options(read_timeout=" in message
    assert rows[2]["text"] == "fine"
    assert hostile.requests.count("/hang") == 1  # a timeout is not retried


def test_a_body_that_stalls_midway_hits_the_read_limit(hostile):
    (row,) = _read_flow(timeout=QUICK).collect_batch([f"{hostile.url}/stall-body"], on_error="return")
    assert "no bytes for 0.5 s" in _failure(row, TimeoutError)


def test_a_server_trickling_bytes_forever_hits_the_total_limit(hostile):
    # A byte every 20 ms never trips the read (idle) limit: only the total one ends it.
    timeout = dflow.Timeout(connect=5, read=5, total=1)
    (row,) = _read_flow(timeout=timeout).collect_batch([f"{hostile.url}/trickle"], on_error="return")
    message = _failure(row, TimeoutError)
    assert message.startswith(f"read(): {hostile.url}/trickle: not read within 1 s (the total limit"), message


def test_https_url_served_by_a_plain_http_server_fails_quickly(hostile):
    url = hostile.url.replace("http://", "https://") + "/ok"
    (row,) = _read_flow(timeout=QUICK).collect_batch([url], on_error="return")
    message = _failure(row, OSError)
    assert message.startswith(f"read(): {url}: the server does not speak TLS (is it an http:// URL?)"), message
    assert hostile.requests == []  # nothing the server could read as a request, and no retries
    with SilentSocket() as silent:  # a TLS handshake that never gets an answer
        url = silent.url.replace("http://", "https://") + "/x"
        timeout = dflow.Timeout(connect=0.5, read=5, total=10)
        (row,) = _read_flow(timeout=timeout).collect_batch([url], on_error="return")
    assert _failure(row, TimeoutError).startswith(f"read(): {url}: could not connect within 0.5 s (connect limit)")


def test_a_redirect_loop_is_named_and_not_retried(hostile):
    (row,) = _read_flow(timeout=QUICK).collect_batch([f"{hostile.url}/loop"], on_error="return")
    message = _failure(row, OSError)
    assert message == f"read(): {hostile.url}/loop: too many redirects (the server redirects in a loop)"
    assert len(hostile.requests) <= 11  # the first request and aiohttp's redirects, once (not retried)


def test_an_s3_endpoint_that_hangs_fails_the_row(monkeypatch):
    pytest.importorskip("s3fs")
    with SilentSocket() as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        timeout = dflow.Timeout(connect=0.5, read=0.5, total=3)
        (row,) = _read_flow(timeout=timeout).collect_batch(["s3://bucket/key.txt"], on_error="return")
    message = _failure(row, TimeoutError)
    assert message.startswith("read(): s3://bucket/key.txt: "), message


def test_process_and_run_defaults_apply_where_the_op_sets_none(hostile):
    from daft_flow.execution.options import get_options

    flow = _read_flow()
    (row,) = flow.collect_batch([f"{hostile.url}/hang"], on_error="return", read_timeout=QUICK)
    assert "no bytes for 0.5 s" in _failure(row, TimeoutError)
    before = get_options()
    try:
        dflow.set_options(read_timeout=dflow.Timeout(connect=5, read=1.5, total=20), read_max_bytes="1MB")
        (row,) = flow.collect_batch([f"{hostile.url}/hang"], on_error="return")
        assert "no bytes for 1.5 s" in _failure(row, TimeoutError)
        (row,) = flow.collect_batch([f"{hostile.url}/nolength/2000000"], on_error="return")
        assert "larger than the 1000000-byte limit" in _failure(row, ValueError)
        # The op's own setting wins over the process's.
        (row,) = _read_flow(timeout=QUICK).collect_batch([f"{hostile.url}/hang"], on_error="return")
        assert "no bytes for 0.5 s" in _failure(row, TimeoutError)
    finally:
        dflow.set_options(read_timeout=before.read_timeout, read_max_bytes=before.read_max_bytes)


def test_a_file_read_by_a_function_is_bounded_too(hostile):
    from daft_flow.execution.options import get_options

    def first_bytes(file: dflow.File) -> bytes:
        return file.read(4)

    flow = dflow.Flow("url", str).open_file().run_python(first_bytes)
    before = get_options()
    try:
        dflow.set_options(read_timeout=PATIENT)
        rows = flow.collect_batch([f"{hostile.url}/hang", f"{hostile.url}/ok"], on_error="return")
    finally:
        dflow.set_options(read_timeout=before.read_timeout)
    assert isinstance(rows[0], dflow.RowFailure) and isinstance(rows[0].error, TimeoutError), rows[0]
    assert f"{hostile.url}/hang" in str(rows[0].error)
    assert rows[1]["first_bytes"] == b"fine"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"timeout": 0}, ValueError, "read\\(\\): timeout must be a positive"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": float("nan")}, ValueError, "timeout"),
    ({"timeout": "30"}, TypeError, "number of seconds or a dflow.Timeout"),
    ({"timeout": True}, TypeError, "timeout"),
    ({"max_bytes": 0}, ValueError, "max_bytes must be positive"),
    ({"max_bytes": "lots"}, ValueError, "max_bytes"),
    ({"max_bytes": 1.5}, TypeError, "max_bytes"),
    ({"as_bytes": "yes"}, TypeError, "as_bytes"),
    ({"max_in_flight": True}, ValueError, "max_in_flight"),
])
def test_invalid_limits_are_rejected_when_the_op_is_built(kwargs, error, match):
    with pytest.raises(error, match=match):
        _read_flow(**kwargs)


def test_timeout_values_are_checked():
    for bad in ({"connect": 0}, {"read": -1}, {"total": float("inf")}):
        with pytest.raises(ValueError, match="Timeout: "):
            dflow.Timeout(**bad)
    with pytest.raises(TypeError, match="Timeout: read"):
        dflow.Timeout(read="5")
    with pytest.raises(ValueError, match="read_timeout"):
        dflow.set_options(read_timeout=0)
    with pytest.raises(ValueError, match="read_max_bytes"):
        dflow.set_options(read_max_bytes=-1)
    assert dflow.Timeout.of(5) == dflow.Timeout(connect=5, read=5, total=5)
    assert dflow.Timeout.of(60) == dflow.Timeout(connect=10, read=30, total=60)


def test_explain_shows_the_limits_an_op_sets():
    text = dflow.Flow("url", str).open_file().read(timeout=5, max_bytes="2MB").explain()
    assert "read(timeout=(connect=5s, read=5s, total=5s), max_bytes=2000000)" in text
    assert "read [async" in _read_flow().explain()


# -- size ----------------------------------------------------------------------------------------
def test_a_body_without_length_is_capped_and_held_once(hostile):
    from daft_flow import _core
    from daft_flow.execution.event_loop import submit
    from daft_flow.io.limits import ReadLimits
    from daft_flow.io.locations import fetch_bytes

    n = 3 * 2**20
    rows = _read_flow(as_bytes=True, max_bytes=2**20).collect_batch(
        [f"{hostile.url}/nolength/{n}", f"{hostile.url}/nolength/1000"], on_error="return")
    message = _failure(rows[0], ValueError)
    assert message.startswith(f"read(as_bytes=True): {hostile.url}/nolength/{n} is larger than the 1048576-byte "
                              "limit"), message
    assert "read(max_bytes=...)" in message
    assert rows[1]["data"] == (b"0123456789abcdef" * 64)[:1000]
    # Under the limit, a large body of unknown length is one runtime buffer (not joined chunks).
    data = submit(fetch_bytes(f"{hostile.url}/nolength/{n}", ReadLimits())).result()
    assert isinstance(data, _core.HostBuffer) and len(data) == n
    assert bytes(memoryview(data)[:32]) == b"0123456789abcdef" * 2
    (row,) = _read_flow().collect_batch([f"{hostile.url}/nolength/{n}"])
    assert len(row["text"]) == n


def test_a_compressed_body_is_capped_after_decompression(hostile):
    # A few KB of gzip on the wire that inflate to 8 MB: the limit is on what it becomes.
    rows = _read_flow(as_bytes=True, max_bytes="4MB").collect_batch(
        [f"{hostile.url}/gzip/{8 * 2**20}", f"{hostile.url}/gzip/{2**20}"], on_error="return")
    assert "larger than the 4000000-byte limit" in _failure(rows[0], ValueError)
    assert rows[1]["data"] == b"\0" * 2**20


def test_a_declared_length_over_the_limit_fails_before_reading(hostile):
    (row,) = _read_flow().collect_batch([f"{hostile.url}/huge-length"], on_error="return")
    message = _failure(row, ValueError)
    assert f"{10**12} bytes" in message and f"the {2**30}-byte limit" in message


def test_local_and_s3_files_over_the_limit(tmp_path, s3):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 5000)
    client = s3.client()
    client.create_bucket(Bucket="limits")
    client.put_object(Bucket="limits", Key="big.txt", Body=b"b" * 5000)
    client.put_object(Bucket="limits", Key="small.txt", Body=b"c" * 10)
    urls = [str(big), "s3://limits/big.txt", "s3://limits/small.txt"]
    rows = _read_flow(max_bytes=4096).collect_batch(urls, on_error="return")
    assert f"{big} is larger than the 4096-byte limit (5000 bytes)" in _failure(rows[0], ValueError)
    assert "s3://limits/big.txt is larger than the 4096-byte limit" in _failure(rows[1], ValueError)
    assert rows[2]["text"] == "c" * 10


# -- secrets -------------------------------------------------------------------------------------
SECRETS = ("hunter2pw", "sig-abc123", "tok-9876", "key-5555", "amzsig-42")


def _secret_url(base: str, path: str) -> str:
    host = base.split("://", 1)[1]
    return (f"http://alice:hunter2pw@{host}{path}?X-Amz-Signature=amzsig-42&sig=sig-abc123&token=tok-9876"
            f"&key=key-5555&page=2")


def _assert_no_secrets(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


def _everything_shown(row) -> list[str]:
    return [str(row), repr(row.error), "".join(traceback.format_exception(row.error))]


def test_file_urls_with_credentials_are_redacted_in_row_errors(http_files, hostile):
    _, files = http_files
    urls = [_secret_url(files.url, "/missing.txt"),      # 404
            _secret_url(files.url, "/forbidden/x.txt"),  # 403
            _secret_url(files.url, "/error/x.txt"),      # 500, retried, then failed
            _secret_url(hostile.url, "/hang"),           # a timeout
            _secret_url(hostile.url, "/nolength/5000"),  # too large
            "https://alice:hunter2pw@127.0.0.1:99999/x?sig=sig-abc123",  # invalid port (open_file)
            "nosuchscheme://alice:hunter2pw@host/x?token=tok-9876"]     # unsupported scheme (open_file)
    rows = _read_flow(timeout=PATIENT, max_bytes=1000).collect_batch(urls, on_error="return")
    for row in rows:
        assert isinstance(row, dflow.RowFailure), row
        _assert_no_secrets(*_everything_shown(row))
        assert "***" in str(row.error), str(row.error)
    assert "HTTP 404" in str(rows[0].error) and isinstance(rows[0].error, FileNotFoundError)
    assert "/missing.txt?X-Amz-Signature=***&sig=***&token=***&key=***&page=2" in str(rows[0].error)
    assert isinstance(rows[1].error, PermissionError)
    assert isinstance(rows[3].error, TimeoutError) and isinstance(rows[4].error, ValueError)
    assert [r.op for r in rows[5:]] == ["open_file", "open_file"]
    with pytest.raises(dflow.FlowRunError) as info:
        _read_flow(timeout=QUICK).collect_batch(urls[:1])
    _assert_no_secrets(str(info.value), "".join(traceback.format_exception(info.value)))


def test_file_repr_hides_credentials():
    f = dflow.File("https://alice:hunter2pw@h/x?sig=sig-abc123")
    assert repr(f) == "File('https://***@h/x?sig=***')"
    assert f.url.startswith("https://alice:hunter2pw@")  # the value itself is intact


# -- sharing -------------------------------------------------------------------------------------
def test_runs_reading_from_threads_share_connection_pools_without_losing_rows(http_files):
    root, server = http_files
    for i in range(60):
        (root / f"f{i}.txt").write_text(f"file {i}")
    flow = dflow.Flow("url", str).open_file().read(max_in_flight=4)
    results, errors = {}, []

    def work(t, n):
        try:
            results[t] = flow.collect_batch([f"{server.url}/f{i}.txt" for i in range(n)], on_error="return")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t, n)) for t, n in enumerate((5, 20, 40, 60))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t, n in enumerate((5, 20, 40, 60)):
        assert [r["text"] for r in results[t]] == [f"file {i}" for i in range(n)]


def test_listing_a_bucket_that_never_answers_is_bounded(monkeypatch):
    pytest.importorskip("s3fs")
    from daft_flow.execution.options import get_options

    before = get_options()
    with SilentSocket() as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        try:
            dflow.set_options(read_timeout=dflow.Timeout(connect=0.5, read=0.5, total=2))
            with pytest.raises(TimeoutError, match="from_glob\\(\\): s3://bucket/\\*.txt: "):
                dflow.from_glob("s3://bucket/*.txt")
        finally:
            dflow.set_options(read_timeout=before.read_timeout)


def test_a_file_read_by_a_function_hides_credentials_too(http_files):
    root, files = http_files
    (root / "a.txt").write_text("hello")

    def whole(file: dflow.File) -> bytes:
        return file.read()

    flow = dflow.Flow("url", str).open_file().run_python(whole)
    urls = [_secret_url(files.url, p) for p in ("/a.txt", "/missing.txt", "/error/a.txt", "/forbidden/a.txt")]
    rows = flow.collect_batch(urls, on_error="return")
    assert rows[0]["whole"] == b"hello"
    assert [type(r.error) for r in rows[1:]] == [FileNotFoundError, OSError, PermissionError]
    assert "HTTP 404" in str(rows[1].error) and "500" in str(rows[2].error) and "HTTP 403" in str(rows[3].error)
    for row in rows[1:]:
        _assert_no_secrets(*_everything_shown(row))


def test_host_buffer_builder_grows_and_hands_over_its_bytes():
    from daft_flow import _core

    builder = _core.HostBufferBuilder()
    parts = [bytes([i]) * (1000 * i + 1) for i in range(1, 200)]
    for part in parts:
        builder.append(part)
    builder.append(memoryview(bytearray(b"tail")))
    expected = b"".join(parts) + b"tail"
    assert len(builder) == len(expected)
    buf = builder.finish()
    assert len(builder) == 0 and bytes(memoryview(buf)) == expected
    assert bytes(memoryview(_core.HostBufferBuilder().finish())) == b""
    with pytest.raises(ValueError, match="contiguous"):
        builder.append(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError):
        builder.append("text is not bytes")
