"""The OpenAI-compatible fault server: limits, injected faults and counters, over real HTTP."""
import json
import urllib.error
import urllib.request

import pytest

from daft_flow.testing import FaultServer


def _post(server, path, body, key=None):
    req = urllib.request.Request(server.base_url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key or server.api_key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), json.load(r)
    except urllib.error.HTTPError as e:
        with e:  # an error response holds its socket until closed (a ResourceWarning at a later GC otherwise)
            return e.code, dict(e.headers), json.load(e)


CHAT = {"model": "fault-chat", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 3}


def test_deterministic_answers_and_usage():
    with FaultServer() as server:
        _, _, a = _post(server, "/chat/completions", CHAT)
        _, _, b = _post(server, "/chat/completions", CHAT)
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
        assert a["usage"]["prompt_tokens"] == 3 and a["usage"]["completion_tokens"] <= 3
        _, _, e = _post(server, "/embeddings", {"model": "fault-embed", "input": ["x", "y"]})
        assert [len(d["embedding"]) for d in e["data"]] == [384, 384]
        stats = server.stats()
        assert stats["received"] == 3 and stats["chat"] == 2 and stats["embeddings"] == 1
        assert sum(stats["per_second"].values()) == 3


def test_requests_per_minute_limit_answers_429_with_retry_after():
    with FaultServer(requests_per_minute=60, burst=2) as server:
        codes = [_post(server, "/chat/completions", CHAT)[0] for _ in range(4)]
        assert codes[:2] == [200, 200] and codes[2:] == [429, 429]
        _, headers, body = _post(server, "/chat/completions", CHAT)
        assert int(headers["Retry-After"]) >= 1 and int(headers["retry-after-ms"]) > 0
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert server.stats()["rate_limited"] == 3


def test_tokens_per_minute_limit():
    with FaultServer(tokens_per_minute=600) as server:  # 10 tokens/s, at most 10 saved up
        big = dict(CHAT, messages=[{"role": "user", "content": "w " * 8}], max_tokens=2)
        assert _post(server, "/chat/completions", big)[0] == 200
        assert _post(server, "/chat/completions", big)[0] == 429


def test_bad_key_unknown_model_and_injected_errors():
    with FaultServer(error_rate=1.0) as server:
        assert _post(server, "/chat/completions", CHAT, key="nope")[0] == 401
        assert _post(server, "/chat/completions", dict(CHAT, model="gpt-x"))[0] == 404
        assert _post(server, "/chat/completions", CHAT)[0] == 500
        server.configure(error_rate=0.0, drop_rate=1.0)
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _post(server, "/chat/completions", CHAT)
        stats = server.stats()
        assert stats["unauthorized"] == 1 and stats["unknown_model"] == 1 and stats["dropped"] == 1
