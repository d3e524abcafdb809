"""The seed's quickstart, as far as the engine goes today: chunk documents, then compute on each chunk.

The LLM step (`chunk_flow["chunk"].prompt(...)`) arrives with the LLM ops; until then a Python
function stands in for it, so this runs offline with nothing but the package installed.
"""
import daft_flow as dflow


def first_sentence(chunk: str) -> str:
    """A stand-in summary: the chunk's first sentence."""
    end = chunk.find(". ")
    return chunk if end < 0 else chunk[: end + 1]


# Simple example that chunks text into summarizations for each chunk
document_flow = dflow.Flow("document", str)
chunk_flow = document_flow.chunk_text()
chunk_flow["chunk_summary"] = chunk_flow["chunk"].run_python(first_sentence)

# Run/test on simple Python string(s)
print(chunk_flow.collect("The quick brown fox jumps over the lazy dog"))
print(chunk_flow.collect_batch([
    "The quick brown fox jumps over the lazy dog",
    "The five boxing wizards jump quickly",
    "Sphinx of black quartz, judge my vow",
]))

# A longer document: chunks carry offsets into the document and can read its fields.
document_flow["title"] = document_flow["document"].run_python(lambda d: d.split("\n", 1)[0], return_type=str)
chunk_flow["title"] = chunk_flow["chunk"].run_python(lambda c, t: t, document_flow["title"], return_type=str)
chunk_flow["words"] = chunk_flow["chunk"].run_python(lambda c: len(c.split()), return_type=int)
document = "A short report\n\n" + "\n\n".join(
    f"Section {i}. The engine splits text at the most meaningful boundary that fits. " * 6 for i in range(5))
for row in chunk_flow.stream([document]):
    print(f"#{row['chunk_index']} [{row['start_offset']}:{row['end_offset']}] {row['title']!r}: "
          f"{row['words']} words, summary: {row['chunk_summary'][:60]!r}")
print(chunk_flow.explain())
