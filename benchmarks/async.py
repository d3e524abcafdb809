"""Async UDF concurrency: 1,000 calls of a 50 ms coroutine with 100 in flight.

  asyncio semaphore     plain asyncio.gather bounded by a Semaphore   (reference)
  daft_flow             run_python(async fn, max_in_flight=100) + collect_arrow
  daft_flow stream      same flow, consuming stream()                 (informational)
  daft func async       @daft.func(max_concurrency=100) on the async def (informational)

Ideal time = calls / in_flight * sleep = 1000 / 100 * 0.05 = 0.5 s.
Target: daft_flow / ideal <= 1.5x.  The exit code is always 0.

Run it as ``python -m benchmarks async`` (``async`` is a keyword, so the module
is imported by name).
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Callable

from . import _harness as h

DEFAULT_CALLS = 1000
DEFAULT_IN_FLIGHT = 100
DEFAULT_SLEEP = 0.05


def make_fn(sleep: float):
    async def f(s: str) -> str:
        await asyncio.sleep(sleep)
        return s

    return f


def main(argv: list[str] | None = None) -> int:
    p = h.parser("async", __doc__.splitlines()[0])
    p.add_argument("--calls", "--rows", dest="calls", type=int, default=DEFAULT_CALLS)
    p.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT)
    p.add_argument("--sleep", type=float, default=DEFAULT_SLEEP, help="seconds each call sleeps")
    h.add_repeat(p)
    p.add_argument("--skip-daft", action="store_true", help="leave out the Daft case")
    args = p.parse_args(argv)

    n, k, sleep = args.calls, args.in_flight, args.sleep
    ideal = -(-n // k) * sleep
    h.print_header("async", f"calls={n:,} in_flight={k} sleep={sleep}s ideal={ideal:.3f}s repeat={args.repeat}")
    xs = [f"row-{i}" for i in range(n)]
    fn = make_fn(sleep)

    def run_asyncio():
        async def go():
            sem = asyncio.Semaphore(k)

            async def one(x):
                async with sem:
                    return await fn(x)

            return await asyncio.gather(*(one(x) for x in xs))

        return asyncio.run(go())

    cases: dict[str, Callable[[], object]] = {"asyncio semaphore": run_asyncio}
    setup_errors: dict[str, str] = {}

    try:
        import daft_flow as dflow

        flow = dflow.Flow("x", str)
        flow["y"] = flow["x"].run_python(fn, max_in_flight=k)
        cases["daft_flow"] = lambda: flow.collect_arrow(xs)
        cases["daft_flow stream"] = lambda: [row for row in flow.stream(xs)]
    except Exception as e:
        traceback.print_exc()
        setup_errors["daft_flow"] = f"{type(e).__name__}: {e}"

    if not args.skip_daft:
        try:
            import daft
            from daft import DataType, col

            daft_fn = daft.func(fn, return_dtype=DataType.string(), max_concurrency=k)

            def run_daft():
                return daft.from_pydict({"x": xs}).select(col("x"), daft_fn(col("x")).alias("y")).collect()

            cases["daft func async"] = run_daft
        except Exception as e:
            traceback.print_exc()
            setup_errors["daft func async"] = f"{type(e).__name__}: {e}"

    rows: list[h.Row] = [h.Row("ideal", ideal, rows=n, note="calls/in_flight*sleep")]
    secs: dict[str, float] = {}
    for name, run in cases.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        try:
            t = h.best_of(run, repeat=args.repeat, warmup=1, keep_result=True)
        except Exception as e:
            traceback.print_exc()
            rows.append(h.Row(name, None, error=f"{type(e).__name__}: {e}"[:120]))
            continue
        try:
            got = len(t.result)
        except TypeError:
            got = None
        note = "" if got in (None, n) else f"got {got} rows!"
        if name in ("daft_flow stream", "daft func async"):
            note = (note + " informational").strip()
        if name == "daft func async" and t.best < 0.9 * ideal:
            note += f"; faster than the {k}-in-flight bound allows"
        elif name == "asyncio semaphore":
            note = "reference"
        secs[name] = t.best
        rows.append(h.Row(name, t.best, rows=n, note=note))
    for name, err in setup_errors.items():
        rows.append(h.Row(name, None, error=err))

    print()
    h.print_table(rows, baseline="ideal")
    print()
    h.check("daft_flow / ideal", secs["daft_flow"] / ideal if "daft_flow" in secs else None, "<=", 1.5)
    for name in ("daft_flow stream", "daft func async", "asyncio semaphore"):
        if name in secs:
            print(f"info  {name} / ideal: {secs[name] / ideal:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
