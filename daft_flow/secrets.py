"""Keeping secrets out of what is shown: one redaction for every URL that reaches an error
message, a log line, a repr, a plan or ``explain()``.

A URL can carry credentials in two places: its userinfo (``https://user:password@host/``,
``https://TOKEN@host/``) and its query (``?api-key=..``, ``?X-Amz-Signature=..``, ``?sig=..``,
``?token=..``). ``redact_url`` replaces the whole userinfo and the value of every query parameter
whose name looks like a credential with ``***``; the rest (scheme, host, path, harmless
parameters) stays, so the message still says which file or endpoint it is about.
``redact_text`` does the same to every URL inside a longer text (an exception's message) and
also removes given secret values (an API key a server echoed back) wherever they appear.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import quote, unquote

REDACTED = "***"

# Query parameter names (lowercased, '-' and '_' removed) holding a credential: API keys, tokens,
# passwords, and the signatures/credentials of presigned URLs (S3 X-Amz-*, GCS X-Goog-*, Azure SAS
# ``sig``, CloudFront ``Signature``/``Key-Pair-Id``, OAuth ``code``/``client_secret``).
_SECRET_PARTS = ("key", "token", "sig", "secret", "password", "passwd", "pwd", "credential", "auth",
                 "session", "jwt", "bearer", "cookie")
_SECRET_NAMES = frozenset({"code", "pass", "private", "hmac", "ticket"})

# A URL inside free text: a scheme, then everything up to whitespace, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_SCHEME_AND_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter called ``name`` holds a credential (by name)."""
    n = unquote(name).lower().replace("-", "").replace("_", "").replace(".", "")
    return n in _SECRET_NAMES or any(part in n for part in _SECRET_PARTS)


def _redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and is_secret_param(name) else item)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-like query values replaced by ``***``.

    Not a URL (a local path, any text without ``scheme://``): returned unchanged, except that a
    query-looking tail is still cleaned. Never raises.
    """
    if not isinstance(url, str):
        return url
    m = _SCHEME_AND_AUTHORITY.match(url)
    if m is not None:
        authority = m.group(2)
        if "@" in authority:
            host = authority.rpartition("@")[2]
            url = f"{m.group(1)}{REDACTED}@{host}{url[m.end():]}"
    base, hash_, fragment = url.partition("#")
    path, q, query = base.partition("?")
    if q:
        base = f"{path}?{_redact_query(query)}"
    if hash_ and "=" in fragment:  # OAuth implicit flow puts tokens in the fragment
        fragment = _redact_query(fragment)
    return base + hash_ + fragment if hash_ else base


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL in it redacted (see ``redact_url``) and each of ``secrets`` (and its
    URL-quoted form) replaced by ``***`` wherever it appears. Secrets shorter than 4 characters
    are left alone (they would match ordinary text)."""
    if not isinstance(text, str) or not text:
        return text
    out = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, REDACTED)
            quoted = quote(secret, safe="")
            if quoted != secret:
                out = out.replace(quoted, REDACTED)
    return out


def url_secrets(url: str | None) -> list[str]:
    """The credential values ``url`` carries (its userinfo password/user and credential-like query
    values), for removing them from texts that quote them without the URL around them."""
    if not url:
        return []
    found: list[str] = []
    m = _SCHEME_AND_AUTHORITY.match(url)
    if m is not None and "@" in m.group(2):
        userinfo = m.group(2).rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        found += [v for v in (password, unquote(password), user, unquote(user)) if v]
    base, _, fragment = url.partition("#")
    query = base.partition("?")[2]
    items = (query.split("&") if query else []) + (fragment.split("&") if "=" in fragment else [])
    for item in items:
        name, eq, value = item.partition("=")
        if eq and value and is_secret_param(name):
            found += [value, unquote(value)]
    return list(dict.fromkeys(found))
