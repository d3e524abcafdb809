"""A BERT encoder in plain torch, loaded from a HF ``model.safetensors`` (all-MiniLM-L6-v2 and kin).

Written out instead of going through ``transformers`` because the embedder needs control over what
runs: one fused QKV projection per layer, ``scaled_dot_product_attention`` on the batch as packed
by :func:`daft_flow.kernels.pack_tokens`, fp16 weights on a GPU, and no per-call Python machinery
(config objects, output dataclasses, hooks) between the embedder and the matrix multiplies.
The forward is the same computation as ``transformers.BertModel`` in eval mode (post-LayerNorm,
exact erf GELU, absolute positions, token type 0), so its outputs match within float rounding.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BertConfig:
    """The fields of a HF ``config.json`` that the forward uses."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "BertConfig":
        c = json.loads(Path(path).read_text(encoding="utf-8"))
        if c.get("model_type") != "bert" or c.get("hidden_act", "gelu") != "gelu" \
                or c.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: not a BERT model with gelu and absolute positions "
                             f"(model_type={c.get('model_type')!r}, hidden_act={c.get('hidden_act')!r})")
        return cls(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_layers=c["num_hidden_layers"],
                   num_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
                   max_positions=c["max_position_embeddings"], layer_norm_eps=c.get("layer_norm_eps", 1e-12))


class BertEncoder:
    """Weights as plain tensors and a functional forward. Thread-safe for concurrent forwards (no
    state changes after construction)."""

    def __init__(self, config: BertConfig, weights: dict[str, Any], *, device: str = "cpu",
                 dtype: Any = None) -> None:
        import torch

        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def w(name: str) -> Any:
            key = prefix + name
            if key not in weights:
                raise ValueError(f"BERT weights: {key!r} is missing")
            return weights[key].to(device=self.device, dtype=self.dtype).contiguous()

        e = "embeddings."
        self.word = w(e + "word_embeddings.weight")
        # Token type 0 for every token: its embedding is folded into the position table once.
        self.position = (w(e + "position_embeddings.weight") + w(e + "token_type_embeddings.weight")[0]).contiguous()
        self.emb_ln = (w(e + "LayerNorm.weight"), w(e + "LayerNorm.bias"))
        self.layers = []
        for i in range(config.num_layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            qkv_w = torch.cat([w(a + f"self.{x}.weight") for x in ("query", "key", "value")]).contiguous()
            qkv_b = torch.cat([w(a + f"self.{x}.bias") for x in ("query", "key", "value")]).contiguous()
            self.layers.append((
                qkv_w, qkv_b,
                w(a + "output.dense.weight"), w(a + "output.dense.bias"),
                w(a + "output.LayerNorm.weight"), w(a + "output.LayerNorm.bias"),
                w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias"),
                w(p + "output.dense.weight"), w(p + "output.dense.bias"),
                w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"),
            ))

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str], *, device: str = "cpu",
                        dtype: Any = None) -> "BertEncoder":
        """Loads ``config.json`` and ``model.safetensors`` from a HF model directory."""
        from safetensors.torch import load_file

        d = Path(model_dir)
        config = BertConfig.from_file(d / "config.json")
        weights = load_file(str(d / "model.safetensors"), device="cpu")
        return cls(config, weights, device=device, dtype=dtype)

    def forward(self, ids: Any, mask: Any) -> Any:
        """Last hidden states ``[batch, seq, hidden]`` for token ids ``[batch, seq]`` (int) and an
        attention mask ``[batch, seq]`` (1 = token, 0 = padding). Call under ``torch.inference_mode()``."""
        import torch.nn.functional as F

        cfg = self.config
        b, s = ids.shape
        if s > cfg.max_positions:
            raise ValueError(f"sequence of {s} tokens exceeds the model's {cfg.max_positions} positions")
        h = F.embedding(ids, self.word) + self.position[:s]
        h = F.layer_norm(h, (cfg.hidden_size,), *self.emb_ln, cfg.layer_norm_eps)
        heads, dh = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        # Padded keys are masked out (True = attend). Applied even to batches without padding: testing
        # for that would wait for the device on every batch.
        attn_mask = (mask != 0)[:, None, None, :]
        scale = 1.0 / math.sqrt(dh)
        for (qkv_w, qkv_b, ao_w, ao_b, ln1_w, ln1_b, i_w, i_b, o_w, o_b, ln2_w, ln2_b) in self.layers:
            qkv = F.linear(h, qkv_w, qkv_b).view(b, s, 3, heads, dh).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask, scale=scale)
            ctx = ctx.transpose(1, 2).reshape(b, s, cfg.hidden_size)
            h = F.layer_norm(F.linear(ctx, ao_w, ao_b) + h, (cfg.hidden_size,), ln1_w, ln1_b, cfg.layer_norm_eps)
            inter = F.gelu(F.linear(h, i_w, i_b))
            h = F.layer_norm(F.linear(inter, o_w, o_b) + h, (cfg.hidden_size,), ln2_w, ln2_b, cfg.layer_norm_eps)
        return h

    __call__ = forward
