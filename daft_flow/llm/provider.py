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
import weakref
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

from daft_flow.forksafe import ForkSafeLock
from daft_flow.llm.checks import check_number
from daft_flow.llm.rate_limit import RateLimiter
from daft_flow.llm.tokens import count_tokens
from daft_flow.llm.usage import OpUsage
from daft_flow.retry import Backoff, parse_retry_after
from daft_flow.secrets import redact_text, redact_url, url_secrets

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


# Runs using each provider now, by id (an entry exists only while a run holds the provider, so
# ids cannot be reused meanwhile). Kept off the instances: providers stay plain, picklable objects.
_active_runs: dict[int, int] = {}
# Held across reset()/release(), so a run starting while the last one closes the client waits for
# the close and then gets a fresh client, never the one being closed.
_runs_lock = ForkSafeLock()


class Provider(abc.ABC):
    """Base class. Subclasses implement ``complete`` and ``embed``.

    A provider outlives runs and may serve several at once (threads running flows that share it):
    the runtime counts the runs using it, calls ``reset()`` when the first of them starts and
    ``release()`` when the last one ends, so no run closes connections another one still uses.
    """

    model: str = ""
    embedding_model: str = ""
    embedding_dim: int = 0  # 0 when unknown before the first answer

    def describe(self) -> str:
        return type(self).__name__

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Called when a run starts using this provider while no other run does."""

    def release(self) -> None:  # noqa: B027 - optional hook
        """Called when the last run using this provider ends: closes connections (from outside
        the event loop thread)."""

    def _begin_run(self) -> None:
        """A run starts using this provider (the runtime calls this once per run)."""
        with _runs_lock:
            runs = _active_runs.get(id(self), 0)
            if runs == 0:
                self.reset()  # if it raises, the run does not hold the provider
            _active_runs[id(self)] = runs + 1

    def _end_run(self) -> None:
        """A run that called ``_begin_run`` ended (successfully or not)."""
        with _runs_lock:
            runs = _active_runs.pop(id(self), 0) - 1
            if runs > 0:
                _active_runs[id(self)] = runs
            else:
                self.release()

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
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM, ...).

    Every setting is checked here: ``base_url`` must be an http(s) URL with a host; rate limits,
    ``burst``, ``timeout`` and the batch sizes must be positive (``None`` means no rate limit);
    ``max_retries`` must be >= 0. Credentials in ``base_url`` (``https://user:pw@host``,
    ``?api-key=..``) and the API key never appear in error messages.

    The API key: ``api_key=`` (kept in memory only), else the environment variable named by
    ``api_key_env`` (default ``OPENAI_API_KEY``), read when requests are sent. A provider pickles
    (and travels in plans) as its configuration, never with the key: the receiving process reads
    ``api_key_env`` from its own environment, and a provider that had a key fails there with an
    error naming that variable when it is not set. Credentials in ``base_url`` never travel (such a
    provider refuses to be pickled: pass the key through ``api_key_env``). ``repr``, ``describe()``,
    plans and ``explain()`` show ``base_url`` with credentials replaced by ``***``.
    """

    # While the server has not answered once since the run started, connections that cannot be made
    # (refused, unknown host) stop the run with one ProviderConfigError (a wrong base_url or a server
    # that is not running) instead of failing every row the same way: when a request used all its
    # attempts that way, or when they have failed for UNREACHABLE_AFTER_S seconds (a server that is
    # still starting gets that long).
    UNREACHABLE_AFTER_S = 10.0

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, model: str = "gpt-4o-mini",
                 embedding_model: str = "text-embedding-3-small", requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, max_concurrency: int = 64, max_retries: int = 8,
                 timeout: float = 60.0, burst: float | None = None, embedding_dim: int = 0,
                 embedding_batch_tokens: int = 8000, embedding_batch_size: int = 256,
                 api_key_env: str = DEFAULT_KEY_ENV) -> None:
        # What travels (pickles, plans): every setting but the key. Taken before anything else.
        self._settings = {k: v for k, v in locals().items() if k not in ("self", "api_key")}
        self.base_url = _check_base_url(base_url)
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"OpenAIProvider: api_key must be a str, got {type(api_key).__name__}")
        if not isinstance(api_key_env, str) or not api_key_env or "=" in api_key_env or "\0" in api_key_env:
            raise ValueError(f"OpenAIProvider: api_key_env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        self._key = _Secret(api_key) if api_key else None
        # A provider made with a key needs one wherever it runs (after pickling: from api_key_env).
        self._key_required = bool(api_key) or api_key_env != DEFAULT_KEY_ENV or bool(os.environ.get(api_key_env))
        for name, value in (("model", model), ("embedding_model", embedding_model)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"OpenAIProvider: {name} must be a non-empty str, got {value!r}")
        self.model, self.embedding_model = model, embedding_model
        self.embedding_dim = check_number(embedding_dim, "OpenAIProvider: embedding_dim", positive=False, integer=True)
        self.max_concurrency = check_number(max_concurrency, "OpenAIProvider: max_concurrency", integer=True)
        self.max_retries = check_number(max_retries, "OpenAIProvider: max_retries", positive=False, integer=True)
        self.timeout = check_number(timeout, "OpenAIProvider: timeout (seconds per request)")
        self.embedding_batch_tokens = check_number(embedding_batch_tokens, "OpenAIProvider: embedding_batch_tokens",
                                                   integer=True)
        self.embedding_batch_size = check_number(embedding_batch_size, "OpenAIProvider: embedding_batch_size",
                                                 integer=True)
        try:
            self.limiter = RateLimiter(requests_per_minute, tokens_per_minute, burst)
        except (TypeError, ValueError) as e:
            raise type(e)(f"OpenAIProvider: {e}") from None
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: ProviderConfigError | None = None  # stops every request (a bad key, an unreachable server)
        self._fatal_models: dict[str, ProviderConfigError] = {}  # stops requests for one model (404)
        self._contacted = False  # the server answered (any HTTP status) since the first run started
        self._refused_since: float | None = None  # first connection that could not be made, before any answer
        self._stopped: asyncio.Event | None = None  # set with _fatal: wakes requests waiting to retry

    def describe(self) -> str:
        return f"OpenAIProvider({redact_url(self.base_url or DEFAULT_BASE_URL)})"

    def __repr__(self) -> str:
        return self.describe()

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: what changes answers (endpoint, models), never the key,
        credentials in the URL, rate limits or retries."""
        return {"base_url": redact_url(self.base_url or DEFAULT_BASE_URL), "model": self.model,
                "embedding_model": self.embedding_model, "embedding_dim": self.embedding_dim}

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

    def _redact(self, text: str) -> str:
        """``text`` without the API key or the credentials of ``base_url``."""
        return redact_text(text, [self.api_key, *url_secrets(self.base_url)])

    def reset(self) -> None:
        self._fatal = None
        self._fatal_models = {}
        self._contacted = False
        self._refused_since = None
        self._stopped = None

    def release(self) -> None:
        client, self._client = self._client, None
        loop = self._loop
        if client is None or loop is None or loop.is_closed():
            return
        try:
            future = asyncio.run_coroutine_threadsafe(client.close(), loop)
            if not _on_loop(loop):  # waiting from the loop's own thread would block the close itself
                future.result(timeout=10)
        except Exception:  # the loop is gone (interpreter exit): nothing left to close
            pass

    def _ensure(self) -> Any:
        """The client for the running loop (made on first use after ``release``)."""
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
            self._stopped = None
            self._loop = loop
            _with_clients.add(self)
        if self._stopped is None:
            self._stopped = asyncio.Event()
        return self._client

    def _check_fatal(self, model: str) -> None:
        fatal = self._fatal or self._fatal_models.get(model)
        if fatal is not None:
            raise fatal

    async def _request(self, send: Any, estimate: int, usage: OpUsage, model: str = "") -> tuple[Any, int]:
        """Sends with rate limiting and retries; returns (response, attempts)."""
        import openai

        client = self._ensure()
        sem = self._sem
        assert sem is not None
        attempt = 0
        refused_only = True  # every attempt so far failed to connect
        while True:
            self._check_fatal(model)
            async with sem:
                self._check_fatal(model)
                usage.add(requests=1)
                _ESTIMATE.set(estimate)
                start = time.monotonic()
                try:
                    # The client's timeout bounds each wait for bytes; this bounds the whole answer,
                    # so a server trickling a byte at a time cannot hold the row.
                    async with asyncio.timeout(self.timeout):
                        response = await send(client)
                    self._contacted = True
                    usage.add(latency_s=time.monotonic() - start)
                    return response, attempt + 1
                except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                    self._contacted = True
                    raise self._stop(ProviderConfigError(f"{self.describe()}: {self._message(e)} "
                                                         f"(HTTP {e.status_code})")) from None
                except openai.NotFoundError as e:
                    self._contacted = True
                    fatal = ProviderConfigError(f"{self.describe()}: {self._message(e)} (HTTP {e.status_code}; "
                                                f"model {model!r})")
                    self._fatal_models[model] = fatal
                    raise fatal from None
                except openai.RateLimitError as e:
                    self._contacted = True
                    delay = _BACKOFF.delay(attempt, _retry_after(e))
                    error: Exception = e
                    refused_only = False
                except openai.APIStatusError as e:
                    self._contacted = True
                    if e.status_code < 500 and e.status_code not in (408, 409):
                        raise ProviderError(f"{self.describe()}: {self._message(e)} (HTTP {e.status_code})") from None
                    delay, error, refused_only = _backoff(attempt), e, False
                except (openai.APITimeoutError, TimeoutError) as e:
                    delay, error, refused_only = _backoff(attempt), e, False
                except openai.APIConnectionError as e:
                    delay, error = _backoff(attempt), e
                    refused_only = refused_only and _is_connect_error(e)
                    if refused_only and not self._contacted:
                        now = time.monotonic()
                        self._refused_since = self._refused_since or now
                        if now - self._refused_since >= self.UNREACHABLE_AFTER_S:
                            raise self._give_up(attempt + 1, e, True) from None
            if attempt >= self.max_retries:
                raise self._give_up(attempt + 1, error, refused_only) from None
            attempt += 1
            usage.add(retries=1)
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Waits ``delay`` seconds before a retry, or less if the provider stopped meanwhile."""
        stopped = self._stopped
        if stopped is None:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(stopped.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def _stop(self, error: ProviderConfigError) -> ProviderConfigError:
        """Makes ``error`` the answer to every request of this provider until the next run."""
        self._fatal = error
        if self._stopped is not None:
            self._stopped.set()
        return error

    def _give_up(self, attempts: int, error: Exception, refused_only: bool) -> ProviderError:
        """The error of a request that used all its attempts (a ProviderConfigError for the run when
        the server could never be reached)."""
        cause = self._message(error)
        if refused_only and not self._contacted:
            if self._fatal is None:
                waited = time.monotonic() - (self._refused_since or time.monotonic())
                self._stop(ProviderConfigError(
                    f"{self.describe()}: cannot connect ({cause}; {attempts} attempt(s) over {waited:.0f} s, no "
                    f"answer from the server since the run started): check base_url and that the server is running"))
            assert self._fatal is not None
            return self._fatal
        return ProviderError(f"{self.describe()}: gave up after {attempts} attempt(s): {cause}")

    def _message(self, e: BaseException) -> str:
        """What ``e`` says, with the cause of a connection error (refused, unknown host) and no secrets."""
        if isinstance(e, TimeoutError) and not str(e):  # the whole-answer limit of _request
            return f"no complete answer within {self.timeout:g} s (timeout)"
        text = _message(e)
        cause = e.__cause__ or e.__context__
        if cause is not None and text in ("Connection error.", "Request timed out."):
            detail = str(cause) or type(cause).__name__
            text = f"{text[:-1]}: {detail}"
        return self._redact(text)

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
        estimate = self._count_tokens([prompt])[0] + (max_tokens or 256)
        messages = [{"role": "user", "content": prompt}]

        async def send(client: Any) -> Any:
            return await client.chat.completions.create(model=model, messages=messages, **kwargs)

        response, _ = await self._request(send, estimate, usage, model)
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

        response, _ = await self._request(send, estimate, usage, model)
        u = getattr(response, "usage", None)
        if u is not None:
            usage.add(input_tokens=int(u.prompt_tokens or 0))
            self.limiter.settle(estimate, int(u.prompt_tokens or 0))
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(inputs):
            raise ProviderError(f"{self.describe()}: {len(data)} embeddings for {len(inputs)} inputs")
        return [list(d.embedding) for d in data]


def _check_base_url(url: Any) -> str | None:
    """``url`` if it is None or an http(s) URL with a host; else a ValueError showing it redacted."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"OpenAIProvider: base_url must be a str URL, got {type(url).__name__}")
    example = "like 'http://127.0.0.1:8080/v1' or 'https://api.openai.com/v1'"
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"OpenAIProvider: base_url {redact_url(url)!r} is empty or contains whitespace or control "
                         f"characters; it must be an http(s) URL {example}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise ValueError(f"OpenAIProvider: invalid base_url {redact_url(url)!r} ({e}); it must be an http(s) URL "
                         f"{example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        what = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"OpenAIProvider: base_url {redact_url(url)!r} has {what}; it must be an http(s) URL {example}")
    if not parts.hostname:
        raise ValueError(f"OpenAIProvider: base_url {redact_url(url)!r} has no host; it must be an http(s) URL "
                         f"{example}")
    return url


def _is_connect_error(e: BaseException) -> bool:
    """Whether the connection could not be made at all (refused, unknown host, unreachable)."""
    cause = e.__cause__ or e.__context__
    # By class name: the openai client's transport is httpx or its fork httpx2, by version.
    return isinstance(cause, OSError) or any(c.__name__ == "ConnectError" for c in type(cause).__mro__)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# Providers with a client, so that a forked child can drop the clients it inherited: their
# connections are the parent's and their loop has no thread in the child.
_with_clients: "weakref.WeakSet[OpenAIProvider]" = weakref.WeakSet()
_inherited_clients: list[Any] = []  # kept referenced: no destructor may close the parent's sockets


def _forget_clients_after_fork() -> None:
    _active_runs.clear()  # the parent's runs are not this process's
    for provider in list(_with_clients):
        if provider._client is not None:
            _inherited_clients.append(provider._client)
        provider._client, provider._loop, provider._sem, provider._stopped = None, None, None, None


os.register_at_fork(after_in_child=_forget_clients_after_fork)


def _httpx_limits(max_concurrency: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)


def _message(e: BaseException) -> str:
    return str(getattr(e, "message", None) or e) or type(e).__name__


_BACKOFF = Backoff(initial=0.25, maximum=20.0)  # Retry-After waits capped at retry.RETRY_AFTER_MAX_S (60 s)


def _backoff(attempt: int) -> float:
    return _BACKOFF.delay(attempt)


def _retry_after(e: Any) -> float | None:
    return parse_retry_after(getattr(getattr(e, "response", None), "headers", None))
