"""The seed's "Writing to multiple sinks", runnable offline.

Changes from the seed, kept as small as they can be:
- S3 is a `moto[server]` endpoint on loopback, selected by setting `AWS_ENDPOINT_URL` alone.
- `TurbopufferSink(...)` is `dflow.LanceDBSink(...)` (an embedded vector database).
- `prompt(...)` and `embed_text(...)` are stood in for by Python functions until the LLM ops land;
  the contextual prompt templates are therefore not used.
- The document comes from a Python string rather than a URL, and the seed's `write_docs` is the
  chunk text sink (`chunk_txt_files`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile

import daft_flow as dflow

DOCUMENT = ("Wikipedia is a free online encyclopedia written and maintained by a community of volunteers. "
            "It is the largest and most-read reference work in history. ") * 12


def situate(chunk: str, document: str) -> str:
    """Stand-in for the LLM context prompt: where the chunk sits in the document."""
    return f"Chunk at character {document.find(chunk)} of a {len(document)}-character document."


def embed(chunk: str, context: str) -> list[float]:
    """Stand-in for `embed_text`: a deterministic 16-dimensional hashed bag of words."""
    vec = [0.0] * 16
    for word in f"{context} {chunk}".lower().split():
        vec[hashlib.blake2b(word.encode(), digest_size=1).digest()[0] % 16] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket="chunks")
        with tempfile.TemporaryDirectory() as db:
            doc_flow = dflow.Flow("url", str)
            doc_flow["document"] = doc_flow["url"].run_python(lambda url: DOCUMENT, return_type=str)
            chunk_flow = doc_flow["document"].chunk_text(max_chars=300, overlap=0)
            chunk_flow["chunk_context"] = chunk_flow["chunk"].run_python(situate, doc_flow["document"],
                                                                         return_type=str)
            chunk_flow["embedding"] = chunk_flow["chunk"].run_python(embed, chunk_flow["chunk_context"],
                                                                     return_type=dflow.Embedding[16])

            # --- the seed, from here on ---
            ###
            # Data Persistence
            ###
            # Save each chunk (just the raw text as a .txt) to S3
            chunk_txt_files = chunk_flow.write_sink(
                dflow.S3FileSink("s3://chunks/wikipedia"),
                chunk_flow["chunk"],
            )

            # Save each chunk to a vector DB
            write_chunks = chunk_flow.write_sink(
                dflow.LanceDBSink(db, "chunks"),
                {
                    "document_url": doc_flow["url"],
                    "chunk_start": chunk_flow["start_offset"],
                    "chunk_end": chunk_flow["end_offset"],
                    "embedding": chunk_flow["embedding"],
                    "context": chunk_flow["chunk_context"],
                },
            )

            # Run both sinks
            multi_sink = dflow.Multisink([chunk_txt_files, write_chunks])
            s3_results, lancedb_results = dflow.collect(multi_sink, "https://www.wikipedia.com")
            # --- end of the seed ---
            print(s3_results)
            print(lancedb_results)
            assert s3_results.rows_written == lancedb_results.rows_written > 0
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
