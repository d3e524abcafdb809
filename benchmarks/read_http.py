"""Reading files over HTTP: 2,000 files of 100 KB from a local server that adds 50 ms per request.

  sequential     urllib, one file after another over one keep-alive connection (reference; timed on
                 --sequential-sample files and scaled to the full count)
  daft_flow      Flow(str).open_file().read() + collect_arrow (text, max_in_flight=64 by default)
  daft download  daft 0.7: daft.functions.download(col("url")) (max_connections=32, its default)

Targets: daft_flow at least 10x faster than sequential, and at least as fast as Daft's download().
The exit code is always 0.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
import traceback
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from . import _harness as h

DEFAULT_FILES = 2000
DEFAULT_SIZE = 100_000
DEFAULT_LATENCY = 0.05


def _server(root: str, latency: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=root, **kwargs)

        def do_GET(self) -> None:  # noqa: N802
            time.sleep(latency)
            super().do_GET()

        def do_HEAD(self) -> None:  # noqa: N802
            time.sleep(latency)
            super().do_HEAD()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> int:
    p = h.parser("read_http", __doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=DEFAULT_FILES)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="bytes per file")
    p.add_argument("--latency", type=float, default=DEFAULT_LATENCY, help="seconds the server adds per request")
    p.add_argument("--sequential-sample", type=int, default=100, help="files the sequential case reads")
    p.add_argument("--in-flight", type=int, default=None, help="daft_flow read(max_in_flight=...)")
    h.add_repeat(p, default=1)
    p.add_argument("--skip-daft", action="store_true")
    args = p.parse_args(argv)

    n = args.files
    h.print_header("read_http", f"files={n:,} size={args.size:,}B latency={args.latency}s repeat={args.repeat}")
    with tempfile.TemporaryDirectory() as root:
        line = ("lorem ipsum dolor sit amet " * 4)[:99] + "\n"
        body = (line * (args.size // len(line) + 1))[: args.size]
        for i in range(n):
            with open(os.path.join(root, f"f{i:05d}.txt"), "w") as f:
                f.write(body)
        server, base = _server(root, args.latency)
        urls = [f"{base}/f{i:05d}.txt" for i in range(n)]
        total_bytes = n * args.size
        sample = urls[: max(1, min(args.sequential_sample, n))]

        def sequential() -> int:
            parts = urlsplit(base)
            conn = http.client.HTTPConnection(parts.hostname, parts.port)
            got = 0
            for u in sample:
                conn.request("GET", urlsplit(u).path)
                got += len(conn.getresponse().read().decode())
            conn.close()
            return got

        cases: dict[str, Callable[[], Any]] = {"sequential": sequential}
        try:
            import daft_flow as dflow

            flow = dflow.Flow("url", str).open_file().read(max_in_flight=args.in_flight)
            cases["daft_flow"] = lambda: flow.collect_arrow(urls)
        except Exception as e:
            traceback.print_exc()
            print(f"daft_flow setup failed: {e}", file=sys.stderr)
        if not args.skip_daft:
            try:
                import daft
                from daft.functions import download

                def daft_download() -> Any:
                    df = daft.from_pydict({"url": urls})
                    return df.with_column("data", download(daft.col("url"))).collect()

                cases["daft download"] = daft_download
            except Exception as e:
                print(f"daft setup failed: {e}", file=sys.stderr)

        def on_result(name: str, result: Any) -> None:
            if name == "daft_flow":
                texts = result.column("text")
                assert texts.length() == n and len(texts[0].as_py()) == args.size, "daft_flow read wrong bytes"
            if name == "sequential":
                assert result == len(sample) * args.size

        timings = h.best_of_interleaved(cases, repeat=args.repeat, warmup=0, on_result=on_result, log=sys.stderr)
        server.shutdown()
        server.server_close()

    rows = []
    seconds: dict[str, float] = {}
    for name, t in timings.items():
        if isinstance(t, BaseException):
            rows.append(h.Row(name, None, error=f"{type(t).__name__}: {t}"))
            continue
        s = t.best * (n / len(sample)) if name == "sequential" else t.best
        seconds[name] = s
        note = f"measured {len(sample)} files, scaled x{n / len(sample):g}" if name == "sequential" else ""
        rows.append(h.Row(name, s, nbytes=total_bytes, note=note))
    h.print_table(rows, baseline="daft_flow", title="read_http")
    if "daft_flow" in seconds:
        if "sequential" in seconds:
            h.check("sequential / daft_flow", seconds["sequential"] / seconds["daft_flow"], ">=", 10)
        if "daft download" in seconds:
            h.check("daft download / daft_flow", seconds["daft download"] / seconds["daft_flow"], ">=", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
