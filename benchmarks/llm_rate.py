"""LLM rate limiting: 1,000 prompt rows against the fault server limited to 600 requests/min,
with 10% 429 and 5% 500 injected.

  daft_flow   prompt() with OpenAIProvider(requests_per_minute=600), default burst
  daft 0.7    daft.functions.prompt (chat completions, OpenAI client retries, on_error="ignore")

The provider's RateLimiter is a token bucket holding at most ``burst`` requests; the default burst
is half a second's share of the limit (600/min -> 5), and the token is taken in the HTTP client's
request hook, right before the request goes out. So any 1-second window may see at most the
per-second share plus the burst: 10 + 5 = 15 requests at the server.

Targets (daft_flow): every row succeeds; the achieved request rate at the server (every request it
received, retries included, from the first to the last) is >= 90% of the limit; no 1-second window
exceeds the per-second share + burst; usage counts equal the server's. Each case gets a fresh
server process (so it counts arrivals without sharing the client's GIL). The exit code is always 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
import urllib.request
from typing import Any, Callable

from . import _harness as h

DEFAULT_ROWS = 1000
DEFAULT_RPM = 600


def _with_server(args: Any, fn: Callable[[str], Any]) -> tuple[Any, float, dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "daft_flow.testing", "--rpm", str(args.rpm),
                             "--rate-limit-rate", str(args.rate_limit_rate), "--error-rate", str(args.error_rate),
                             "--retry-after", "0.5", "--seed", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        t0 = time.perf_counter()
        result = fn(base_url)
        elapsed = time.perf_counter() - t0
        with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats") as r:
            stats = json.load(r)
        stats["per_second"] = {int(k): v for k, v in stats["per_second"].items()}
        return result, elapsed, stats
    finally:
        proc.terminate()
        proc.wait()


def _window(stats: dict[str, Any], rpm: float) -> tuple[float, int, list[int]]:
    per_second = stats["per_second"]
    seconds = sorted(per_second)
    if not seconds:
        return 0.0, 0, []
    span = seconds[-1] - seconds[0] + 1
    series = [per_second.get(s, 0) for s in range(seconds[0], seconds[-1] + 1)]
    return stats["received"] / span * 60.0, max(series), series


def main(argv: list[str] | None = None) -> int:
    p = h.parser("llm_rate", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    p.add_argument("--rpm", type=float, default=DEFAULT_RPM)
    p.add_argument("--rate-limit-rate", type=float, default=0.10, help="injected 429s")
    p.add_argument("--error-rate", type=float, default=0.05, help="injected 500s")
    p.add_argument("--skip-daft", action="store_true", help="leave out the Daft case")
    args = p.parse_args(argv)

    import daft_flow as dflow

    n, rpm = args.rows, args.rpm
    share = rpm / 60.0
    h.print_header("llm_rate", f"rows={n:,} rpm={rpm:g} 429={args.rate_limit_rate:.0%} 500={args.error_rate:.0%}")
    inputs = [f"row {i}: the quick brown fox jumps over the lazy dog" for i in range(n)]
    ideal = n / share
    rows: list[h.Row] = [h.Row("ideal (no faults)", ideal, rows=n, note=f"rows / {share:g} per s")]
    burst = 0.0
    ours: dict[str, Any] = {}

    def run_ours(base_url: str) -> Any:
        nonlocal burst
        provider = dflow.OpenAIProvider(base_url=base_url, api_key="test-key", model="fault-chat",
                                        requests_per_minute=rpm, max_concurrency=64, max_retries=12)
        burst = provider.limiter.burst
        flow = dflow.Flow("text", str)
        flow["answer"] = flow["text"].prompt("summarize", provider=provider, max_tokens=8)
        out = flow.collect_batch(inputs, on_error="return")
        return out, flow.last_usage()["answer"]

    def run_daft(base_url: str) -> Any:
        import daft
        from daft import col
        from daft.functions import prompt

        daft.set_provider("openai", base_url=base_url, api_key="test-key")
        df = daft.from_pydict({"text": ["summarize\n\n" + x for x in inputs]})
        df = df.select(prompt(col("text"), model="fault-chat", use_chat_completions=True, on_error="ignore",
                              max_tokens=8).alias("answer"))
        return df.to_pydict()["answer"]

    print("  running daft_flow ...", file=sys.stderr, flush=True)
    try:
        (out, usage), elapsed, stats = _with_server(args, run_ours)
        ok = sum(1 for r in out if isinstance(r, dict) and r.get("answer"))
        achieved, peak, series = _window(stats, rpm)
        ours = dict(ok=ok, achieved=achieved, peak=peak, stats=stats, usage=usage)
        rows.append(h.Row("daft_flow", elapsed, rows=n,
                          note=f"{ok}/{n} ok, {stats['received']} requests, peak {peak}/s, "
                               f"{achieved:.0f} req/min"))
        print(f"  daft_flow requests per second at the server: {' '.join(map(str, series))}", file=sys.stderr)
    except Exception as e:
        traceback.print_exc()
        rows.append(h.Row("daft_flow", None, error=f"{type(e).__name__}: {e}"[:120]))

    if not args.skip_daft:
        print("  running daft 0.7 prompt ...", file=sys.stderr, flush=True)
        try:
            answers, elapsed, stats = _with_server(args, run_daft)
            ok = sum(1 for a in answers if a)
            achieved, peak, _ = _window(stats, rpm)
            rows.append(h.Row("daft 0.7 prompt", elapsed, rows=n,
                              note=f"{ok}/{n} ok, {stats['received']} requests, peak {peak}/s, "
                                   f"{stats.get('rate_limited', 0) - stats.get('injected_429', 0)} real 429s"))
        except Exception as e:
            traceback.print_exc()
            rows.append(h.Row("daft 0.7 prompt", None, error=f"{type(e).__name__}: {e}"[:120]))

    print()
    h.print_table(rows, baseline="ideal (no faults)")
    print()
    if not ours:
        return 0
    stats, usage = ours["stats"], ours["usage"]
    print(f"daft_flow server: received={stats['received']} rate_limited={stats.get('rate_limited', 0)} "
          f"(injected {stats.get('injected_429', 0)}) errors={stats.get('errors', 0)}; "
          f"usage: requests={usage.requests} retries={usage.retries}")
    h.check("daft_flow rows succeeded", ours["ok"] / n, ">=", 1.0)
    h.check("daft_flow achieved rate / limit", ours["achieved"] / rpm, ">=", 0.9)
    h.check(f"daft_flow peak 1-s window / (share {share:g} + burst {burst:g})", ours["peak"] / (share + burst), "<=",
            1.0)
    h.check("daft_flow usage requests == server received", float(usage.requests == stats["received"]), ">=", 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
