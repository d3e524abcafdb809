"""Providers under hostile use: shared by concurrent runs, misconfigured, unreachable, leaking secrets."""
import json
import math
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import daft_flow as dflow
from daft_flow.llm.local import LocalProvider
from daft_flow.testing import FaultServer


def _run_in_threads(flow, batches):
    results, errors = [None] * len(batches), []

    def work(i):
        try:
            results[i] = flow.collect_batch(batches[i], on_error="return")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def _prompt_flow(provider, model=None):
    flow = dflow.Flow("text", str)
    flow["a"] = flow["text"].prompt("q", provider=provider, model=model, max_tokens=4)
    return flow


def test_runs_sharing_a_provider_from_threads_lose_no_rows(fault_server, provider):
    # Runs of different lengths: the short ones end while the long ones still have requests in
    # flight, which used to close the client under them ('NoneType' object has no attribute 'chat').
    fault_server.configure(latency=0.01)
    batches = [[f"t{t} row {i}" for i in range(n)] for t, n in enumerate((5, 15, 40, 60))]
    results = _run_in_threads(_prompt_flow(provider), batches)
    for batch, rows in zip(batches, results):
        assert len(rows) == len(batch)
        assert all(isinstance(r, dict) and r["a"].startswith("answer") for r in rows), \
            [r for r in rows if not isinstance(r, dict)][:1]
    assert fault_server.stats()["ok"] == 120
    assert provider._client is None  # the last run to end closed the client


def test_the_embedded_provider_is_shared_the_same_way():
    # LocalProvider delegates chat to a llama.cpp server; here the server is the fault server, so
    # only the client lifetime is under test (no model is loaded).
    class Server:
        model = "fault-chat"

        def __init__(self, base_url):
            self.base_url = base_url

        def start(self):
            return self

    with FaultServer(api_key="local", latency=0.01) as server:
        local = LocalProvider(server=Server(server.base_url), max_concurrency=8)
        batches = [[f"t{t} row {i}" for i in range(n)] for t, n in enumerate((3, 10, 25, 40))]
        results = _run_in_threads(_prompt_flow(local, model="fault-chat"), batches)
        assert all(isinstance(r, dict) for rows in results for r in rows)
        assert server.stats()["ok"] == 78
        chats = [v for value in vars(local).values()
                 for v in (value.values() if isinstance(value, dict) else [value]) if isinstance(v, dflow.OpenAIProvider)]
        assert chats and all(chat._client is None for chat in chats)  # closed once the last run ended


def test_a_run_after_the_last_one_closed_gets_a_fresh_client(fault_server, provider):
    flow = _prompt_flow(provider)
    for i in range(3):
        assert flow.collect(f"again {i}")["a"].startswith("answer")
        assert provider._client is None


@pytest.mark.parametrize("kwargs, error, match", [
    ({"requests_per_minute": 0}, ValueError, "requests_per_minute must be a positive number, got 0 \\(None means"),
    ({"requests_per_minute": -5}, ValueError, "requests_per_minute"),
    ({"requests_per_minute": math.nan}, ValueError, "requests_per_minute"),
    ({"requests_per_minute": "600"}, TypeError, "requests_per_minute"),
    ({"requests_per_minute": True}, TypeError, "requests_per_minute"),
    ({"tokens_per_minute": 0}, ValueError, "tokens_per_minute"),
    ({"tokens_per_minute": -1.5}, ValueError, "tokens_per_minute"),
    ({"requests_per_minute": 60, "burst": 0}, ValueError, "burst"),
    ({"requests_per_minute": 60, "burst": -2}, ValueError, "burst"),
    ({"burst": 5}, ValueError, "set requests_per_minute too"),
    ({"max_concurrency": 0}, ValueError, "max_concurrency"),
    ({"max_concurrency": 2.5}, TypeError, "max_concurrency must be a positive int"),
    ({"max_concurrency": "8"}, TypeError, "max_concurrency"),
    ({"max_retries": -1}, ValueError, "max_retries must be a non-negative int"),
    ({"max_retries": 1.0}, TypeError, "max_retries"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": -3}, ValueError, "timeout"),
    ({"timeout": math.inf}, ValueError, "timeout"),
    ({"timeout": None}, TypeError, "timeout"),
    ({"embedding_batch_size": 0}, ValueError, "embedding_batch_size"),
    ({"embedding_batch_tokens": -100}, ValueError, "embedding_batch_tokens"),
    ({"embedding_batch_tokens": 8000.5}, TypeError, "embedding_batch_tokens"),
    ({"embedding_dim": -1}, ValueError, "embedding_dim"),
    ({"model": ""}, ValueError, "model must be a non-empty str"),
    ({"embedding_model": None}, ValueError, "embedding_model"),
    ({"api_key": 1234}, TypeError, "api_key"),
])
def test_invalid_settings_are_rejected_at_construction(kwargs, error, match):
    with pytest.raises(error, match=f"OpenAIProvider: {match}" if "must be" in match else match):
        dflow.OpenAIProvider(base_url="http://127.0.0.1:1/v1", api_key="k", **kwargs)


@pytest.mark.parametrize("url, match", [
    ("not a url", "whitespace"),
    ("ftp://models.example.com/v1", "scheme 'ftp'"),
    ("http://", "no host"),
    ("https:///v1", "no host"),
    ("127.0.0.1:8080/v1", "scheme"),
    ("localhost/v1", "no scheme"),
    ("http://host:99999/v1", "invalid base_url"),
    ("", "empty"),
    (" http://127.0.0.1:8080/v1", "whitespace"),
])
def test_invalid_base_url_is_rejected_at_construction(url, match):
    with pytest.raises(ValueError, match=match) as info:
        dflow.OpenAIProvider(base_url=url, api_key="k")
    assert "http(s) URL" in str(info.value)


def test_invalid_base_url_error_does_not_show_its_credentials():
    with pytest.raises(ValueError) as info:
        dflow.OpenAIProvider(base_url="ftp://bob:s3cr3t-pw@h/v1?api-key=k-999", api_key="k")
    assert "s3cr3t-pw" not in str(info.value) and "k-999" not in str(info.value)


def test_set_price_rejects_nonsense():
    for kwargs, error in (({"input": -1}, ValueError), ({"input": math.nan}, ValueError),
                          ({"input": math.inf}, ValueError), ({"input": 1, "output": -0.5}, ValueError),
                          ({"input": 1, "cached_input": math.nan}, ValueError), ({"input": "1"}, TypeError),
                          ({"input": None}, TypeError)):
        with pytest.raises(error, match="set_price\\('m'\\)"):
            dflow.set_price("m", **kwargs)
    for model in (None, "", 3):
        with pytest.raises(TypeError, match="model name"):
            dflow.set_price(model, input=1.0)
    dflow.set_price("free-model", input=0)  # zero is a price


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_error_for_the_run_naming_the_cause():
    port = _closed_port()
    p = dflow.OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m", max_retries=1)
    flow = _prompt_flow(p)
    with pytest.raises(dflow.ProviderConfigError, match="cannot connect") as info:
        flow.collect_batch([f"row {i}" for i in range(20)], on_error="return")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "check base_url" in message
    assert "ConnectError" in message or "refused" in message.lower() or "connect" in message


def test_a_server_that_answered_is_not_declared_unreachable_when_it_goes_away():
    # The first op's requests are answered, then the server drops every connection: the second
    # op's rows fail one by one (the server may come back), they do not stop the run.
    server = FaultServer().start()
    p = dflow.OpenAIProvider(base_url=server.base_url, api_key=server.api_key, model="fault-chat", max_retries=0)
    flow = _prompt_flow(p)

    def stop_server(answer: str) -> str:
        server.configure(drop_rate=1.0)
        return answer

    flow["b"] = flow["a"].run_python(stop_server)
    flow["c"] = flow["b"].prompt("again", provider=p, max_tokens=4)
    try:
        out = flow.collect_batch(["x", "y", "z"], on_error="return")
    finally:
        server.stop()
    assert server.stats()["ok"] == 3
    assert all(isinstance(r, dflow.RowFailure) and type(r.error) is dflow.ProviderError for r in out), out
    assert all(r.field == "c" and "gave up after 1 attempt" in str(r.error) for r in out)


class _EchoingServer:
    """An OpenAI-compatible endpoint that answers 401 quoting the Authorization header and the URL
    it was asked for, like a careless proxy would."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"error": {"message": f"bad key {self.headers.get('Authorization')} for "
                                                        f"{self.path}", "type": "invalid_api_key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _all_text(e):
    return "".join(traceback.format_exception(e)) + repr(e) + str(getattr(e, "__notes__", ""))


def test_credentials_never_appear_in_provider_errors():
    with _EchoingServer() as server:
        base = f"http://alice:pw-in-url-77@127.0.0.1:{server.port}/v1?api-key=query-key-88"
        p = dflow.OpenAIProvider(base_url=base, api_key="sk-secret-api-key-99", model="m", max_retries=0)
        assert "pw-in-url-77" not in p.describe() and "query-key-88" not in p.describe()
        flow = _prompt_flow(p)
        with pytest.raises(dflow.ProviderConfigError) as info:
            flow.collect("x")
        text = _all_text(info.value)
        assert "bad key" in text
        for secret in ("pw-in-url-77", "query-key-88", "sk-secret-api-key-99"):
            assert secret not in text

    port = _closed_port()
    p = dflow.OpenAIProvider(base_url=f"http://bob:pw-2-secret@127.0.0.1:{port}/v1?key=qk-secret-3",
                             api_key="sk-secret-4", model="m", max_retries=0)
    with pytest.raises(dflow.ProviderConfigError) as info:
        _prompt_flow(p).collect("x")
    text = _all_text(info.value)
    assert "cannot connect" in text
    for secret in ("pw-2-secret", "qk-secret-3", "sk-secret-4"):
        assert secret not in text


def test_a_trickled_answer_is_bounded_by_the_request_timeout():
    # A byte every ~0.1 s never trips the client's read timeout and the answer would be complete
    # after 30 s; the whole answer must come within `timeout`, so both attempts fail.
    with FaultServer(trickle_rate=1.0, slow_seconds=30.0) as server:
        p = dflow.OpenAIProvider(base_url=server.base_url, api_key=server.api_key, model="fault-chat",
                                 timeout=1.5, max_retries=1)
        (row,) = _prompt_flow(p).collect_batch(["x"], on_error="return")
        assert isinstance(row, dflow.RowFailure) and type(row.error) is dflow.ProviderError, row
        assert "gave up after 2 attempt(s)" in str(row.error)
        assert server.stats()["trickled"] == 2


def test_retry_after_is_capped():
    from daft_flow.llm import provider as provider_module
    from daft_flow.retry import RETRY_AFTER_MAX_S

    class Answer:
        def __init__(self, headers):
            self.response = type("R", (), {"headers": headers})()

    assert provider_module._retry_after(Answer({"retry-after": "86400"})) == RETRY_AFTER_MAX_S
    assert provider_module._retry_after(Answer({"retry-after": "inf"})) is None
    assert provider_module._retry_after(Answer({"retry-after": "nan"})) is None
    assert provider_module._retry_after(Answer({"retry-after-ms": "250"})) == 0.25


def test_an_unknown_model_in_one_run_does_not_stop_another_runs_model(fault_server, provider):
    # The good run holds the provider while the bad one fails, and only then sends its requests.
    bad_done = threading.Event()

    def after_bad(text: str) -> str:
        bad_done.wait(30)
        return text

    good = dflow.Flow("text", str)
    good["t"] = good["text"].run_python(after_bad)
    good["a"] = good["t"].prompt("q", provider=provider, max_tokens=4)
    bad = _prompt_flow(provider, model="no-such-model")
    outcomes = {}

    def run_good():
        outcomes["good"] = good.collect_batch([f"good {i}" for i in range(10)], on_error="return")

    thread = threading.Thread(target=run_good)
    thread.start()
    try:
        with pytest.raises(dflow.ProviderConfigError, match="no-such-model"):
            bad.collect_batch(["bad"], on_error="return")
    finally:
        bad_done.set()
        thread.join()
    assert all(isinstance(r, dict) and r["a"].startswith("answer") for r in outcomes["good"]), outcomes["good"]
