"""A model of one client feeding 10 to 1,000 dflow-workers: where the dispatcher stops scaling.

A discrete-event simulation of what ``dflow.Cluster`` does (``daft_flow/cluster/dispatch.py``):
one client hands out morsels in input order to workers with ``slots`` each, keeps at most
``window`` morsels ahead of the oldest unreturned one, re-sends the morsels of a lost worker, and
pays CPU per morsel and per MB of traffic on one core (measured by ``python -m benchmarks
cluster``: pass ``--client-ms-per-morsel`` and ``--client-ms-per-mb``). Each worker computes one
morsel at a time and holds up to ``slots`` (the next one's transfer overlaps). Morsel times are
log-normal around ``--morsel-s`` (an LLM or GPU morsel: seconds). Workers die at random
(``--mtbf-h`` hours each) and are not replaced during the run.

It prints per worker count: the run's time against the ideal (work / workers), the client core's
busy share, the largest reorder buffer (morsels and MB held by the client), and morsels re-sent.
"""

from __future__ import annotations

import heapq
import random
import sys

from . import _harness as h


def simulate(workers: int, *, morsels: int, morsel_s: float, spread: float, slots: int, window: int | None,
             client_ms: float, client_ms_per_mb: float, mb_per_morsel: float, mtbf_h: float,
             seed: int = 0) -> dict[str, float]:
    """One run. Each worker computes one morsel at a time; ``slots`` is how many it may hold (the
    next one's transfer overlaps the current one's compute). The client's per-morsel work is
    serialised on one core."""
    rng = random.Random(seed)
    window = window or max(4, 2 * workers * slots)
    per_morsel_client = client_ms / 1e3 + client_ms_per_mb / 1e3 * mb_per_morsel
    death = [rng.expovariate(1 / (mtbf_h * 3600)) if mtbf_h else float("inf") for _ in range(workers)]
    busy_until = [0.0] * workers
    assigned = [0] * workers
    alive = set(range(workers))
    client_free = client_busy = work = now = 0.0
    done_at: dict[int, float] = {}
    retry: list[int] = []
    events: list[tuple[float, int, int, bool]] = []  # (time, morsel, worker, lost)
    next_new = handed = resent = peak_buffer = 0
    while handed < morsels:
        while retry or (next_new < morsels and next_new - handed < window):
            candidates = [w for w in alive if assigned[w] < slots]
            if not candidates:
                break
            w = min(candidates, key=lambda k: (assigned[k], busy_until[k]))
            m = retry.pop() if retry else next_new
            next_new += m == next_new
            client_free = max(now, client_free) + per_morsel_client
            client_busy += per_morsel_client
            duration = morsel_s * rng.lognormvariate(0, spread)
            finish = max(client_free, busy_until[w]) + duration
            assigned[w] += 1
            if finish > death[w]:  # the worker dies with this morsel
                heapq.heappush(events, (max(death[w], now), m, w, True))
                alive.discard(w)
            else:
                busy_until[w] = finish
                work += duration
                heapq.heappush(events, (finish, m, w, False))
        if not events:
            return {"failed": 1.0}
        now, m, w, lost = heapq.heappop(events)
        assigned[w] -= 1
        if lost:
            retry.append(m)
            resent += 1
            continue
        done_at[m] = now
        while handed in done_at:
            handed += 1
        peak_buffer = max(peak_buffer, len(done_at) - handed)  # every morsel below handed is done
    end = max(done_at.values())
    ideal = work / workers
    return {"time_s": end, "ideal_s": ideal, "efficiency": ideal / end, "client_busy": client_busy / end,
            "peak_buffer": peak_buffer, "peak_buffer_mb": peak_buffer * mb_per_morsel, "resent": resent,
            "lost_workers": workers - len(alive)}


def main(argv: list[str] | None = None) -> int:
    p = h.parser("cluster_plan", __doc__.splitlines()[0])
    p.add_argument("--workers", default="10,100,300,1000", help="worker counts to model")
    p.add_argument("--morsels-per-worker", type=int, default=50)
    p.add_argument("--morsel-s", type=float, default=2.0, help="median seconds a worker spends on a morsel")
    p.add_argument("--spread", type=float, default=0.5, help="sigma of the log-normal morsel time")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--window", type=int, default=None, help="morsels ahead of the oldest unreturned (default 2 x slots)")
    p.add_argument("--client-ms-per-morsel", type=float, default=1.7, help="measured: benchmarks cluster")
    p.add_argument("--client-ms-per-mb", type=float, default=1.0, help="measured: benchmarks cluster")
    p.add_argument("--mb-per-morsel", type=float, default=4.0, help="inputs + results of a morsel")
    p.add_argument("--mtbf-h", type=float, default=24.0 * 30, help="mean hours between failures of one worker")
    args = p.parse_args(argv)
    print(f"model: morsel {args.morsel_s} s (sigma {args.spread}), {args.slots} slots/worker, client "
          f"{args.client_ms_per_morsel} ms/morsel + {args.client_ms_per_mb} ms/MB, {args.mb_per_morsel} MB/morsel, "
          f"worker MTBF {args.mtbf_h:g} h")
    print(f"{'workers':>8} {'run s':>9} {'ideal s':>9} {'efficiency':>10} {'client busy':>11} "
          f"{'buffer':>7} {'buffer MB':>10} {'resent':>7}")
    for n in (int(x) for x in args.workers.split(",")):
        r = simulate(n, morsels=n * args.morsels_per_worker, morsel_s=args.morsel_s, spread=args.spread,
                     slots=args.slots, window=args.window, client_ms=args.client_ms_per_morsel,
                     client_ms_per_mb=args.client_ms_per_mb, mb_per_morsel=args.mb_per_morsel, mtbf_h=args.mtbf_h)
        if "failed" in r:
            print(f"{n:>8} every worker lost")
            continue
        print(f"{n:>8} {r['time_s']:>9.1f} {r['ideal_s']:>9.1f} {r['efficiency']:>10.2f} {r['client_busy']:>11.2f} "
              f"{r['peak_buffer']:>7} {r['peak_buffer_mb']:>10.0f} {r['resent']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
