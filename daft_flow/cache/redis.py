"""``dflow.RedisCache``: entries in a Redis server, shared by every process and machine that can
reach it. Lookups are one ``MGET`` per batch, writes one pipeline of ``SET`` (with ``PX`` for a
TTL) per group of writes; size limits are the server's (``maxmemory`` with an LRU policy)."""
from __future__ import annotations

import os
from typing import Any

from daft_flow.cache.base import Cache, CacheError, check_ttl

# Keys: "{namespace}:{32 hex digits of the op}:{32 hex digits of the values}", so entries of one
# op are one SCAN pattern and nothing else in the database is ever touched.
_SCAN_COUNT = 1000


class RedisCache(Cache):
    """Results in Redis at ``url`` (``redis://host:6379/0``, ``rediss://`` for TLS, ``unix://``).
    ``ttl`` (seconds or a ``timedelta``) expires entries; ``namespace`` prefixes every key.

    A password belongs in the environment, not in a plan: ``password_env="REDIS_PASSWORD"`` names
    the variable each process reads. A URL with a password works in this process, but such a cache
    refuses to travel to other processes (a plan must not carry it)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, ttl: Any = None, namespace: str = "dflow",
                 password_env: str | None = None, timeout: float = 5.0) -> None:
        super().__init__()
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(f"RedisCache needs a URL such as 'redis://host:6379/0', got {url!r}")
        if not isinstance(namespace, str) or not namespace or any(c in namespace for c in "*?[]\\:"):
            raise ValueError(f"RedisCache: namespace must be a non-empty name without ':', '*', '?', '[', ']', "
                             f"got {namespace!r}")
        self.url = url
        self.ttl = check_ttl(ttl, "RedisCache")
        self.namespace = namespace
        self.password_env = password_env
        self.timeout = float(timeout)

    def _shown_url(self) -> str:
        from daft_flow.secrets import redact_url

        return redact_url(self.url)

    def __repr__(self) -> str:
        ttl = f", ttl={self.ttl:g}" if self.ttl else ""
        return f"RedisCache({self._shown_url()!r}{ttl})"

    def __getstate__(self) -> dict[str, Any]:
        from urllib.parse import urlsplit

        if urlsplit(self.url).password:
            raise TypeError(f"{self!r} carries a password in its URL and cannot travel with a plan; pass the URL "
                            "without it and password_env='REDIS_PASSWORD' (the variable each process reads)")
        return super().__getstate__()

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        return {"cache": "RedisCache"}

    # -- the client -------------------------------------------------------------------------------
    def _client(self) -> Any:
        held = getattr(self, "_h_client", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        try:
            import redis
        except ImportError:
            raise CacheError("RedisCache needs the redis package: pip install 'daft-flow[redis]' (or redis)") from None
        password = None
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise CacheError(f"{self!r}: the environment variable {self.password_env} (password_env) is not set")
        client = redis.Redis.from_url(self.url, password=password, socket_timeout=self.timeout,
                                      socket_connect_timeout=self.timeout, health_check_interval=30)
        self._h_client = (os.getpid(), client)
        return client

    def _error(self, e: BaseException, what: str) -> CacheError:
        from daft_flow.secrets import redact_text, url_secrets

        return CacheError(f"{self!r}: {what}: {type(e).__name__}: {redact_text(str(e), url_secrets(self.url))}")

    def check(self) -> None:
        try:
            self._client().ping()
        except CacheError:
            raise
        except Exception as e:
            raise self._error(e, "the server does not answer") from None

    def _key(self, key: bytes) -> bytes:
        return b"%s:%s:%s" % (self.namespace.encode(), key[:16].hex().encode(), key[16:].hex().encode())

    # -- operations -------------------------------------------------------------------------------
    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        try:
            return list(self._client().mget([self._key(k) for k in keys]))
        except CacheError:
            raise
        except Exception as e:
            raise self._error(e, "lookup failed") from None

    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        pipe = self._client().pipeline(transaction=False)
        px = int(self.ttl * 1000) if self.ttl else None
        for k, v in items:
            pipe.set(self._key(k), v, px=px)
        pipe.execute()

    def _delete_matching(self, pattern: bytes) -> int:
        client = self._client()
        n = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                n += client.unlink(*batch)
                batch = []
        if batch:
            n += client.unlink(*batch)
        return n

    def _delete_prefix(self, prefix: bytes) -> int:
        if len(prefix) != 16:
            raise ValueError("RedisCache deletes by op prefix (16 bytes)")
        return self._delete_matching(b"%s:%s:*" % (self.namespace.encode(), prefix.hex().encode()))

    def _clear(self) -> int:
        return self._delete_matching(self.namespace.encode() + b":*")
