"""Flows and inputs shared by the cluster tests (dflow-workers and Ray)."""
import json

import daft_flow as dflow


def _doc_flow() -> dflow.Flow:
    """A chunk + Python-function flow, with a function that fails on some chunks."""
    doc = dflow.Flow("doc", str)
    doc["words"] = doc["doc"].run_python(lambda s: len(s.split()), return_type=int)
    chunks = doc["doc"].chunk_text(max_chars=40, overlap=8)

    def shout(chunk: str) -> str:
        if "seven" in chunk:
            raise ValueError(f"no sevens: {chunk[:10]!r}")
        return chunk.upper()

    chunks["loud"] = chunks["chunk"].run_python(shout)
    chunks["words"] = doc["words"]
    return chunks


NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DOCS = [" ".join(NUMBERS[(i + k) % 10] for k in range(i % 23)) + f" doc {i}." for i in range(240)]


def _jsonl(paths):
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


def _failures(failures):
    return [(f.input_index, f.row_id, f.flow, f.op, f.field, type(f.error).__name__, str(f.error)) for f in failures]
