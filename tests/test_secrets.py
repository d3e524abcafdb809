"""The one URL redaction: credentials in userinfo and query parameters never reach a message."""
import pytest

from daft_flow.secrets import redact_text, redact_url, url_secrets


@pytest.mark.parametrize("url, shown, hidden", [
    ("https://user:hunter22@files.example.com/a.txt", "https://***@files.example.com/a.txt", ["hunter22", "user"]),
    ("https://ghp_TOKEN1234@github.example/x", "https://***@github.example/x", ["ghp_TOKEN1234"]),
    ("https://b.s3.amazonaws.com/k.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101"
     "&X-Amz-Signature=deadbeef99&X-Amz-Security-Token=FwoGZX",
     "https://b.s3.amazonaws.com/k.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
     "&X-Amz-Signature=***&X-Amz-Security-Token=***", ["deadbeef99", "AKIA", "FwoGZX"]),
    ("https://acct.blob.core.windows.net/c/b?sv=2021-08-06&se=2030&sig=c2lnbmF0dXJl",
     "https://acct.blob.core.windows.net/c/b?sv=2021-08-06&se=2030&sig=***", ["c2lnbmF0dXJl"]),
    ("https://api.example.com/v1?api-key=k-12345&page=2", "https://api.example.com/v1?api-key=***&page=2", ["k-12345"]),
    ("https://h/x?token=t0k3n&key=k3y0&access_token=abcd&X-Goog-Signature=ffff",
     "https://h/x?token=***&key=***&access_token=***&X-Goog-Signature=***", ["t0k3n", "k3y0", "abcd", "ffff"]),
    ("https://h/cb#access_token=frag-secret&state=1", "https://h/cb#access_token=***&state=1", ["frag-secret"]),
])
def test_redact_url(url, shown, hidden):
    assert redact_url(url) == shown
    for secret in hidden:
        assert secret not in redact_url(url)
        assert secret in url_secrets(url) or any(secret in s for s in url_secrets(url))


@pytest.mark.parametrize("value", ["/data/a?b.txt", "s3://bucket/key.txt", "https://h/p?page=2&q=cats", "not a url"])
def test_harmless_values_are_unchanged(value):
    assert redact_url(value) == value
    assert redact_text(value) == value


def test_redact_text_finds_urls_and_known_secrets():
    text = ("ClientResponseError: 500, message='x', url='https://u:pw1234@h:8443/f?sig=abc123&n=1' "
            "(Incorrect API key provided: sk-live-9999)")
    out = redact_text(text, ["sk-live-9999", None, ""])
    assert "pw1234" not in out and "abc123" not in out and "sk-live-9999" not in out
    assert "https://***@h:8443/f?sig=***&n=1" in out
    assert redact_text("key=%2Fab%2Bcd", ["/ab+cd"]) == "key=***"  # the URL-quoted form too
