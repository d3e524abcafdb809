"""LLM providers: where prompt() and embed_text() send their requests.

``OpenAIProvider`` talks to any OpenAI-compatible endpoint through the ``openai`` client. It owns
a ``RateLimiter`` (RPM/TPM) and a concurrency cap shared by every op that uses it, retries what
is retryable (429 honouring Retry-After, 5xx, timeouts, dropped connections) with exponential
backoff and jitter, and turns an invalid key or unknown model into one ``ProviderConfigError``
that stops the run (instead of one error per row).

Which provider an op uses: its ``provider=``, else ``dflow.set_provider(p)``, else OpenAI when
``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` honoured), else the embedded local defaults
(``daft_flow.llm.local``: SmolLM2-135M-Instruct on a llama.cpp server, all-MiniLM-L6-v2 embeddings).
"""
from __future__ import annotations

import abc
import asyncio
import contextvars
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from daft_flow.llm.rate_limit import RateLimiter
from daft_flow.llm.usage import OpUsage


class ProviderError(Exception):
    """A request failed for good (after retries, or not retryable): the row fails with this."""


class ProviderConfigError(ProviderError):
    """The provider cannot serve any row (invalid API key, unknown model): the run stops with it."""


@dataclass(frozen=True)
class Completion:
    """A chat answer and why it ended: ``finish_reason`` is ``"stop"`` (the model finished),
    ``"length"`` (cut at ``max_tokens``), ``"content_filter"``, ... or None when the provider does
    not say. ``Provider.complete`` may return a plain ``str`` instead (finish reason unknown)."""

    text: str
    finish_reason: str | None = None


# Tokens the request being sent is expected to use; read by the HTTP client's request hook, which
# takes the rate limiter's token right before the bytes go out (after the client built the request),
# so slow request building never turns into a burst at the server.
_ESTIMATE: contextvars.ContextVar[int | None] = contextvars.ContextVar("daft_flow_estimate", default=None)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` with the native WordPiece tokenizer (an estimate for other models' tokenizers)."""
    from daft_flow.text.tokenizer import Tokenizer

    return Tokenizer.default().count(text)


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
                       options: dict[str, Any] | None = None) -> "Completion | str":
        """The answer to ``prompt`` (a ``Completion``, or just its text); records requests and
        tokens on ``usage``."""

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str], *, model: str, usage: OpUsage) -> list[list[float]]:
        """One embedding per text; records requests and tokens on ``usage``."""

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Row indexes grouped into requests (many inputs per request, under a token limit)."""
        return [list(range(len(texts)))] if texts else []


class OpenAIProvider(Provider):
    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, model: str = "gpt-4o-mini",
                 embedding_model: str = "text-embedding-3-small", requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, max_concurrency: int = 64, max_retries: int = 8,
                 timeout: float = 60.0, burst: float | None = None, embedding_dim: int = 0,
                 embedding_batch_tokens: int = 8000, embedding_batch_size: int = 256) -> None:
        if max_concurrency <= 0:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        self.base_url = base_url
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
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
        return f"OpenAIProvider({self.base_url or 'https://api.openai.com/v1'})"

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
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key or "none",
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
                    delay = _retry_after(e)
                    delay = (delay if delay is not None else _backoff(attempt)) * random.uniform(1.0, 1.25)
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
                       options: dict[str, Any] | None = None) -> Completion:
        kwargs: dict[str, Any] = dict(options or {})
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        if response_format is not None:
            kwargs["response_format"] = response_format
        estimate = estimate_tokens(prompt) + (max_tokens or 256)
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
        choice = response.choices[0]
        return Completion(choice.message.content or "", getattr(choice, "finish_reason", None))

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        from daft_flow.text.tokenizer import Tokenizer

        counts = Tokenizer.default().count_batch(list(texts)) if texts else []
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
        from daft_flow.text.tokenizer import Tokenizer

        estimate = sum(Tokenizer.default().count_batch(inputs, threads=1))

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


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.25s, 0.5s, 1s, ... capped at 20s."""
    return random.uniform(0.05, min(20.0, 0.25 * 2 ** attempt))


def _retry_after(e: Any) -> float | None:
    response = getattr(e, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


# -- configuration ------------------------------------------------------------------------------
_provider: Provider | None = None
_env_provider: OpenAIProvider | None = None
_lock = threading.Lock()


def set_provider(provider: Provider | None) -> None:
    """Makes ``provider`` the default of every op without ``provider=`` (None: back to the defaults)."""
    global _provider
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"set_provider() needs a dflow provider (e.g. dflow.OpenAIProvider), got "
                        f"{type(provider).__name__}")
    _provider = provider


def default_provider() -> Provider:
    """The provider used by ops without ``provider=``; see the module docstring for precedence."""
    global _env_provider
    if _provider is not None:
        return _provider
    if os.environ.get("OPENAI_API_KEY"):
        with _lock:
            if _env_provider is None:
                _env_provider = OpenAIProvider(base_url=os.environ.get("OPENAI_BASE_URL") or None,
                                               api_key=os.environ["OPENAI_API_KEY"],
                                               embedding_dim=0 if os.environ.get("OPENAI_BASE_URL") else 1536)
            return _env_provider
    from daft_flow.llm.local import local_provider

    return local_provider()
