"""The one retry timing: Retry-After parsing and backoff with jitter, shared by LLM calls, file
reads and sink writes."""
import email.utils
import math

import pytest

from daft_flow.retry import RETRY_AFTER_MAX_S, Backoff, parse_retry_after


@pytest.mark.parametrize("headers, seconds", [
    ({"Retry-After": "3"}, 3.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # the finer one wins
    ({"Retry-After": "-4"}, 0.0),
    ({"Retry-After": "86400"}, 60.0),  # capped: a broken header must not park a row for a day
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": "inf"}, None),
    ({"Retry-After": "nan"}, None),
    ({"Retry-After": ""}, None),
    ({}, None),
    (None, None),
])
def test_retry_after_values(headers, seconds):
    assert parse_retry_after(headers) == seconds


def test_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert math.isclose(parse_retry_after({"Retry-After": header}, now=now), 30.0)
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0


def test_backoff_grows_with_jitter_and_caps():
    b = Backoff(initial=0.1, maximum=1.0)
    for attempt, top in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (30, 1.0)]:
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(top / 2 <= d <= top for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_server_waits_are_honoured_with_jitter_and_capped():
    b = Backoff(initial=0.1, maximum=1.0)
    assert all(2.0 <= b.delay(0, 2.0) <= 2.5 for _ in range(100))
    assert all(b.delay(0, 10_000.0) <= RETRY_AFTER_MAX_S * 1.25 for _ in range(100))
    assert Backoff(max_retry_after=10.0).delay(5, 3600.0) <= 12.5
