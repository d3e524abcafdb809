"""The client the cluster checkpoint test kills: numbers -> a slow function on dflow-workers ->
Multisink([JSONFileSink, ParquetSink]) with a checkpoint. ``python cluster_crash_worker.py
CHECKPOINT OUT_DIR ADDRESS...``."""
import sys
import time

import daft_flow as dflow

N = 2000


def slow(x: int) -> int:
    time.sleep(0.005)
    return x * 7


def sinks(out: str) -> dflow.Multisink:
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(slow)
    row = {"x": flow["x"], "y": flow["y"]}
    return dflow.Multisink([flow.write_sink(dflow.JSONFileSink(f"{out}/json"), row),
                            flow.write_sink(dflow.ParquetSink(f"{out}/parquet"), row)])


if __name__ == "__main__":
    checkpoint, out, *addresses = sys.argv[1:]
    cluster = dflow.Cluster(addresses, morsel_rows=20)
    results = sinks(out).collect_batch(range(N), checkpoint=checkpoint, cluster=cluster)
    print("done", [r.rows_written for r in results], flush=True)
