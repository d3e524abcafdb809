"""Reading files over HTTP: 2,000 files of 100 KB from a local server (its own process) that adds 50 ms
per request.

  sequential     urllib, one file after another over one keep-alive connection (reference; timed on
                 --sequential-sample files and scaled to the full count)
  daft_flow      Flow(str).open_file().read() + collect_arrow (text, max_in_flight=384 by default;
                 libcurl when pycurl is installed, as with the files extra)
  daft_flow (collect_batch)  the same flow + collect_batch (rows as dicts, what most users call)
  daft download  daft 0.7: daft.functions.download(col("url")) (max_connections=32, its default)

The server (``--server``, see benchmarks/_http_server.py) is the lean one by default: it uses ~40 us
of CPU per response, so the clients get the machine's cores as they would with a remote server.
``--server aiohttp`` is aiohttp's FileResponse (~0.45 ms per response): on 2 cores it takes about one
core away from the client and the benchmark then mostly measures the server. The table notes the
server's CPU time per case's first run.

Each of daft_flow and Daft is reported twice: its first run in this process (imports, sessions and
connections included: what a script that builds a flow and runs it once pays; the flow is built at
the start, as a script would) and its best warm run after that. Targets, for first and warm runs
alike: daft_flow at least 30x faster than sequential and at least 1.5x faster than Daft's download().
The exit code is always 0.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import time
import traceback
from typing import Any, Callable
from urllib.parse import urlsplit

from . import _harness as h
from ._http_server import ServerProcess

DEFAULT_FILES = 2000
DEFAULT_SIZE = 100_000
DEFAULT_LATENCY = 0.05


def _first(fn: Callable[[], Any]) -> tuple[float | BaseException, Any]:
    try:
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result
    except Exception as e:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        return e, None


def main(argv: list[str] | None = None) -> int:
    p = h.parser("read_http", __doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=DEFAULT_FILES)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="bytes per file")
    p.add_argument("--latency", type=float, default=DEFAULT_LATENCY, help="seconds the server adds per request")
    p.add_argument("--sequential-sample", type=int, default=100, help="files the sequential case reads")
    p.add_argument("--in-flight", type=int, default=None, help="daft_flow read(max_in_flight=...)")
    h.add_repeat(p, default=3)
    p.add_argument("--skip-daft", action="store_true")
    p.add_argument("--server", choices=("lean", "aiohttp"), default="lean", help="the file server (see above)")
    args = p.parse_args(argv)

    n = args.files
    h.print_header("read_http", f"files={n:,} size={args.size:,}B latency={args.latency}s repeat={args.repeat} "
                   f"server={args.server}")
    flow = None
    try:
        import daft_flow as dflow

        flow = dflow.Flow("url", str).open_file().read(max_in_flight=args.in_flight)
    except Exception as e:
        traceback.print_exc()
        print(f"daft_flow setup failed: {e}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as root:
        line = ("lorem ipsum dolor sit amet " * 4)[:99] + "\n"
        body = (line * (args.size // len(line) + 1))[: args.size]
        for i in range(n):
            with open(os.path.join(root, f"f{i:05d}.txt"), "w") as f:
                f.write(body)
        with ServerProcess(root, args.latency, args.server) as server:
            base = server.base
            urls = [f"{base}/f{i:05d}.txt" for i in range(n)]
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

            cases: dict[str, Callable[[], Any]] = {}
            if flow is not None:
                cases["daft_flow"] = lambda: flow.collect_arrow(urls, progress=False)
                cases["daft_flow (collect_batch)"] = lambda: flow.collect_batch(urls, progress=False)
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

            def check_result(name: str, result: Any) -> None:
                if name == "daft_flow":
                    texts = result.column("text")
                    assert texts.length() == n and len(texts[0].as_py()) == args.size, "daft_flow read wrong bytes"
                if name == "daft_flow (collect_batch)":
                    assert len(result) == n and len(result[0]["text"]) == args.size, "daft_flow read wrong bytes"
                if name == "sequential":
                    assert result == len(sample) * args.size

            seq = h.best_of_interleaved({"sequential": sequential}, repeat=1, warmup=0, on_result=check_result,
                                        log=sys.stderr)["sequential"]
            # First runs: each library's first reads in this process, before anything has warmed it.
            first: dict[str, Any] = {}
            server_cpu: dict[str, float] = {}
            for name, fn in cases.items():
                print(f"  first run: {name}", file=sys.stderr, flush=True)
                before = server.cpu_seconds()
                first[name], result = _first(fn)
                server_cpu[name] = server.cpu_seconds() - before
                if not isinstance(first[name], BaseException):
                    check_result(name, result)
                result = None
            warm = h.best_of_interleaved(cases, repeat=args.repeat, warmup=0, on_result=check_result, log=sys.stderr)

    total_bytes = n * args.size
    rows = []
    seconds: dict[str, float] = {}
    if isinstance(seq, BaseException):
        rows.append(h.Row("sequential", None, error=f"{type(seq).__name__}: {seq}"))
    else:
        seconds["sequential"] = seq.best * (n / len(sample))
        rows.append(h.Row("sequential", seconds["sequential"], nbytes=total_bytes,
                          note=f"measured {len(sample)} files, scaled x{n / len(sample):g}"))
    for name in cases:
        for label, value in ((f"{name} (first run)", first[name]), (f"{name} (warm)", warm[name])):
            if isinstance(value, BaseException):
                rows.append(h.Row(label, None, error=f"{type(value).__name__}: {value}"))
                continue
            s = value if isinstance(value, float) else value.best
            seconds[label] = s
            first_note = "first collect_batch, after daft_flow's first run" if "collect_batch" in name \
                else "first run of the process"
            note = f"{first_note}; server CPU {server_cpu[name]:.2f} s" if "first" in label else f"best of {args.repeat}"
            rows.append(h.Row(label, s, nbytes=total_bytes, note=note))
    h.print_table(rows, baseline="daft_flow (warm)", title="read_http")
    for kind in ("first run", "warm"):
        batch, daft_s = seconds.get(f"daft_flow (collect_batch) ({kind})"), seconds.get(f"daft download ({kind})")
        if batch and daft_s:
            print(f"info  daft download / daft_flow collect_batch ({kind}): {daft_s / batch:.2f}")
        ours = seconds.get(f"daft_flow ({kind})")
        if ours is None:
            continue
        if "sequential" in seconds:
            h.check(f"sequential / daft_flow ({kind})", seconds["sequential"] / ours, ">=", 30)
        if f"daft download ({kind})" in seconds:
            h.check(f"daft download / daft_flow ({kind})", seconds[f"daft download ({kind})"] / ours, ">=", 1.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
