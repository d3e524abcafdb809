"""The same BERT encoder as :mod:`daft_flow.llm.bert`, as an ONNX graph for ONNX Runtime on CPU.

The graph is written directly with ONNX Runtime's fused transformer operators (``com.microsoft``
domain: EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu), the graph that
``onnxruntime.transformers.optimizer`` would produce from an exported BERT, without exporting through
torch: building it takes the safetensors weights and numpy only, about a second. Measured on the
python3.11-doc paragraphs (docs/architecture.md, "Embeddings on CPU"), it needs about half the CPU
time of the same model in torch.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from daft_flow.llm.bert import BertConfig

MS = "com.microsoft"


def build_bert_onnx(config: BertConfig, weights: dict[str, np.ndarray]) -> bytes:
    """A serialized ONNX model: inputs ``ids`` and ``mask`` (int32 ``[batch, seq]``, right-padded),
    output ``hidden`` (float32 ``[batch, seq, hidden]``, the last hidden states)."""
    from onnx import TensorProto, helper, numpy_helper

    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    inits: list[Any] = []

    def w(name: str) -> np.ndarray:
        key = prefix + name
        if key not in weights:
            raise ValueError(f"BERT weights: {key!r} is missing")
        return np.ascontiguousarray(weights[key], dtype=np.float32)

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    eps = config.layer_norm_eps
    e = "embeddings."
    nodes = [helper.make_node(
        "EmbedLayerNormalization",
        ["ids", "", init("word", w(e + "word_embeddings.weight")),
         # Token type 0 for every token: folded into the position table.
         init("position", w(e + "position_embeddings.weight") + w(e + "token_type_embeddings.weight")[0]),
         "", init("emb_ln_w", w(e + "LayerNorm.weight")), init("emb_ln_b", w(e + "LayerNorm.bias")), "mask"],
        ["h0", "mask_index"], domain=MS, epsilon=eps)]
    h = "h0"
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        qkv_w = np.concatenate([w(a + f"self.{x}.weight") for x in ("query", "key", "value")]).T
        qkv_b = np.concatenate([w(a + f"self.{x}.bias") for x in ("query", "key", "value")])
        nodes += [
            helper.make_node("Attention", [h, init(f"qkv_w{i}", qkv_w), init(f"qkv_b{i}", qkv_b), "mask_index"],
                             [f"ctx{i}"], domain=MS, num_heads=config.num_heads),
            helper.make_node("MatMul", [f"ctx{i}", init(f"ao_w{i}", w(a + "output.dense.weight").T)], [f"ao{i}"]),
            helper.make_node("SkipLayerNormalization",
                             [f"ao{i}", h, init(f"ln1_w{i}", w(a + "output.LayerNorm.weight")),
                              init(f"ln1_b{i}", w(a + "output.LayerNorm.bias")),
                              init(f"ao_b{i}", w(a + "output.dense.bias"))], [f"a{i}"], domain=MS, epsilon=eps),
            helper.make_node("MatMul", [f"a{i}", init(f"i_w{i}", w(p + "intermediate.dense.weight").T)], [f"i{i}"]),
            helper.make_node("BiasGelu", [f"i{i}", init(f"i_b{i}", w(p + "intermediate.dense.bias"))], [f"g{i}"],
                             domain=MS),
            helper.make_node("MatMul", [f"g{i}", init(f"o_w{i}", w(p + "output.dense.weight").T)], [f"o{i}"]),
            helper.make_node("SkipLayerNormalization",
                             [f"o{i}", f"a{i}", init(f"ln2_w{i}", w(p + "output.LayerNorm.weight")),
                              init(f"ln2_b{i}", w(p + "output.LayerNorm.bias")),
                              init(f"o_b{i}", w(p + "output.dense.bias"))],
                             ["hidden" if i == config.num_layers - 1 else f"h{i + 1}"], domain=MS, epsilon=eps),
        ]
        h = f"h{i + 1}"
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, ["batch", "seq"]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", config.hidden_size])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
                              producer_name="daft_flow")
    model.ir_version = 8
    return model.SerializeToString()


class OnnxBertEncoder:
    """ONNX Runtime session over :func:`build_bert_onnx`'s graph; ``forward(ids, mask)`` takes and
    returns numpy arrays. Sessions are thread-safe for concurrent ``run`` calls."""

    def __init__(self, config: BertConfig, weights: dict[str, np.ndarray], *, threads: int = 0) -> None:
        import onnxruntime as ort

        self.config = config
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        # ONNX Runtime's threads spin after each run by default; the runtime's other stages need
        # those cores. Measured (1,000 paragraphs, loaded machine): 8.0 CPU s without, 9.4 with.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initializers and the like are not the user's
        self.session = ort.InferenceSession(build_bert_onnx(config, weights), opts, providers=["CPUExecutionProvider"])

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str], *, threads: int = 0) -> "OnnxBertEncoder":
        from pathlib import Path

        from safetensors.numpy import load_file

        d = Path(model_dir)
        return cls(BertConfig.from_file(d / "config.json"), load_file(str(d / "model.safetensors")), threads=threads)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if ids.shape[1] > self.config.max_positions:
            raise ValueError(f"sequence of {ids.shape[1]} tokens exceeds the model's {self.config.max_positions} "
                             "positions")
        return self.session.run(["hidden"], {"ids": np.ascontiguousarray(ids, dtype=np.int32),
                                             "mask": np.ascontiguousarray(mask, dtype=np.int32)})[0]

    __call__ = forward
