"""Batched embedding requests: embed_text() on 2,000 rows against the fault server (in its own
process, 5 ms of latency per request), many inputs per request vs one request per row.

  daft_flow batched   OpenAIProvider default batching (up to 256 inputs / 8,000 tokens a request)
  one per row         the same provider with embedding_batch_size=1 (reference)

Target: batched throughput >= 5x one request per row. The exit code is always 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
import urllib.request

from . import _harness as h

DEFAULT_ROWS = 2000


def main(argv: list[str] | None = None) -> int:
    p = h.parser("embed_batch", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)

    import daft_flow as dflow

    n = args.rows
    h.print_header("embed_batch", f"rows={n:,} max_concurrency={args.concurrency}")
    inputs = [f"chunk {i}: the quick brown fox jumps over the lazy dog" for i in range(n)]
    proc = subprocess.Popen([sys.executable, "-m", "daft_flow.testing", "--latency", "0.005"],
                            stdout=subprocess.PIPE, text=True)
    rows: list[h.Row] = []
    secs: dict[str, float] = {}
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        for name, batch_size in (("one per row", 1), ("daft_flow batched", 256)):
            provider = dflow.OpenAIProvider(base_url=base_url, api_key="test-key", embedding_model="fault-embed",
                                            max_concurrency=args.concurrency, embedding_batch_size=batch_size)
            flow = dflow.Flow("text", str)
            flow["emb"] = flow["text"].embed_text(provider=provider)
            print(f"  running {name} ...", file=sys.stderr, flush=True)
            try:
                t0 = time.perf_counter()
                out = flow.collect_batch(inputs)
                elapsed = time.perf_counter() - t0
            except Exception as e:
                traceback.print_exc()
                rows.append(h.Row(name, None, error=f"{type(e).__name__}: {e}"[:120]))
                continue
            ok = sum(1 for r in out if len(r["emb"]) == 384)
            secs[name] = elapsed
            rows.append(h.Row(name, elapsed, rows=n,
                              note=f"{ok}/{n} vectors, {flow.last_usage()['emb'].requests} requests"))
        with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats") as r:
            stats = json.load(r)
    finally:
        proc.terminate()
        proc.wait()
    print()
    h.print_table(rows, baseline="one per row")
    print()
    print(f"server: received={stats.get('received')} embedding inputs={stats.get('embedding_inputs')}")
    if len(secs) == 2:
        h.check("batched throughput / one per row", secs["one per row"] / secs["daft_flow batched"], ">=", 5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
