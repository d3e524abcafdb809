"""Real servers on loopback for the I/O tests: a static HTTP server and a moto S3 endpoint."""
from __future__ import annotations

import functools
import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections

    def __init__(self, *args: Any, server_state: "HTTPFileServer", **kwargs: Any) -> None:
        self.state = server_state
        super().__init__(*args, **kwargs)

    def _admit(self) -> bool:
        with self.state.lock:
            self.state.requests += 1
            self.state.connections.add(self.client_address)
        if self.state.latency:
            time.sleep(self.state.latency)
        if self.path.startswith("/forbidden"):
            self.send_error(403, "Forbidden")
            return False
        if self.path.startswith("/error"):
            self.send_error(500, "Internal Server Error")
            return False
        if self.path.startswith("/busy"):  # 429 with Retry-After for the first ``busy`` requests
            with self.state.lock:
                busy = self.state.busy > 0
                self.state.busy -= busy
            if busy:
                self.send_response(429)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            self.path = self.path[len("/busy"):]
        return True

    def do_GET(self) -> None:  # noqa: N802
        with self.state.lock:
            self.state.in_flight += 1
            self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
            self.state.arrived.notify_all()
            # With `gather`: hold GETs until that many are in flight at once (then stop holding any),
            # or until no new GET came for a second (the client sends no more for now).
            while self.state.gather and self.state.in_flight < self.state.gather:
                if not self.state.arrived.wait(timeout=1.0):
                    break
            if self.state.gather and self.state.in_flight >= self.state.gather:
                self.state.gather = 0
                self.state.arrived.notify_all()
        try:
            if self._admit():
                super().do_GET()
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def do_HEAD(self) -> None:  # noqa: N802
        if self._admit():
            super().do_HEAD()

    def log_message(self, *args: Any) -> None:
        pass


class _LoopbackHTTPServer(ThreadingHTTPServer):
    # A deep accept backlog: with the default of 5, a burst of new connections overflows it and
    # the dropped SYNs are retried after a second, which would make every first fetch look slow.
    request_queue_size = 1024
    daemon_threads = True


class _ServedOnLoopback:
    """Runs ``self.httpd`` (set by the subclass) on a daemon thread for the duration of a with-block."""

    httpd: "_LoopbackHTTPServer"

    def __enter__(self) -> Any:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class HTTPFileServer(_ServedOnLoopback):
    """Serves ``root`` on 127.0.0.1 (``/forbidden*`` answers 403, ``/error*`` 500), counting
    requests, distinct client connections and the most GETs served at once; ``latency`` seconds
    are added to every request; with ``gather`` set, GETs are held until that many are in flight."""

    def __init__(self, root: str, latency: float = 0.0) -> None:
        self.root, self.latency = root, latency
        self.lock = threading.Lock()
        self.requests = 0
        self.busy = 0
        self.in_flight = self.max_in_flight = 0
        self.gather = 0  # > 0: GETs are held until that many are in flight (see _Handler.do_GET)
        self.arrived = threading.Condition(self.lock)
        self.connections: set[Any] = set()
        handler = functools.partial(_Handler, server_state=self, directory=root)
        self.httpd = _LoopbackHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"



class MotoS3:
    """A moto S3 server on loopback; ``env`` points boto/s3fs at it through AWS_ENDPOINT_URL alone."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> "MotoS3":
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def __exit__(self, *exc: Any) -> None:
        self.server.stop()


class GCSEmulator:
    """gcp-storage-emulator on loopback (in memory); ``env`` points gcsfs at it."""

    def __init__(self) -> None:
        import socket

        from gcp_storage_emulator.server import create_server

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.server = create_server("127.0.0.1", port, in_memory=True)
        self.env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}

    def __enter__(self) -> "GCSEmulator":
        self.server.start()
        return self

    def filesystem(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(endpoint_url=self.env["STORAGE_EMULATOR_HOST"], token="anon",
                                   skip_instance_cache=True)

    def __exit__(self, *exc: Any) -> None:
        self.server.stop()


def set_env(env: dict[str, str]) -> dict[str, "str | None"]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return old


def restore_env(old: dict[str, "str | None"]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class FaultProxy(_ServedOnLoopback):
    """Fault injection in front of a real server: forwards every request to ``upstream``, except that
    requests matching ``fail(method, path)`` are answered with a 500 (an S3 ``InternalError``)."""

    def __init__(self, upstream: str) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        proxy = self
        self.fail: Any = lambda method, path: False
        self.failed = 0
        self.forwarded = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fail(self.command, self.path):
                    with proxy.lock:
                        proxy.failed += 1
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
                               b"<Message>injected fault</Message></Error>")
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with proxy.lock:
                    proxy.forwarded += 1
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"



class HostileHTTPServer(_ServedOnLoopback):
    """An HTTP server that misbehaves on purpose, by path:

    - ``/hang``: reads the request and never answers.
    - ``/trickle``: sends headers (no length), then one byte every ``trickle_interval`` seconds forever.
    - ``/stall-body``: a Content-Length, half the body, then silence.
    - ``/nolength/<n>``: ``n`` bytes with no Content-Length (the body ends when the connection closes).
    - ``/gzip/<n>``: ``n`` zero bytes, gzip-compressed (a few KB on the wire), with a Content-Length.
    - ``/huge-length``: claims a Content-Length of 1 TB, then sends a few bytes.
    - ``/loop``: redirects to itself.
    - ``/ok``: a small text.

    Connections still open when the with-block ends are closed, so no handler thread outlives it.
    """

    def __init__(self, trickle_interval: float = 0.02) -> None:
        import gzip
        import socket
        from http.server import BaseHTTPRequestHandler

        server = self
        self.stop = threading.Event()
        self.requests: list[str] = []
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        gz_cache: dict[int, bytes] = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.sockets.append(self.connection)

            def do_GET(self) -> None:  # noqa: N802
                with server.lock:
                    server.requests.append(self.path)
                path = self.path.split("?")[0]
                if path == "/hang":
                    server.stop.wait()
                    self.close_connection = True
                elif path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    while not server.stop.wait(trickle_interval):
                        try:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        except OSError:
                            return
                elif path == "/stall-body":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"y" * 50)
                    self.wfile.flush()
                    server.stop.wait()
                    self.close_connection = True
                elif path.startswith("/nolength/"):
                    n = int(path.rsplit("/", 1)[1])
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    block = b"0123456789abcdef" * 4096
                    sent = 0
                    try:
                        while sent < n:
                            part = block[:min(len(block), n - sent)]
                            self.wfile.write(part)
                            sent += len(part)
                    except OSError:
                        return
                elif path.startswith("/gzip/"):
                    n = int(path.rsplit("/", 1)[1])
                    if n not in gz_cache:
                        gz_cache[n] = gzip.compress(b"\0" * n)
                    body = gz_cache[n]
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif path == "/huge-length":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                    self.wfile.write(b"z" * 1000)
                    self.close_connection = True
                elif path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    body = b"fine"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        import socket

        self.stop.set()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        super().__exit__(*exc)


class SilentSocket:
    """A TCP port that accepts connections and never sends a byte (a hung server or object store)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)  # the kernel completes the handshakes; nobody ever answers
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "SilentSocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()
