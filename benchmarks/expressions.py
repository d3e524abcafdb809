"""Native expressions: one pipeline over many lines of real text, side by side with the same steps
as run_python functions, Daft 0.7's native expressions and Polars, in one process run.

Input: the lines of the python3.11-doc reST sources, cycled to ``--rows`` rows (default 10M), as
one Arrow string column. Pipeline (the same in every implementation):

    length  = len(text)                       (code points)
    keep rows where length > 20               (filter)
    lower   = text.lower()
    python  = "python" in lower               (contains)
    call    = first ``name(`` in lower        (extract, regex group 1)
    score   = (length * 31 + 7) % 1000 / 10   (arithmetic)

Every case returns an Arrow table (Polars and Daft convert theirs) of lower, python, call, score;
row counts and sums are checked to agree. daft_flow's flow has one input field, so the numbers the
arithmetic uses are the lengths it computes (the peers do the same). Targets: >= 20x the run_python
pipeline, >= 1x Daft, within 1.5x of Polars; the run's in-flight bytes stay within its memory budget.
Run: python -m benchmarks expressions [--rows N] [--repeat N] [--python-rows N]
"""

from __future__ import annotations

import itertools
import re
import resource
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

from . import _harness as h
from ._text_corpus import load_corpus

PATTERN = r"([a-z_][a-z0-9_]*)\("
TARGETS = {"run_python": 20.0, "Daft 0.7": 1.0, "Polars": 1 / 1.5}


def load_lines(rows: int) -> pa.Table:
    docs, what = load_corpus(None)
    lines = [line for d in docs for line in d.splitlines()]
    print(f"text: {len(lines):,} lines of {what}, cycled to {rows:,} rows", flush=True)
    column = pa.array(list(itertools.islice(itertools.cycle(lines), rows)), type=pa.large_string())
    return pa.table({"text": column})


def daft_flow_native():
    import daft_flow as dflow

    doc = dflow.Flow("text", str)
    doc["length"] = doc["text"].str.len()
    kept = doc.filter(doc["length"] > 20)
    kept["lower"] = kept["text"].str.lower()
    kept["python"] = kept["lower"].str.contains("python")
    kept["call"] = kept["lower"].str.extract(PATTERN, 1)
    kept["score"] = (kept["length"] * 31 + 7) % 1000 / 10
    return kept.select("lower", "python", "call", "score")


def daft_flow_run_python():
    import daft_flow as dflow

    rx = re.compile(PATTERN)

    def call(s: str) -> str | None:
        m = rx.search(s)
        return m.group(1) if m else None

    doc = dflow.Flow("text", str)
    doc["length"] = doc["text"].run_python(len, return_type=int)
    doc["long"] = doc["length"].run_python(lambda n: n > 20, return_type=bool)
    kept = doc.filter(doc["long"])
    kept["lower"] = kept["text"].run_python(str.lower, return_type=str)
    kept["python"] = kept["lower"].run_python(lambda s: "python" in s, return_type=bool)
    kept["call"] = kept["lower"].run_python(call, return_type=str)
    kept["score"] = kept["length"].run_python(lambda n: (n * 31 + 7) % 1000 / 10, return_type=float)
    return kept.select("lower", "python", "call", "score")


def run_daft(table: pa.Table) -> pa.Table:
    import daft
    from daft import col
    from daft.functions import regexp_extract

    df = daft.from_arrow(table)
    df = df.with_column("length", col("text").length())
    df = df.where(col("length") > 20)
    df = df.with_column("lower", col("text").lower())
    df = df.with_columns({"python": col("lower").contains("python"),
                          "call": regexp_extract(col("lower"), PATTERN, 1),
                          "score": (col("length") * 31 + 7) % 1000 / 10})
    return df.select("lower", "python", "call", "score").to_arrow()


def run_polars(table: pa.Table) -> pa.Table:
    import polars as pl

    df = pl.from_arrow(table).lazy()
    df = df.with_columns(pl.col("text").str.len_chars().alias("length")).filter(pl.col("length") > 20)
    df = df.with_columns(pl.col("text").str.to_lowercase().alias("lower"))
    df = df.with_columns(pl.col("lower").str.contains("python", literal=True).alias("python"),
                         pl.col("lower").str.extract(PATTERN, 1).alias("call"),
                         ((pl.col("length") * 31 + 7) % 1000 / 10).alias("score"))
    return df.select("lower", "python", "call", "score").collect().to_arrow()


def summary(t: pa.Table) -> tuple[int, int, int, float]:
    return (t.num_rows, pc.sum(t.column("python").cast(pa.int64())).as_py() or 0,
            t.num_rows - t.column("call").null_count, round(pc.sum(t.column("score")).as_py() or 0.0, 3))


def main(argv: list[str] | None = None) -> int:
    p = h.parser("benchmarks.expressions", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of text (default 10M)")
    p.add_argument("--python-rows", type=int, default=1_000_000,
                   help="rows for the run_python case, scaled to --rows (it takes minutes at 10M; 0 = all rows)")
    h.add_repeat(p, default=2)
    args = p.parse_args(argv)
    h.print_header("expressions", f"rows={args.rows:,}")
    table = load_lines(args.rows)
    native = daft_flow_native()
    print(native.explain(), flush=True)
    counts = {}

    def ours():
        out = native.collect_arrow(table)
        counts["native"] = native.last_run()
        return out

    cpu: dict[str, list[float]] = {}

    def cpu_timed(name, fn):
        # CPU seconds of the whole process (every thread) per run: on a loaded machine wall time
        # also counts the time other processes held the cores; CPU time does not.
        def run():
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            out = fn()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu.setdefault(name, []).append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            return out
        return run

    cases = {name: cpu_timed(name, fn) for name, fn in
             {"daft_flow expressions": ours, "Daft 0.7": lambda: run_daft(table), "Polars": lambda: run_polars(table)}.items()}
    results: dict[str, pa.Table] = {}
    timings = h.best_of_interleaved(cases, repeat=args.repeat, warmup=1,
                                    on_result=lambda name, r: results.__setitem__(name, r), log=sys.stderr)
    rows = []
    for name, t in timings.items():
        if isinstance(t, BaseException):
            rows.append(h.Row(name, None, error=f"{type(t).__name__}: {t}"))
        else:
            rows.append(h.Row(name, t.best, rows=args.rows,
                              note=f"cpu {min(cpu[name]):.2f}s; {summary(results[name])}"))
    # run_python: at Python speed; on a slice of the rows (scaled linearly: per-row work, no setup).
    py_rows = args.python_rows or args.rows
    py_table = table.slice(0, min(py_rows, args.rows))
    py_flow = daft_flow_run_python()
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    py_out = py_flow.collect_arrow(py_table)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    scale = args.rows / py_table.num_rows
    py_secs = (time.perf_counter() - t0) * scale
    cpu["run_python"] = [(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * scale]
    check_py = summary(native.collect_arrow(py_table)) == summary(py_out)
    rows.append(h.Row("daft_flow run_python (same steps)", py_secs, rows=args.rows,
                      note=f"cpu {cpu['run_python'][0]:.2f}s; measured on {py_table.num_rows:,} rows, scaled; "
                           f"same result: {check_py}"))
    h.print_table(rows, baseline="daft_flow expressions", title="\nfilter(len > 20) -> lower -> contains -> extract -> "
                  "arithmetic (ratio: seconds / daft_flow's)")
    base = next(r.seconds for r in rows if r.case == "daft_flow expressions")
    agree = len({summary(results[n]) for n in results}) == 1
    print(f"\nall results agree (rows, contains count, extracted, sum of score): {agree}")
    ok = agree and check_py
    by_name = {r.case: r.seconds for r in rows}
    ok &= h.check("run_python time / daft_flow time", (by_name["daft_flow run_python (same steps)"] or 0) / base, ">=",
                  TARGETS["run_python"])
    for peer in ("Daft 0.7", "Polars"):
        if by_name.get(peer):
            ok &= h.check(f"{peer} time / daft_flow time", by_name[peer] / base, ">=", TARGETS[peer])
    ours_cpu = min(cpu["daft_flow expressions"])
    print("CPU seconds / daft_flow's (robust when the machine is shared): " + ", ".join(
        f"{name} {min(v) / ours_cpu:.2f}x" for name, v in cpu.items() if name != "daft_flow expressions"))
    report = counts.get("native")
    if report is not None:
        from daft_flow.execution.options import get_options

        budget = get_options().memory_budget
        rows = report.flows["text"]
        peak = report.memory["peak_budget_bytes"]
        print(f"daft_flow run: {report.inputs:,} inputs, {rows.succeeded:,} rows, {rows.filtered:,} filtered, "
              f"{rows.failed} failed; peak in flight {h.mb(peak):.0f} MB of a {h.mb(budget):.0f} MB budget")
        ok &= h.check("peak in-flight MB / budget MB", peak / budget, "<=", 1.0)
    print("all targets met" if ok else "some targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
