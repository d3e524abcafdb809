import time, sys, resource
from benchmarks.expressions import load_lines, daft_flow_native
t = load_lines(10_000_000)
f = daft_flow_native()
f.collect_arrow(t.slice(0,1000))
for opts in [{}, {"batch_rows": 262144, "batch_bytes": 16_000_000}, {}, {"batch_rows": 262144, "batch_bytes": 16_000_000}]:
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    out = f.collect_arrow(t, **opts)
    t1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(opts, f"wall {t1-t0:.3f} user {r1.ru_utime-r0.ru_utime:.3f} sys {r1.ru_stime-r0.ru_stime:.3f}")
    del out
