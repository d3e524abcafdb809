"""A small OpenAI-compatible server for tests and benchmarks, with faults on demand.

It answers ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models`` deterministically, enforces
requests-per-minute and tokens-per-minute limits (429 with ``Retry-After`` / ``retry-after-ms``),
injects 429s, 500s, slow answers, trickled answers (a byte at a time, each within any read
timeout, the whole taking ``slow_seconds``) and dropped connections at configurable rates, rejects unknown
API keys (401) and models (404), and counts everything it received, per second too.

    with FaultServer(requests_per_minute=600, error_rate=0.05) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=server.api_key, model="fault-chat")

Token counts are whitespace words (deterministic and cheap); a prompt sharing a prefix of 16-word
blocks with an earlier prompt reports those tokens as cached, like server-side prefix caches do.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from daft_flow.llm.schema_example import example_value

CHAT_MODEL = "fault-chat"
CHAT_MODEL_B = "fault-chat-b"  # a second chat model (answers differ), for tests that switch models
EMBEDDING_MODEL = "fault-embed"
CACHE_BLOCK = 16


class _Bucket:
    """Token bucket: ``rate`` per second, at most ``capacity`` saved up."""

    def __init__(self, per_minute: float, burst: float | None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, burst if burst is not None else self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def take(self, amount: float) -> float:
        """Takes ``amount`` if available and returns 0, else returns seconds until it would be."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # many clients connect at once; the default backlog (5) refuses some
    daemon_threads = True


def count_tokens(text: str) -> int:
    return len(text.split())


def fake_embedding(text: str, dim: int) -> list[float]:
    out: list[float] = []
    seed = text.encode()
    i = 0
    while len(out) < dim:
        digest = hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
        out.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        i += 1
    out = out[:dim]
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [v / norm for v in out]


class FaultServer:
    """See the module docstring. All rates are probabilities per request in [0, 1]."""

    def __init__(self, *, requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 burst: float | None = None, rate_limit_rate: float = 0.0, error_rate: float = 0.0,
                 slow_rate: float = 0.0, slow_seconds: float = 2.0, drop_rate: float = 0.0, trickle_rate: float = 0.0,
                 retry_after: float = 0.2, api_key: str = "test-key", embedding_dim: int = 384,
                 latency: float = 0.0, seed: int = 0, log_requests: bool = False) -> None:
        self.api_key = api_key
        self.embedding_dim = embedding_dim
        self.rate_limit_rate, self.error_rate, self.drop_rate = rate_limit_rate, error_rate, drop_rate
        self.slow_rate, self.slow_seconds, self.latency = slow_rate, slow_seconds, latency
        self.trickle_rate = trickle_rate
        self.retry_after = retry_after
        self._rpm = _Bucket(requests_per_minute, burst) if requests_per_minute else None
        self._tpm = _Bucket(tokens_per_minute, tokens_per_minute / 60.0 if tokens_per_minute else None) \
            if tokens_per_minute else None
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._prefixes: set[bytes] = set()
        # log_requests: per request (path kind, digest of its body, monotonic start, end or None),
        # so a test can tell which requests were in flight at a moment (a client killed then).
        self.log_requests = log_requests
        self.reset_counters()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FaultServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- counters ----------------------------------------------------------------------------
    def reset_counters(self) -> None:
        with self._lock:
            self.counts: Counter[str] = Counter()  # received, chat, embeddings, ok, rate_limited, errors, dropped, ...
            self.per_second: Counter[int] = Counter()  # received requests per whole second since start
            self.prompt_tokens = 0       # reported on successful answers
            self.completion_tokens = 0
            self.cached_tokens = 0
            self.embedding_inputs = 0
            self.embedding_tokens = 0    # the part of prompt_tokens that embedding requests reported
            self.started = time.monotonic()
            self.requests: list[list[Any]] = []  # [kind, digest, start, end] with log_requests

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
                    "embedding_inputs": self.embedding_inputs, "embedding_tokens": self.embedding_tokens,
                    "per_second": dict(self.per_second)}

    def configure(self, **rates: float) -> None:
        """Changes fault rates while running (``error_rate=0.5``, ``drop_rate=0``, ...)."""
        with self._lock:
            for k, v in rates.items():
                if not hasattr(self, k):
                    raise AttributeError(k)
                setattr(self, k, v)

    # -- request handling ------------------------------------------------------------------------
    def _decide(self, path: str, tokens: int) -> tuple[str, float]:
        """What to do with a request: ("ok"|"slow"|"trickle"|"429"|"500"|"drop", retry-after seconds)."""
        with self._lock:
            self.counts["received"] += 1
            self.counts[path] += 1
            self.per_second[int(time.monotonic() - self.started)] += 1
            if self._rpm is not None:
                wait = self._rpm.take(1)
                if wait > 0:
                    self.counts["rate_limited"] += 1
                    return "429", wait
            if self._tpm is not None:
                wait = self._tpm.take(tokens)
                if wait > 0:
                    self.counts["rate_limited"] += 1
                    return "429", wait
            r = self._random.random()
            if r < self.rate_limit_rate:
                self.counts["rate_limited"] += 1
                self.counts["injected_429"] += 1
                return "429", self.retry_after
            r -= self.rate_limit_rate
            if r < self.error_rate:
                self.counts["errors"] += 1
                return "500", 0.0
            r -= self.error_rate
            if r < self.drop_rate:
                self.counts["dropped"] += 1
                return "drop", 0.0
            r -= self.drop_rate
            if r < self.slow_rate:
                self.counts["slow"] += 1
                return "slow", 0.0
            r -= self.slow_rate
            if r < self.trickle_rate:
                self.counts["trickled"] += 1
                return "trickle", 0.0
            return "ok", 0.0

    def _cached(self, text: str) -> int:
        words = text.split()
        cached = 0
        with self._lock:
            h = hashlib.sha1()
            for start in range(0, len(words) - len(words) % CACHE_BLOCK, CACHE_BLOCK):
                h.update(" ".join(words[start:start + CACHE_BLOCK]).encode() + b"\x00")
                key = h.digest()
                if key in self._prefixes and cached == start:
                    cached = start + CACHE_BLOCK
                self._prefixes.add(key)
        return cached

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = count_tokens(text)
        cached = self._cached(text)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        digest = hashlib.sha1(text.encode() + (b"" if body.get("model") == CHAT_MODEL else b"|b")).hexdigest()[:8]
        rf = body.get("response_format") or {}
        if rf.get("type") in ("json_schema", "json_object"):
            schema = (rf.get("json_schema") or {}).get("schema") or rf.get("schema") or {}
            content = json.dumps(example_value(schema, digest))
            finish_reason = "stop"
        else:
            words = ["answer", digest] + text.split()
            content = " ".join(words[:max_tokens])
            finish_reason = "length" if len(words) > max_tokens else "stop"
        completion_tokens = count_tokens(content)
        with self._lock:
            self.counts["ok"] += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cached_tokens += cached
        return {
            "id": f"chatcmpl-{digest}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", CHAT_MODEL),
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        tokens = sum(count_tokens(t) for t in inputs)
        with self._lock:
            self.counts["ok"] += 1
            self.prompt_tokens += tokens
            self.embedding_tokens += tokens
            self.embedding_inputs += len(inputs)
        vectors = [fake_embedding(t, self.embedding_dim) for t in inputs]
        if body.get("encoding_format") == "base64":  # what the openai client asks for: float32 bytes
            import base64
            from array import array

            encoded: list[Any] = [base64.b64encode(array("f", v).tobytes()).decode() for v in vectors]
        else:
            encoded = vectors
        return {"object": "list", "model": body.get("model", EMBEDDING_MODEL),
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
                self._send(status, {"error": {"message": message, "type": kind, "code": kind}}, headers)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/requests":  # the request log (log_requests), for another process
                    with server._lock:
                        log = [list(r) for r in server.requests]
                    self._send(200, {"requests": log, "now": time.monotonic()})
                elif self.path.rstrip("/") == "/stats":  # the counters, for a server run in another process
                    stats = server.stats()
                    stats["per_second"] = {str(k): v for k, v in stats["per_second"].items()}
                    self._send(200, stats)
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": CHAT_MODEL, "object": "model"},
                                                                {"id": EMBEDDING_MODEL, "object": "model"}]})
                else:
                    self._error(404, f"no route {self.path}", "not_found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                record = None
                if server.log_requests and raw:  # (a client killed mid-request may send no body)
                    record = [self.path.rsplit("/", 1)[-1], hashlib.sha1(raw).hexdigest()[:16], time.monotonic(), None]
                    with server._lock:
                        server.requests.append(record)
                try:
                    self._post(raw)
                finally:
                    if record is not None:
                        record[3] = time.monotonic()  # the answer is written (or the connection dropped)

            def _post(self, raw: bytes) -> None:
                path = self.path.split("?")[0].rstrip("/")
                kind = "chat" if path.endswith("/chat/completions") else \
                    "embeddings" if path.endswith("/embeddings") else "other"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if kind == "chat":
                    est = count_tokens("\n".join(str(m.get("content", "")) for m in body.get("messages", [])))
                    est += int(body.get("max_tokens") or 16)
                elif kind == "embeddings":
                    inputs = body.get("input", [])
                    est = sum(count_tokens(t) for t in ([inputs] if isinstance(inputs, str) else inputs))
                else:
                    est = 0
                action, wait = server._decide(kind, est)
                if server.latency:
                    time.sleep(server.latency)
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {server.api_key}":
                    with server._lock:
                        server.counts["unauthorized"] += 1
                    return self._error(401, "Incorrect API key provided", "invalid_api_key")
                model = body.get("model")
                known = (CHAT_MODEL, CHAT_MODEL_B) if kind == "chat" else (EMBEDDING_MODEL,)
                if kind == "other":
                    return self._error(404, f"no route {self.path}", "not_found")
                if model not in known:
                    with server._lock:
                        server.counts["unknown_model"] += 1
                    return self._error(404, f"The model `{model}` does not exist", "model_not_found")
                if action == "429":
                    secs = max(wait, 0.001)
                    return self._error(429, "Rate limit reached", "rate_limit_exceeded",
                                       {"Retry-After": str(max(1, math.ceil(secs))),
                                        "retry-after-ms": str(int(secs * 1000))})
                if action == "500":
                    return self._error(500, "injected server error", "server_error")
                if action == "drop":
                    self.close_connection = True
                    try:
                        import socket

                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if action == "slow":
                    time.sleep(server.slow_seconds)
                payload = server._chat(body) if kind == "chat" else server._embeddings(body)
                if action == "trickle":
                    return self._trickle(payload)
                self._send(200, payload)

            def _trickle(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                pause = server.slow_seconds / max(1, len(data))
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:  # the client gave up
                    self.close_connection = True

        return Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m daft_flow.testing --rpm 600 ...``: serves until killed, printing its
    base URL first (run it in its own process so it does not share the client's GIL)."""
    import argparse

    p = argparse.ArgumentParser(description="OpenAI-compatible fault server")
    p.add_argument("--rpm", type=float, default=None)
    p.add_argument("--tpm", type=float, default=None)
    p.add_argument("--burst", type=float, default=None)
    p.add_argument("--rate-limit-rate", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--trickle-rate", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=0.2)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-requests", action="store_true", help="keep a log of requests (GET /requests)")
    a = p.parse_args(argv)
    server = FaultServer(requests_per_minute=a.rpm, tokens_per_minute=a.tpm, burst=a.burst,
                         rate_limit_rate=a.rate_limit_rate, error_rate=a.error_rate, drop_rate=a.drop_rate,
                         slow_rate=a.slow_rate, trickle_rate=a.trickle_rate, retry_after=a.retry_after,
                         latency=a.latency, seed=a.seed, log_requests=a.log_requests)
    print(server.base_url, flush=True)
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
