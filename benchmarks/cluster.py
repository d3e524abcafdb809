"""Scale-out: a CPU-bound flow on 1 vs 2 dflow-workers, and Arrow through one loopback worker.

  local               the CPU-bound flow in this process                  (informational)
  1 worker            the same flow, dflow.Cluster of one dflow-worker    (baseline)
  2 workers           the same flow on two dflow-workers
  pass-through        Arrow strings through one worker running a flow with no ops (collect_arrow)

Each worker is its own process (`python -m daft_flow.cluster.worker`), on loopback. The CPU-bound
function is pure Python, so one worker uses about one core: on a 2-core machine two workers can
be at most 2x one. Targets: 2 workers / 1 worker speedup >= 1.5x; pass-through >= 300 MB/s.
The load average is printed with the numbers: other work on the machine takes cores from the
workers. The exit code is always 0.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

from . import _harness as h


def busy(x: int) -> int:
    total = 0
    for i in range(3000):
        total += (i * x) % 7
    return total


def main(argv: list[str] | None = None) -> int:
    p = h.parser("cluster", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8000, help="inputs of the CPU-bound flow (default 8,000)")
    p.add_argument("--mb", type=int, default=256, help="MB of strings through the pass-through flow (default 256)")
    p.add_argument("--value-bytes", type=int, default=4096, help="bytes per string of the pass-through (default 4096)")
    p.add_argument("--threads", type=int, default=1, help="morsels each worker runs at once (default 1: the "
                   "function holds the GIL, so a second one only waits)")
    p.add_argument("--morsel-rows", type=int, default=128, help="rows per morsel of the CPU-bound flow (default 128)")
    h.add_repeat(p)
    args = p.parse_args(argv)

    import psutil
    import pyarrow as pa

    import daft_flow as dflow
    from daft_flow.testing.workers import WorkerProcess

    h.print_header("cluster", f"rows={args.rows:,} pass-through={args.mb} MB repeat={args.repeat}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(busy)
    xs = list(range(args.rows))
    n = args.mb * 2**20 // args.value_bytes
    table = pa.table({"s": pa.array([("%08d" % i) * (args.value_bytes // 8) for i in range(n)], type=pa.large_string())})
    nbytes = table.nbytes
    passthrough = dflow.Flow("s", str)

    workers = [WorkerProcess("--threads", str(args.threads)) for _ in range(2)]
    try:
        one = dflow.Cluster([workers[0].address], morsel_rows=args.morsel_rows)
        two = dflow.Cluster([w.address for w in workers], morsel_rows=args.morsel_rows)
        big = dflow.Cluster([workers[0].address], morsel_rows=65536, morsel_bytes="16MB")
        procs = [psutil.Process(w.pid) for w in workers]
        worker_cpu: dict[str, list[float]] = {}

        def measured(name: str, fn: Any) -> Any:
            """Also adds up the CPU seconds the worker processes spent on each call."""
            def run() -> Any:
                before = sum(sum(p.cpu_times()[:2]) for p in procs)
                result = fn()
                worker_cpu.setdefault(name, []).append(sum(sum(p.cpu_times()[:2]) for p in procs) - before)
                return result
            return run

        cases = {
            "local": lambda: flow.collect_batch(xs),
            "1 worker": measured("1 worker", lambda: flow.collect_batch(xs, cluster=one)),
            "2 workers": measured("2 workers", lambda: flow.collect_batch(xs, cluster=two)),
            "pass-through (1 worker)": lambda: passthrough.collect_arrow(table, cluster=big),
        }
        expected = flow.collect_batch(xs[:50])

        def check(name: str, result: object) -> None:
            if name == "pass-through (1 worker)":
                assert result.num_rows == n, name  # type: ignore[attr-defined]
            else:
                assert result[:50] == expected, name  # type: ignore[index]

        timings = h.best_of_interleaved(cases, repeat=args.repeat, warmup=1, on_result=check, log=sys.stderr)
        # The client's own CPU per morsel and per MB: what limits how many workers one client can feed.
        cpu = {}
        for name in ("2 workers", "pass-through (1 worker)"):
            t0 = time.process_time()
            cases[name]()
            cpu[name] = time.process_time() - t0
    finally:
        for w in workers:
            w.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rows, secs = [], {}
    for name, t in timings.items():
        if isinstance(t, BaseException):
            traceback.print_exception(type(t), t, t.__traceback__)
            rows.append(h.Row(name, None, error=f"{type(t).__name__}: {t}"[:120]))
            continue
        secs[name] = t.best
        if name.startswith("pass-through"):
            rows.append(h.Row(name, t.best, nbytes=nbytes, note=f"{n:,} strings of {args.value_bytes} B"))
        else:
            rows.append(h.Row(name, t.best, rows=args.rows, note="baseline" if name == "1 worker" else ""))
    print()
    h.print_table(rows, baseline="1 worker")
    print()
    speedup = secs["1 worker"] / secs["2 workers"] if "1 worker" in secs and "2 workers" in secs else None
    h.check("2 workers / 1 worker speedup", speedup, ">=", 1.5)
    mbps = nbytes / secs["pass-through (1 worker)"] / 1e6 if "pass-through (1 worker)" in secs else None
    h.check("pass-through through one worker, MB/s", mbps, ">=", 300)
    morsels = -(-args.rows // args.morsel_rows)
    per_mb = cpu["pass-through (1 worker)"] / (nbytes / 1e6)
    print(f"info  client CPU per morsel (CPU-bound flow, 2 workers): {cpu['2 workers'] / morsels * 1e3:.2f} ms "
          f"({morsels} morsels of {args.morsel_rows} ints)")
    print(f"info  client CPU per MB through a worker (pass-through): {per_mb * 1e3:.2f} ms")
    cpu_1, cpu_2 = min(worker_cpu.get("1 worker", [0])), min(worker_cpu.get("2 workers", [0]))
    if cpu_1 and cpu_2:
        print(f"info  worker CPU seconds for the CPU-bound flow: 1 worker {cpu_1:.2f}, 2 workers {cpu_2:.2f} (together): "
              "the work does not grow when it is spread; the wall-clock speedup depends on free cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
