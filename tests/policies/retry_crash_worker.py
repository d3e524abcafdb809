"""The program the retry crash test kills: documents -> chunks whose function fails every other
chunk's first attempt (a retry heals it) -> Multisink([JSONFileSink, ParquetSink]) with a
checkpoint. ``python retry_crash_worker.py CHECKPOINT OUT_DIR``."""
import sys
import time
import zlib

import daft_flow as dflow

DOCS = [" ".join(f"w{d}-{k}" for k in range(40)) for d in range(120)]
seen: set[str] = set()


def slow_flaky(chunk: str) -> str:
    time.sleep(0.003)
    if zlib.crc32(chunk.encode()) % 2 and chunk not in seen:  # this process's first attempt fails
        seen.add(chunk)
        raise ConnectionError(f"flaky on {chunk[:12]!r}")
    return chunk.upper()


def sinks(out: str) -> dflow.Multisink:
    doc = dflow.Flow("doc", str)
    chunks = doc["doc"].chunk_text(max_chars=30, overlap=0).with_policy(
        retry=dflow.Retry(max_attempts=3, initial_delay=0.01, max_delay=0.05))
    chunks["up"] = chunks["chunk"].run_python(slow_flaky, return_type=str)
    row = {"doc": doc["doc"], "chunk_index": chunks["chunk_index"], "up": chunks["up"]}
    return dflow.Multisink([chunks.write_sink(dflow.JSONFileSink(f"{out}/json"), row),
                            chunks.write_sink(dflow.ParquetSink(f"{out}/parquet"), row)])


if __name__ == "__main__":
    checkpoint, out = sys.argv[1:3]
    results = sinks(out).collect_batch(DOCS, checkpoint=checkpoint, batch_rows=6)
    print("done", [r.rows_written for r in results], flush=True)
