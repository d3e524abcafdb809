"""LLM providers: where prompt() and embed_text() send their requests.

``OpenAIProvider`` talks to any OpenAI-compatible endpoint through the ``openai`` client. It owns
a ``RateLimiter`` (RPM/TPM) and a concurrency cap shared by every op that uses it, retries what
is retryable (429 honouring Retry-After, 5xx, timeouts, dropped connections) with exponential
backoff and jitter, and turns an invalid key or unknown model into one ``ProviderConfigError``
that stops the run (instead of one error per row).

Which provider an op uses when it names none: ``daft_flow.llm.defaults``.
"""
from __future__ import annotations

import abc
import asyncio
import contextvars
import os
import time
from typing import Any, Sequence

from daft_flow.llm.rate_limit import RateLimiter
from daft_flow.llm.tokens import count_tokens
from daft_flow.llm.usage import OpUsage
from daft_flow.retry import Backoff, parse_retry_after
from daft_flow.secrets import redact_url, url_secrets

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class _Secret:
    """A credential held in memory: never in a repr, a pickle or a fingerprint."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> Any:
        raise TypeError("an API key is never pickled (providers read it from api_key_env where they run)")

    def __dflow_fingerprint__(self) -> str:
        return "secret"


class ProviderError(Exception):
    """A request failed for good (after retries, or not retryable): the row fails with this."""


class ProviderConfigError(ProviderError):
    """The provider cannot serve any row (invalid API key, unknown model): the run stops with it."""


# Tokens the request being sent is expected to use; read by the HTTP client's request hook, which
# takes the rate limiter's token right before the bytes go out (after the client built the request),
# so slow request building never turns into a burst at the server.
_ESTIMATE: contextvars.ContextVar[int | None] = contextvars.ContextVar("daft_flow_estimate", default=None)


class Provider(abc.ABC):
    """Base class. Subclasses implement ``complete`` and ``embed``."""

    model: str = ""
    embedding_model: str = ""
    embedding_dim: int = 0  # 0 when unknown before the first answer

    def describe(self) -> str:
        return type(self).__name__

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Called when a run starts."""

    def release(self) -> None:  # noqa: B027 - optional hook
        """Called when a run ends: closes connections (from outside the event loop thread)."""

    @abc.abstractmethod
    async def complete(self, prompt: str, *, model: str, usage: OpUsage, max_tokens: int | None = None,
                       temperature: float | None = None, response_format: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None) -> str:
        """The answer to ``prompt``; records requests and tokens on ``usage``."""

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str], *, model: str, usage: OpUsage) -> list[list[float]]:
        """One embedding per text; records requests and tokens on ``usage``."""

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Row indexes grouped into requests (many inputs per request, under a token limit)."""
        return [list(range(len(texts)))] if texts else []


class OpenAIProvider(Provider):
    """Any OpenAI-compatible endpoint.

    The API key: ``api_key=`` (kept in memory only), else the environment variable named by
    ``api_key_env`` (default ``OPENAI_API_KEY``), read when requests are sent. A provider pickles
    (and travels in plans) as its configuration, never with the key: the receiving process reads
    ``api_key_env`` from its own environment, and a provider that had a key fails with an error
    naming that variable when it is not set there. Credentials in ``base_url`` never travel (such a
    provider refuses to be pickled: pass the key through ``api_key_env``). ``repr``, ``describe()``,
    plans and ``explain()`` show ``base_url`` with credentials replaced by ``***``.
    """

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, model: str = "gpt-4o-mini",
                 embedding_model: str = "text-embedding-3-small", requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, max_concurrency: int = 64, max_retries: int = 8,
                 timeout: float = 60.0, burst: float | None = None, embedding_dim: int = 0,
                 embedding_batch_tokens: int = 8000, embedding_batch_size: int = 256,
                 api_key_env: str = DEFAULT_KEY_ENV) -> None:
        # What travels (pickles, plans): every setting but the key. Taken before anything else.
        self._settings = {k: v for k, v in locals().items() if k not in ("self", "api_key")}
        if max_concurrency <= 0:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        self.base_url = base_url
        if not isinstance(api_key_env, str) or not api_key_env or "=" in api_key_env or "\0" in api_key_env:
            raise ValueError(f"OpenAIProvider: api_key_env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        self._key = _Secret(api_key) if api_key else None
        # A provider made with a key needs one wherever it runs (after pickling: from api_key_env).
        self._key_required = bool(api_key) or api_key_env != DEFAULT_KEY_ENV or bool(os.environ.get(api_key_env))
        self.model, self.embedding_model = model, embedding_model
        self.embedding_dim = embedding_dim
        self.max_concurrency, self.max_retries, self.timeout = max_concurrency, max_retries, timeout
        self.embedding_batch_tokens, self.embedding_batch_size = embedding_batch_tokens, embedding_batch_size
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute, burst)
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: ProviderConfigError | None = None

    def describe(self) -> str:
        return f"OpenAIProvider({redact_url(self.base_url or DEFAULT_BASE_URL)})"

    def __repr__(self) -> str:
        return self.describe()

    @property
    def api_key(self) -> str:
        """The key requests send: ``api_key=``, else the environment variable ``api_key_env``
        ("" when neither is set)."""
        return self._key.value if self._key is not None else os.environ.get(self.api_key_env, "")

    def _count_tokens(self, texts: list[str]) -> list[int]:
        """Estimated tokens per text: a tokenizer's count only when a tokens-per-minute limit needs
        it, else the byte heuristic (``daft_flow.llm.tokens``)."""
        return count_tokens(texts, exact=bool(self.limiter.tokens_per_minute))

    def _request_key(self) -> str:
        key = self.api_key
        if not key and self._key_required:
            raise ProviderConfigError(f"{self.describe()} needs an API key: set the environment variable "
                                      f"{self.api_key_env} (keys never travel in plans or pickles)")
        return key or "none"  # servers without authentication (llama.cpp, vLLM) accept any key

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as configuration: no key, no client, no locks; rebuilt by ``__init__``."""
        if url_secrets(self.base_url):
            raise TypeError(f"{self.describe()} cannot be pickled or sent in a plan: its base_url carries "
                            f"credentials, which never travel; put the key in the environment variable named by "
                            f"api_key_env ({self.api_key_env}) instead")
        return {"settings": dict(self._settings), "key_required": self._key_required}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["settings"])  # type: ignore[misc]
        self._key_required = self._key_required or state["key_required"]

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: what changes answers (endpoint, models), never the key,
        credentials in the URL, rate limits or retries."""
        return {"base_url": redact_url(self.base_url or DEFAULT_BASE_URL), "model": self.model,
                "embedding_model": self.embedding_model, "embedding_dim": self.embedding_dim}

    def reset(self) -> None:
        self._fatal = None

    def release(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is not None and not self._loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(client.close(), self._loop).result(timeout=10)
            except Exception:  # the loop is gone (interpreter exit): nothing left to close
                pass

    def _ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import openai

            limiter = self.limiter

            async def take_token(request: Any) -> None:
                estimate = _ESTIMATE.get()
                if estimate is not None:
                    await limiter.acquire(estimate)

            http = openai.DefaultAsyncHttpxClient(event_hooks={"request": [take_token]},
                                                  limits=_httpx_limits(self.max_concurrency))
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._request_key(),
                                              max_retries=0, timeout=self.timeout, http_client=http)
            self._sem = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop

    async def _request(self, send: Any, estimate: int, usage: OpUsage) -> tuple[Any, int]:
        """Sends with rate limiting and retries; returns (response, attempts)."""
        import openai

        self._ensure()
        assert self._sem is not None
        attempt = 0
        while True:
            if self._fatal is not None:
                raise self._fatal
            async with self._sem:
                if self._fatal is not None:
                    raise self._fatal
                usage.add(requests=1)
                _ESTIMATE.set(estimate)
                start = time.monotonic()
                try:
                    response = await send(self._client)
                    usage.add(latency_s=time.monotonic() - start)
                    return response, attempt + 1
                except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
                    self._fatal = ProviderConfigError(f"{self.describe()}: {_message(e)} (HTTP {e.status_code})")
                    raise self._fatal from e
                except openai.RateLimitError as e:
                    delay = _BACKOFF.delay(attempt, _retry_after(e))
                    error: Exception = e
                except openai.APIStatusError as e:
                    if e.status_code < 500 and e.status_code not in (408, 409):
                        raise ProviderError(f"{self.describe()}: {_message(e)} (HTTP {e.status_code})") from e
                    delay, error = _backoff(attempt), e
                except (openai.APITimeoutError, openai.APIConnectionError) as e:
                    delay, error = _backoff(attempt), e
            if attempt >= self.max_retries:
                raise ProviderError(f"{self.describe()}: gave up after {attempt + 1} attempts: "
                                    f"{_message(error)}") from error
            attempt += 1
            usage.add(retries=1)
            await asyncio.sleep(delay)

    async def complete(self, prompt: str, *, model: str, usage: OpUsage, max_tokens: int | None = None,
                       temperature: float | None = None, response_format: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None) -> str:
        kwargs: dict[str, Any] = dict(options or {})
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        if response_format is not None:
            kwargs["response_format"] = response_format
        estimate = self._count_tokens([prompt])[0] + (max_tokens or 256)
        messages = [{"role": "user", "content": prompt}]

        async def send(client: Any) -> Any:
            return await client.chat.completions.create(model=model, messages=messages, **kwargs)

        response, _ = await self._request(send, estimate, usage)
        u = getattr(response, "usage", None)
        if u is not None:
            details = getattr(u, "prompt_tokens_details", None)
            cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
            usage.add(input_tokens=int(u.prompt_tokens or 0), output_tokens=int(u.completion_tokens or 0),
                      cached_tokens=cached)
            self.limiter.settle(estimate, int(u.prompt_tokens or 0) + int(u.completion_tokens or 0))
        if not response.choices:
            raise ProviderError(f"{self.describe()}: the answer has no choices")
        return response.choices[0].message.content or ""

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        counts = self._count_tokens(list(texts)) if texts else []
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i, n in enumerate(counts):
            if current and (tokens + n > self.embedding_batch_tokens or len(current) >= self.embedding_batch_size):
                batches.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            batches.append(current)
        return batches

    async def embed(self, texts: Sequence[str], *, model: str, usage: OpUsage) -> list[list[float]]:
        inputs = list(texts)
        estimate = sum(self._count_tokens(inputs))

        async def send(client: Any) -> Any:
            return await client.embeddings.create(model=model, input=inputs)

        response, _ = await self._request(send, estimate, usage)
        u = getattr(response, "usage", None)
        if u is not None:
            usage.add(input_tokens=int(u.prompt_tokens or 0))
            self.limiter.settle(estimate, int(u.prompt_tokens or 0))
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(inputs):
            raise ProviderError(f"{self.describe()}: {len(data)} embeddings for {len(inputs)} inputs")
        return [list(d.embedding) for d in data]


def _httpx_limits(max_concurrency: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)


def _message(e: BaseException) -> str:
    return str(getattr(e, "message", None) or e) or type(e).__name__


_BACKOFF = Backoff(initial=0.25, maximum=20.0)


def _backoff(attempt: int) -> float:
    return _BACKOFF.delay(attempt)


def _retry_after(e: Any) -> float | None:
    return parse_retry_after(getattr(getattr(e, "response", None), "headers", None))
