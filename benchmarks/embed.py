"""Embedding throughput on CPU: all-MiniLM-L6-v2 through daft_flow's embedded model vs
sentence-transformers, on the same paragraphs of the python3.11-doc reST sources.

  sentence-transformers      SentenceTransformer.encode(batch_size=32, normalize_embeddings=True), torch
  daft_flow embedder         LocalEmbedder.encode (native tokenizer, token-budget batches, ONNX Runtime)
  daft_flow embedder, torch  the same with the model in torch (why ONNX Runtime is the CPU default)
  daft_flow embed_text()     a flow with embed_text() and the default (embedded) provider: the path users call

Target: daft_flow embed_text() and the embedder >= 1.2x sentence-transformers' throughput.
Vectors are checked against sentence-transformers' (cosine). The exit code is always 0.
"""

from __future__ import annotations

import os
import sys
import time

from . import _harness as h
from ._text_corpus import load_paragraphs

DEFAULT_TEXTS = 1000


def main(argv: list[str] | None = None) -> int:
    p = h.parser("embed", __doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=DEFAULT_TEXTS, help=f"paragraphs to embed (default {DEFAULT_TEXTS})")
    h.add_repeat(p, default=3)
    p.add_argument("--no-torch", action="store_true", help="skip the daft_flow torch case")
    args = p.parse_args(argv)
    os.environ.pop("OPENAI_API_KEY", None)  # the default provider must be the embedded one
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import daft_flow as dflow
    from daft_flow.llm.local import local_provider
    from daft_flow.llm.local_embedder import LocalEmbedder, _model_dir

    texts, what = load_paragraphs(args.texts)
    h.print_header("embed", f"texts={len(texts):,} torch_threads={torch.get_num_threads()}")
    print(f"corpus: {what}")
    st = SentenceTransformer(_model_dir(None), device="cpu")
    tokens = sum(len(x) for x in st.tokenizer(texts, truncation=True, max_length=256)["input_ids"])
    print(f"tokens after truncation at 256: {tokens:,} ({tokens / len(texts):.0f} per text)")
    ours = LocalEmbedder().load()
    ours_torch = LocalEmbedder(backend="torch").load()
    provider = local_provider()
    assert provider.embedder.load().backend == ours.backend
    flow = dflow.Flow("text", str)
    flow["embedding"] = flow["text"].embed_text()

    reference = st.encode(texts, batch_size=32, normalize_embeddings=True)
    cases = {
        "sentence-transformers": lambda: st.encode(texts, batch_size=32, normalize_embeddings=True),
        "daft_flow embed_text()": lambda: np.asarray([r["embedding"] for r in flow.collect_batch(texts)],
                                                     dtype=np.float32),
        "daft_flow embedder": lambda: ours.encode(texts),
    }
    if not args.no_torch:
        cases["daft_flow embedder, torch"] = lambda: ours_torch.encode(texts)
    cosines: dict[str, float] = {}
    cpu: dict[str, list[float]] = {name: [] for name in cases}

    def timed(name, fn):
        def run():
            c = time.process_time()
            out = fn()
            cpu[name].append(time.process_time() - c)
            return out
        return run

    def check(name, vectors):
        cosines[name] = float((np.asarray(vectors) * reference).sum(axis=1).min())

    results = h.best_of_interleaved({n: timed(n, f) for n, f in cases.items()}, repeat=args.repeat,
                                    on_result=check, log=sys.stderr)
    rows = []
    for name, r in results.items():
        if isinstance(r, BaseException):
            rows.append(h.Row(name, None, error=f"{type(r).__name__}: {r}"[:120]))
            continue
        note = f"{tokens / r.best:,.0f} tokens/s, min cpu {min(cpu[name]):.2f}s, min cosine vs ST {cosines[name]:.7f}"
        rows.append(h.Row(name, r.best, rows=len(texts), note=note))
    print()
    h.print_table(rows, baseline="sentence-transformers")
    print()
    secs = {n: r.best for n, r in results.items() if not isinstance(r, BaseException)}
    base = secs.get("sentence-transformers")
    for name in ("daft_flow embed_text()", "daft_flow embedder"):
        h.check(f"{name} throughput / sentence-transformers", base / secs[name] if base and name in secs else None,
                ">=", 1.2)
    print(f"(backend of the embedded provider: {ours.backend} on {ours.device}, batch_tokens={ours.batch_tokens})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
