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
    are added to every request."""

    def __init__(self, root: str, latency: float = 0.0) -> None:
        self.root, self.latency = root, latency
        self.lock = threading.Lock()
        self.requests = 0
        self.busy = 0
        self.in_flight = self.max_in_flight = 0
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

