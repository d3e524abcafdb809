"""LLM rate limiting: 1,000 prompt rows against the fault server limited to 600 requests/min,
with 10% 429 and 5% 500 injected.

  daft_flow   prompt() with OpenAIProvider(requests_per_minute=600), default burst

The provider's RateLimiter is a token bucket holding at most ``burst`` requests; the default burst
is half a second's share of the limit (600/min -> 5). So any 1-second window may see at most the
per-second share plus the burst: 10 + 5 = 15 requests at the server.

Targets: every row succeeds; the achieved request rate at the server (every request it received,
retries included, from the first to the last) is >= 90% of the limit; no 1-second window exceeds
the per-second share + burst. The exit code is always 0.
"""

from __future__ import annotations

import sys
import time
import traceback

from . import _harness as h

DEFAULT_ROWS = 1000
DEFAULT_RPM = 600


def main(argv: list[str] | None = None) -> int:
    p = h.parser("llm_rate", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    p.add_argument("--rpm", type=float, default=DEFAULT_RPM)
    p.add_argument("--rate-limit-rate", type=float, default=0.10, help="injected 429s")
    p.add_argument("--error-rate", type=float, default=0.05, help="injected 500s")
    args = p.parse_args(argv)

    import json
    import subprocess
    import urllib.request

    import daft_flow as dflow

    n, rpm = args.rows, args.rpm
    share = rpm / 60.0
    h.print_header("llm_rate", f"rows={n:,} rpm={rpm:g} 429={args.rate_limit_rate:.0%} 500={args.error_rate:.0%}")
    rows: list[h.Row] = []
    # The server runs in its own process so that it counts arrivals without sharing the client's GIL.
    proc = subprocess.Popen([sys.executable, "-m", "daft_flow.testing.fault_server", "--rpm", str(rpm),
                             "--rate-limit-rate", str(args.rate_limit_rate), "--error-rate", str(args.error_rate),
                             "--retry-after", "0.5", "--seed", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        provider = dflow.OpenAIProvider(base_url=base_url, api_key="test-key", model="fault-chat",
                                        requests_per_minute=rpm, max_concurrency=64, max_retries=12)
        burst = provider.limiter.burst
        flow = dflow.Flow("text", str)
        flow["answer"] = flow["text"].prompt("summarize", provider=provider, max_tokens=8)
        inputs = [f"row {i}: the quick brown fox jumps over the lazy dog" for i in range(n)]
        ideal = n / share
        rows.append(h.Row("ideal (no faults)", ideal, rows=n, note=f"rows / {share:g} per s"))
        print("  running daft_flow ...", file=sys.stderr, flush=True)
        try:
            t0 = time.perf_counter()
            out = flow.collect_batch(inputs, on_error="return")
            elapsed = time.perf_counter() - t0
        except Exception as e:
            traceback.print_exc()
            rows.append(h.Row("daft_flow", None, error=f"{type(e).__name__}: {e}"[:120]))
            h.print_table(rows, baseline="ideal (no faults)")
            return 0
        with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats") as r:
            stats = json.load(r)
        stats["per_second"] = {int(k): v for k, v in stats["per_second"].items()}
        ok = sum(1 for r in out if isinstance(r, dict) and r.get("answer"))
        per_second = stats["per_second"]
        seconds = sorted(per_second)
        span = max(1.0, (seconds[-1] - seconds[0] + 1)) if seconds else 1.0
        achieved = stats["received"] / span * 60.0
        peak = max(per_second.values()) if per_second else 0
        usage = flow.last_usage()["answer"]
        rows.append(h.Row("daft_flow", elapsed, rows=n,
                          note=f"{ok}/{n} ok, {stats['received']} requests, {usage.retries} retries"))
    finally:
        proc.terminate()
        proc.wait()
    print()
    h.print_table(rows, baseline="ideal (no faults)")
    print()
    print(f"server: received={stats['received']} rate_limited={stats.get('rate_limited', 0)} "
          f"(injected {stats.get('injected_429', 0)}) errors={stats.get('errors', 0)}; "
          f"usage: requests={usage.requests} retries={usage.retries}")
    h.check("rows succeeded", ok / n, ">=", 1.0)
    h.check("achieved rate / limit", achieved / rpm, ">=", 0.9)
    h.check(f"peak 1-s window / (share {share:g} + burst {burst:g})", peak / (share + burst), "<=", 1.0)
    h.check("usage requests == server received", float(usage.requests == stats["received"]), ">=", 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
