"""Memory while reading large files: 100 files of 50 MB read over HTTP and chunked, 512 MB budget.

  daft_flow      Flow(str).open_file().read().chain(chunk_text flow), consumed with stream()
  daft download  daft 0.7: download(col("url")).length() over the same URLs, consumed with
                 to_arrow_iter() (less work: nothing is decoded or chunked; Daft has no memory budget
                 to set, so this is what a user gets by default)

The files come from a local HTTP server in a child process (so its buffers are not counted), which
serves the same 50 MB text for every path. Peak RSS growth of this process is sampled every 10 ms.
Target: daft_flow's peak RSS growth <= memory budget + 300 MB. The exit code is always 0.
``--no-length``: the server sends no Content-Length (the body ends when the connection closes),
so bodies are streamed into a growing buffer instead of one sized up front.
"""

from __future__ import annotations

import subprocess
import sys
import time

from . import _harness as h

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
size = int(sys.argv[1])
sized = sys.argv[2] == "sized"
line = (b"lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2)[:119] + b"\n"
body = (line * (size // len(line) + 1))[:size]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        if sized:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        view = memoryview(body)
        for i in range(0, len(body), 1 << 20):
            self.wfile.write(view[i:i + (1 << 20)])
    def log_message(self, *a):
        pass
ThreadingHTTPServer.request_queue_size = 128  # the default backlog (5) drops SYNs in a burst
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def main(argv: list[str] | None = None) -> int:
    p = h.parser("read_memory", __doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--size-mb", type=int, default=50)
    p.add_argument("--budget-mb", type=int, default=512)
    p.add_argument("--skip-daft", action="store_true")
    p.add_argument("--no-length", action="store_true", help="the server sends no Content-Length")
    args = p.parse_args(argv)
    h.print_header("read_memory", f"files={args.files} size={args.size_mb}MB budget={args.budget_mb}MB"
                   + (" no Content-Length" if args.no_length else ""))
    size = args.size_mb * 10**6
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(size), "unsized" if args.no_length else "sized"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        import daft_flow as dflow

        chunks = dflow.Flow("document", str).chunk_text(max_chars=1000, overlap=0)
        flow = dflow.Flow("url", str).open_file().read().chain(chunks)
        urls = [f"http://127.0.0.1:{port}/doc{i}.txt" for i in range(args.files)]
        flow.collect(urls[0], memory_budget=f"{args.budget_mb}MB")  # warm up: imports, sessions
        n_chunks = 0
        with h.RssSampler() as rss:
            t0 = time.perf_counter()
            for _ in flow.stream(urls, memory_budget=f"{args.budget_mb}MB"):
                n_chunks += 1
            seconds = time.perf_counter() - t0
        growth = h.mb(rss.peak_growth)
        rows = [h.Row("daft_flow", seconds, nbytes=args.files * size,
                      note=f"{n_chunks:,} chunks; peak RSS growth {growth:.0f} MB")]
        daft_growth = None
        if not args.skip_daft:
            row, daft_growth = _daft_download(urls, args.files * size)
            rows.append(row)
    finally:
        server.terminate()
        server.wait()
    h.print_table(rows, title="read_memory")
    h.check("daft_flow peak RSS growth (MB)", growth, "<=", args.budget_mb + 300)
    if daft_growth:
        print(f"info  daft download peak RSS growth / daft_flow: {daft_growth / growth:.1f}x")
    return 0


def _daft_download(urls: list[str], nbytes: int) -> "tuple[h.Row, float | None]":
    """Daft's row and its peak RSS growth in MB (None when it did not run)."""
    try:
        import daft
        from daft.functions import download
    except ImportError as e:
        return h.Row("daft download", None, error=f"not installed: {e}"), None
    daft.from_pydict({"url": urls[:1]}).with_column("n", download(daft.col("url")).length()).collect()  # warm up
    total = 0
    with h.RssSampler() as rss:
        t0 = time.perf_counter()
        df = daft.from_pydict({"url": urls}).with_column("n", download(daft.col("url")).length())
        for batch in df.to_arrow_iter():
            total += sum(batch.column("n").to_pylist())
        seconds = time.perf_counter() - t0
    growth = h.mb(rss.peak_growth)
    if total != nbytes:
        return h.Row("daft download", seconds, error=f"read {total:,} bytes of {nbytes:,}"), None
    return h.Row("daft download", seconds, nbytes=nbytes,
                 note=f"download only (no decode, no chunks); peak RSS growth {growth:.0f} MB"), growth


if __name__ == "__main__":
    sys.exit(main())
