"""Peak memory while streaming rows through two Python ops.

A generator yields ``--rows`` strings of 1 KB each; every row goes through two
Python ops (``s.upper()`` then ``len(...)``) and the consumer discards it.

  python generator   chained generator expressions doing the same ops (reference)
  daft_flow stream   Flow("x", str) -> run_python(upper) -> run_python(length), stream()

Peak RSS growth is sampled every 10 ms over a baseline taken after importing
everything and warming up.  By default each (size, case) runs in a fresh child
process so a case does not inherit the heap of the one before it.
Target: daft_flow peak growth <= 200 MB at every size, and not growing with size.
The exit code is always 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Iterator

from . import _harness as h

DEFAULT_SIZES = "1000000,10000000"
STRING_BYTES = 1024
TARGET_MB = 200.0
CASES = ("python generator", "daft_flow stream")


def gen_strings(n: int) -> Iterator[str]:
    pad = "a" * (STRING_BYTES - 12)
    for i in range(n):
        yield f"{i:012d}{pad}"


def upper(s: str) -> str:
    return s.upper()


def length(s: str) -> int:
    return len(s)


def _progress(case: str, done: int, total: int, t0: float) -> None:
    rss = h.mb(h.current_rss())
    print(
        f"  [{case}] {done:,}/{total:,} rows  {time.perf_counter() - t0:.1f}s  rss={rss:.0f}MB",
        file=sys.stderr,
        flush=True,
    )


def _python_rows(n: int) -> Iterator[Any]:
    us = ((s, upper(s)) for s in gen_strings(n))
    return ({"x": s, "u": u, "n": length(u)} for s, u in us)


def _build_flow():
    import daft_flow as dflow

    flow = dflow.Flow("x", str)
    flow["u"] = flow["x"].run_python(upper)
    flow["n"] = flow["u"].run_python(length)
    return flow


def _flow_rows(flow, n: int, options: dict[str, Any]) -> Iterator[Any]:
    return iter(flow.stream(gen_strings(n), **options))


def run_one(case: str, n: int, options: dict[str, Any], progress_every: int = 1_000_000) -> dict[str, Any]:
    """Run one case in this process; return peak growth (bytes), seconds, rows seen."""
    import gc

    import pyarrow  # noqa: F401  - count imports in the baseline, not the measurement

    flow = _build_flow() if case == "daft_flow stream" else None

    def rows(k: int) -> Iterator[Any]:
        if case == "python generator":
            return _python_rows(k)
        return _flow_rows(flow, k, options)

    # warm-up: one small pass so lazy initialisation is part of the baseline
    for _ in rows(min(n, 20_000)):
        pass
    gc.collect()

    sampler = h.RssSampler(interval=0.010)
    seen = 0
    bad = 0
    t0 = time.perf_counter()
    with sampler:
        for row in rows(n):
            if row["n"] != STRING_BYTES:
                bad += 1
            seen += 1
            if progress_every and seen % progress_every == 0:
                _progress(case, seen, n, t0)
            row = None
    seconds = time.perf_counter() - t0
    return {
        "case": case,
        "rows": n,
        "seen": seen,
        "bad": bad,
        "seconds": seconds,
        "baseline": sampler.baseline,
        "peak_growth": sampler.peak_growth,
        "samples": sampler.samples,
    }


def _run_child(case: str, n: int, argv_opts: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks", "memory", "--child", case, "--rows", str(n), *argv_opts]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, cwd=root, env=env)
    if proc.returncode != 0:
        return {"case": case, "rows": n, "error": f"child exited {proc.returncode}"}
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last)


def main(argv: list[str] | None = None) -> int:
    p = h.parser("memory", __doc__.splitlines()[0])
    p.add_argument("--rows", default=DEFAULT_SIZES, help=f"comma-separated row counts (default {DEFAULT_SIZES})")
    p.add_argument("--memory-budget", default=None, help="passed to stream(memory_budget=...)")
    p.add_argument("--batch-rows", type=int, default=None, help="passed to stream(batch_rows=...)")
    p.add_argument("--skip-reference", action="store_true", help="leave out the plain Python generator case")
    p.add_argument("--in-process", action="store_true", help="run every case in this process (no children)")
    p.add_argument("--child", choices=CASES, help=None)
    args = p.parse_args(argv)

    options: dict[str, Any] = {}
    opt_argv: list[str] = []
    if args.memory_budget is not None:
        options["memory_budget"] = args.memory_budget
        opt_argv += ["--memory-budget", args.memory_budget]
    if args.batch_rows is not None:
        options["batch_rows"] = args.batch_rows
        opt_argv += ["--batch-rows", str(args.batch_rows)]

    sizes = [int(s.replace("_", "")) for s in str(args.rows).split(",") if s.strip()]

    if args.child:
        res = run_one(args.child, sizes[0], options)
        print(json.dumps(res))
        return 0

    opt_text = " ".join(f"{k}={v}" for k, v in options.items()) or "default options"
    h.print_header(
        "memory",
        f"rows={','.join(f'{s:,}' for s in sizes)} string={STRING_BYTES}B {opt_text} "
        f"({'in-process' if args.in_process else 'one child process per case'})",
    )
    cases = [c for c in CASES if not (args.skip_reference and c == "python generator")]

    results: list[dict[str, Any]] = []
    for n in sizes:
        for case in cases:
            print(f"  running {case} rows={n:,} ...", file=sys.stderr, flush=True)
            try:
                res = run_one(case, n, options) if args.in_process else _run_child(case, n, opt_argv)
            except Exception as e:  # pragma: no cover
                import traceback

                traceback.print_exc()
                res = {"case": case, "rows": n, "error": f"{type(e).__name__}: {e}"}
            results.append(res)

    print()
    header = ["case", "rows", "seconds", "throughput", "peak RSS growth", "x reference", "note"]
    body = []
    ref = {r["rows"]: r for r in results if r["case"] == "python generator" and "error" not in r}
    for r in results:
        name = r["case"]
        if "error" in r:
            body.append([name, f"{r['rows']:,}", "-", "-", "-", "-", "ERROR: " + r["error"]])
            continue
        row = h.Row(name, r["seconds"], rows=r["rows"])
        growth = h.mb(r["peak_growth"])
        rr = ref.get(r["rows"])
        ratio = f"{r['seconds'] / rr['seconds']:.2f}x" if rr and rr["seconds"] else "-"
        notes = []
        if r["seen"] != r["rows"]:
            notes.append(f"saw {r['seen']:,} rows!")
        if r["bad"]:
            notes.append(f"{r['bad']:,} wrong values!")
        notes.append(f"baseline {h.mb(r['baseline']):.0f} MB")
        body.append(
            [name, f"{r['rows']:,}", f"{r['seconds']:.2f}", h.throughput(row), f"{growth:.1f} MB", ratio, ", ".join(notes)]
        )
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    fmt = lambda line: " | ".join(  # noqa: E731
        c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
    )
    print(fmt(header).rstrip())
    print("-+-".join("-" * w for w in widths))
    for line in body:
        print(fmt(line).rstrip())
    print()

    flow_res = [r for r in results if r["case"] == "daft_flow stream" and "error" not in r]
    for r in flow_res:
        h.check(f"daft_flow stream peak RSS growth MB, rows={r['rows']:,}", h.mb(r["peak_growth"]), "<=", TARGET_MB)
    if len(flow_res) >= 2:
        small, big = min(flow_res, key=lambda r: r["rows"]), max(flow_res, key=lambda r: r["rows"])
        # "not growing with size": the largest run may use at most 1.5x (+16 MB slack) of the smallest one.
        g_small, g_big = h.mb(small["peak_growth"]), h.mb(big["peak_growth"])
        ok = g_big <= 1.5 * g_small + 16
        print(
            f"{'PASS' if ok else 'FAIL'}  daft_flow peak growth not growing with size: "
            f"{g_small:.1f} MB at {small['rows']:,} rows -> {g_big:.1f} MB at {big['rows']:,} rows "
            f"(target <= 1.5x + 16 MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
