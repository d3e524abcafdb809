"""Shared helpers for the benchmarks: timing, tables, machine info, RSS sampling."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterable, Sequence

DEFAULT_REPEAT = 3

# ---------------------------------------------------------------------------
# timing


@dataclass
class Timing:
    best: float
    times: list[float]
    result: Any = None


def best_of(
    fn: Callable[[], Any],
    repeat: int = DEFAULT_REPEAT,
    warmup: int = 1,
    keep_result: bool = False,
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; return the best time.

    The garbage collector is run before each timed call so a collection triggered by
    an earlier case is not billed to this one.
    """
    result = None
    for _ in range(max(0, warmup)):
        result = fn()
        result = None
    times: list[float] = []
    for _ in range(max(1, repeat)):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if not keep_result:
            result = None
    return Timing(best=min(times), times=times, result=result)


def best_of_interleaved(
    cases: dict[str, Callable[[], Any]],
    repeat: int = DEFAULT_REPEAT,
    warmup: int = 1,
    on_result: Callable[[str, Any], None] | None = None,
    log=None,
) -> dict[str, "Timing | BaseException"]:
    """Like :func:`best_of` for several cases, timed round-robin.

    Every case is warmed up first; then each round times every case once, so slow
    drifts of a shared machine hit all cases alike.  A case that raises is dropped
    and its exception is returned in its place.  ``on_result(name, result)`` sees
    the result of each case's first timed run (for sanity checks).
    """
    out: dict[str, Any] = {}
    live = dict(cases)
    for name, fn in list(live.items()):
        if log:
            print(f"  warming up {name} ...", file=log, flush=True)
        try:
            for _ in range(max(0, warmup)):
                fn()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            if isinstance(e, KeyboardInterrupt):
                raise
            out[name] = e
            del live[name]
    times: dict[str, list[float]] = {name: [] for name in live}
    for r in range(max(1, repeat)):
        for name, fn in list(live.items()):
            if log:
                print(f"  round {r + 1}/{repeat}: {name}", file=log, flush=True)
            gc.collect()
            try:
                t0 = time.perf_counter()
                result = fn()
                times[name].append(time.perf_counter() - t0)
            except BaseException as e:  # noqa: BLE001
                if isinstance(e, KeyboardInterrupt):
                    raise
                out[name] = e
                del live[name]
                continue
            if r == 0 and on_result is not None:
                on_result(name, result)
            result = None
    for name in live:
        out[name] = Timing(best=min(times[name]), times=times[name])
    return {name: out[name] for name in cases}


# ---------------------------------------------------------------------------
# tables


@dataclass
class Row:
    case: str
    seconds: float | None
    rows: int | None = None
    nbytes: int | None = None
    note: str = ""
    error: str | None = None


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 100:
        return f"{s:.1f}"
    if s >= 1:
        return f"{s:.3f}"
    return f"{s:.4f}"


def _fmt_rate(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.1f}"


def throughput(row: Row) -> str:
    if row.seconds is None or row.seconds <= 0:
        return "-"
    if row.nbytes is not None:
        return f"{row.nbytes / row.seconds / 1e6:.1f} MB/s"
    if row.rows is not None:
        return f"{_fmt_rate(row.rows / row.seconds)} rows/s"
    return "-"


def print_table(
    rows: Sequence[Row],
    baseline: str | None = None,
    title: str | None = None,
    file=None,
) -> None:
    """Print ``case | seconds | throughput | ratio vs baseline | note``.

    The ratio is ``seconds / baseline seconds`` (higher = slower than the baseline).
    """
    file = file or sys.stdout
    base = None
    if baseline is not None:
        for r in rows:
            if r.case == baseline and r.seconds:
                base = r.seconds
    header = ["case", "seconds", "throughput", f"x {baseline}" if baseline else "ratio", "note"]
    body = []
    for r in rows:
        if r.error is not None:
            body.append([r.case, "-", "-", "-", f"ERROR: {r.error}"])
            continue
        ratio = "-"
        if base and r.seconds is not None:
            ratio = f"{r.seconds / base:.2f}x"
        body.append([r.case, _fmt_seconds(r.seconds), throughput(r), ratio, r.note])
    widths = [max(len(str(line[i])) for line in [header] + body) for i in range(len(header))]
    if title:
        print(title, file=file)
    sep = "-+-".join("-" * w for w in widths)
    fmt = lambda line: " | ".join(  # noqa: E731
        str(c).ljust(w) if i in (0, 4) else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))
    )
    print(fmt(header).rstrip(), file=file)
    print(sep, file=file)
    for line in body:
        print(fmt(line).rstrip(), file=file)
    file.flush()


def check(label: str, value: float | None, op: str, target: float, file=None) -> bool:
    """Print ``PASS``/``FAIL`` for ``value <op> target`` and return whether it passed."""
    file = file or sys.stdout
    if value is None:
        print(f"FAIL  {label}: not measured (target {op} {target:g})", file=file)
        return False
    ok = value <= target if op == "<=" else value >= target
    print(f"{'PASS' if ok else 'FAIL'}  {label}: {value:.2f} (target {op} {target:g})", file=file)
    file.flush()
    return ok


# ---------------------------------------------------------------------------
# machine info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Iterable[str] = ("daft_flow", "daft", "pyarrow", "psutil")) -> str:
    parts = [
        f"cpus={os.cpu_count()}",
        f"python={platform.python_version()}",
        f"platform={platform.system().lower()}-{platform.machine()}",
    ]
    for pkg in packages:
        v = _version(pkg) or _version(pkg.replace("_", "-"))
        if v is None:
            try:
                mod = __import__(pkg)
                v = getattr(mod, "__version__", None) or "source"
            except Exception:
                v = None
        parts.append(f"{pkg}={v or 'missing'}")
    return "machine: " + " ".join(parts)


def print_header(name: str, extra: str = "", file=None) -> None:
    file = file or sys.stdout
    print(f"== benchmark: {name}{(' ' + extra) if extra else ''}", file=file)
    print(machine_info(), file=file)
    print("(absolute times on shared machines are noisy; the ratios are the result)", file=file)
    file.flush()


# ---------------------------------------------------------------------------
# memory


def current_rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


class RssSampler:
    """Sample this process's RSS every ``interval`` seconds on a background thread.

    Usage::

        with RssSampler() as s:
            work()
        print(s.peak_growth)  # bytes above the RSS at entry

    ``baseline`` defaults to the RSS when sampling starts.
    """

    def __init__(self, interval: float = 0.010, baseline: int | None = None) -> None:
        import psutil

        self._proc = psutil.Process(os.getpid())
        self.interval = interval
        self.baseline = baseline
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss
        self.samples += 1
        if rss > self.peak:
            self.peak = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> "RssSampler":
        if self.baseline is None:
            self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._sample()
        return self.peak_growth

    @property
    def peak_growth(self) -> int:
        return max(0, self.peak - (self.baseline or 0))

    def __enter__(self) -> "RssSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def mb(nbytes: float) -> float:
    return nbytes / (1024 * 1024)


# ---------------------------------------------------------------------------
# argument parsing


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks {prog}", description=description)
    return p


def add_repeat(p: argparse.ArgumentParser, default: int = DEFAULT_REPEAT) -> None:
    p.add_argument("--repeat", type=int, default=default, help=f"timed runs per case, best is kept (default {default})")
