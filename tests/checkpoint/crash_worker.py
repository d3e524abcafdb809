"""The program the crash test kills: documents -> chunks -> prompt -> Multisink([JSONFileSink,
ParquetSink]) with a checkpoint. ``python crash_worker.py BASE_URL CHECKPOINT OUT_DIR [DOCS]``."""
import sys

import daft_flow as dflow


def documents(n: int, words_per_doc: int = 180) -> list[str]:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    return [" ".join(f"{words[(d * 7 + k) % len(words)]}{d}-{k}" for k in range(words_per_doc)) for d in range(n)]


def main() -> None:
    base_url, checkpoint, out = sys.argv[1:4]
    # "big": one document of 10,000 words (a crash happens inside it)
    docs = documents(1, 10000) if sys.argv[4:] == ["big"] else documents(24)
    provider = dflow.OpenAIProvider(base_url=base_url, api_key="test-key", model="fault-chat", max_concurrency=8,
                                    timeout=30.0)
    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=400, overlap=0)
    chunks["summary"] = chunks["chunk"].prompt("Summarize:", provider=provider, max_tokens=6)
    row = {"doc": doc["doc"], "chunk_index": chunks["chunk_index"], "summary": chunks["summary"]}
    sinks = dflow.Multisink([chunks.write_sink(dflow.JSONFileSink(f"{out}/json"), row),
                             chunks.write_sink(dflow.ParquetSink(f"{out}/parquet"), row)])
    results = sinks.collect_batch(docs, checkpoint=checkpoint)
    print("done", [r.rows_written for r in results], flush=True)


if __name__ == "__main__":
    main()
