"""The seed's "Writing to multiple sinks", runnable offline: the seed's contextual flow (LLM context
per chunk, embedding of context + chunk) on the embedded defaults (`pip install "daft-flow[local]"`),
written to S3 and to a vector database in one pass.

Changes from the seed, kept as small as they can be:
- S3 is a `moto[server]` endpoint on loopback, selected by setting `AWS_ENDPOINT_URL` alone.
- `TurbopufferSink(...)` is `dflow.LanceDBSink(...)` (an embedded vector database).
- The document comes from a Python string rather than a URL (so `doc_flow["document"]` is the text;
  with URLs it would be `doc_flow["url"].open_file().read()`).
- The seed's `dflow.Multisink([write_docs, write_chunks])` names `write_docs`, which its snippet
  never defines: the one-line fix is `dflow.Multisink([chunk_txt_files, write_chunks])`.
"""
from __future__ import annotations

import os
import tempfile

import daft_flow as dflow

DOCUMENT = ("Wikipedia is a free online encyclopedia written and maintained by a community of volunteers. "
            "It is the largest and most-read reference work in history. ") * 6

CHUNK_CONTEXT_PROMPT = """
<document>
{doc_content}
</document>

Here is the chunk we want to situate within the whole document
<chunk>
{chunk_content}
</chunk>

Please give a short succinct context to situate this chunk within the overall document for the purposes of improving search retrieval of the chunk.
Answer only with the succinct context and nothing else.
"""

CONTEXTFUL_CHUNK_PROMPT = """
<context>
{chunk_context}
</context>
{chunk_content}
"""


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
            chunk_flow["chunk_context"] = chunk_flow.prompt(
                CHUNK_CONTEXT_PROMPT.format(doc_content=doc_flow["document"], chunk_content=chunk_flow["chunk"]),
                max_tokens=48,
            )
            chunk_flow["embedding"] = chunk_flow.embed_text(
                CONTEXTFUL_CHUNK_PROMPT.format(chunk_context=chunk_flow["chunk_context"],
                                               chunk_content=chunk_flow["chunk"]),
            )

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
            multi_sink = dflow.Multisink([chunk_txt_files, write_chunks])  # the seed's fix: write_docs -> chunk_txt_files
            s3_results, lancedb_results = dflow.collect(multi_sink, "https://www.wikipedia.com")
            # --- end of the seed ---
            print(s3_results)
            print(lancedb_results)
            assert s3_results.rows_written == lancedb_results.rows_written > 0
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
