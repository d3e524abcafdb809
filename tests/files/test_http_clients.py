"""http(s) reads through libcurl (``daft_flow.io.curl``) and through aiohttp (the fallback) give the
same rows and the same errors, and libcurl is the one used where pycurl is installed."""
from __future__ import annotations

import time

import pytest

import daft_flow as dflow
from daft_flow.io import curl, locations
from servers_fixture import HostileHTTPServer

pytest.importorskip("pycurl")

QUICK = dflow.Timeout(connect=5, read=0.5, total=10)


def _outcomes(rows):
    out = []
    for row in rows:
        if isinstance(row, dflow.RowFailure):
            out.append((type(row.error).__name__, str(row.error)))
        else:
            out.append(("ok", row["data"]))
    return out


def _paths(hostile_url, files_url):
    return [f"{files_url}/doc.txt", f"{files_url}/missing.txt", f"{files_url}/forbidden/x.txt",
            f"{files_url}/error/x.txt", f"{files_url}/busy/doc.txt", f"{files_url}/big.bin",
            f"{files_url}/with%20space.txt", f"{files_url}/100%.txt", f"{hostile_url}/gzip/{3 * 2**20}",
            f"{hostile_url}/nolength/5000",
            f"{hostile_url}/loop", f"{hostile_url}/huge-length", f"{hostile_url}/stall-body", "http://127.0.0.1:1/x"]


def test_libcurl_and_aiohttp_give_the_same_rows_and_errors(http_files, monkeypatch):
    from daft_flow.retry import Backoff

    if not curl.available():
        pytest.skip("DAFT_FLOW_HTTP_CLIENT=aiohttp")
    monkeypatch.setattr(locations, "_BACKOFF", Backoff(initial=0.001, maximum=0.001))
    root, server = http_files
    (root / "doc.txt").write_text("hello")
    (root / "with space.txt").write_text("spaced")
    (root / "100%.txt").write_text("percent")  # a lone "%" is sent as %25
    (root / "big.bin").write_bytes(bytes(range(256)) * 8000)  # 2 MB: a runtime buffer
    flow = dflow.Flow("url", str).open_file().read(as_bytes=True, timeout=QUICK, max_bytes="2.5MB")
    got = {}
    with HostileHTTPServer() as hostile:
        urls = _paths(hostile.url, server.url)
        for client in ("libcurl", "aiohttp"):
            monkeypatch.setattr(locations, "_curl", curl if client == "libcurl" else False)
            server.busy = 2
            before = curl.pool().transfers
            got[client] = _outcomes(flow.collect_batch(urls, on_error="return"))
            started = curl.pool().transfers - before
            assert (started > 0) == (client == "libcurl"), (client, started)
    assert got["libcurl"][0] == ("ok", b"hello")
    assert got["libcurl"][4] == ("ok", b"hello")  # after 429s
    assert got["libcurl"][5] == ("ok", bytes(range(256)) * 8000)
    assert got["libcurl"][6] == ("ok", b"spaced")
    assert got["libcurl"][7] == ("ok", b"percent")
    for url, a, b in zip(urls, got["libcurl"], got["aiohttp"]):
        if a[0] == "ok" or url.endswith(("/missing.txt", "/forbidden/x.txt", "/error/x.txt", "/loop",
                                         "/huge-length", "/gzip/3145728", "/nolength/5000")):
            assert a == b, url
        else:  # the same kind of failure; the wording of the cause is each library's own
            assert a[0] == b[0] or {a[0], b[0]} <= {"OSError", "ConnectionError", "ClientConnectorError"}, (url, a, b)
            assert a[1].startswith(f"read(as_bytes=True): {url}") and b[1].startswith(f"read(as_bytes=True): {url}")
            if url.endswith("/stall-body"):
                assert "no bytes for 0.5 s (read limit)" in a[1] and "no bytes for 0.5 s (read limit)" in b[1]


def test_a_read_given_up_on_frees_its_transfer(monkeypatch):
    if not curl.available():
        pytest.skip("DAFT_FLOW_HTTP_CLIENT=aiohttp")
    monkeypatch.setattr(locations, "_curl", curl)
    with HostileHTTPServer() as hostile:
        timeout = dflow.Timeout(connect=5, read=5, total=0.5)
        rows = dflow.Flow("url", str).open_file().read(timeout=timeout).collect_batch(
            [f"{hostile.url}/trickle", f"{hostile.url}/hang"], on_error="return")
        assert all(isinstance(r, dflow.RowFailure) and isinstance(r.error, TimeoutError) for r in rows)
        deadline = time.monotonic() + 5
        while curl.pool()._active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not curl.pool()._active, "a cancelled read still holds its transfer"


def test_reads_in_a_forked_child_use_a_pool_of_their_own(http_files):
    import multiprocessing

    if not curl.available():
        pytest.skip("DAFT_FLOW_HTTP_CLIENT=aiohttp")
    root, server = http_files
    (root / "doc.txt").write_text("from the child")
    flow = dflow.Flow("url", str).open_file().read()
    assert flow.collect(f"{server.url}/doc.txt")["text"] == "from the child"  # the parent's pool runs
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply(_read_in_child, (f"{server.url}/doc.txt",)) == "from the child"


def _read_in_child(url):
    return dflow.Flow("url", str).open_file().read().collect(url)["text"]


class _RawReplies:
    """A loopback server answering every connection with fixed raw bytes (then closing), by kind."""

    REPLIES = {
        "garbage": b"NOT HTTP AT ALL\r\n\r\n",
        "nothing": b"",
        "to-ftp": b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n",
        "to-file": b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
        "huge-header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2_000_000 + b"\r\nContent-Length: 2\r\n\r\nok",
    }

    def __enter__(self):
        import socket
        import threading

        self.sockets = {}
        for kind, reply in self.REPLIES.items():
            server = socket.create_server(("127.0.0.1", 0))
            self.sockets[kind] = server
            threading.Thread(target=self._serve, args=(server, reply), daemon=True).start()
        return self

    @staticmethod
    def _serve(server, reply):
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                conn.recv(65536)
                conn.sendall(reply)
            except OSError:
                pass
            conn.close()

    def url(self, kind):
        return f"http://127.0.0.1:{self.sockets[kind].getsockname()[1]}/x"

    def __exit__(self, *exc):
        for server in self.sockets.values():
            server.close()


@pytest.mark.parametrize("client", ["libcurl", "aiohttp"])
def test_malformed_replies_and_redirects_off_http_fail_their_rows(client, monkeypatch):
    from daft_flow.retry import Backoff

    if client == "libcurl" and not curl.available():
        pytest.skip("DAFT_FLOW_HTTP_CLIENT=aiohttp")
    monkeypatch.setattr(locations, "_curl", curl if client == "libcurl" else False)
    monkeypatch.setattr(locations, "_BACKOFF", Backoff(initial=0.001, maximum=0.001))
    with _RawReplies() as raw:
        urls = [raw.url(kind) for kind in _RawReplies.REPLIES] + [f"{raw.url('garbage')}?sig=s3cr3t"]
        rows = dflow.Flow("url", str).open_file().read(timeout=QUICK).collect_batch(urls, on_error="return")
    for url, row in zip(urls, rows):
        assert isinstance(row, dflow.RowFailure), (url, row)
        if client == "libcurl":  # aiohttp's own errors (ServerDisconnectedError, ...) are not OSErrors
            assert isinstance(row.error, OSError), repr(row.error)
        assert str(row.error).startswith(f"read(): {url.replace('s3cr3t', '***')}: "), str(row.error)
        assert "s3cr3t" not in repr(row)
