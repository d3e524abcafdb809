"""A run report as one self-contained HTML page: tables and inline SVG plots, no script, nothing
fetched from the network (the page opens offline, in a browser or a notebook).

Plots: throughput over time (inputs finished per second, and rows out per second of the busiest
ops), the latency distribution of each LLM op's requests, and where time went per op (busy time,
and the op's wall time behind it). The SVG is written here: a plotting library that inlines its
code is far heavier than the 12-16 KB a whole page takes (plotly 7.1's ``plotly.min.js``, which
``include_plotlyjs=True`` inlines, is 4.8 MB).
"""
from __future__ import annotations

import datetime
import html
import math
from typing import Any, Sequence

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
MAX_LINES = 6  # ops drawn in the throughput plot (the busiest)

_CSS = """
.dflow-report { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 14px; color: #222; }
.dflow-report h2 { font-size: 18px; margin: 16px 0 6px; }
.dflow-report h3 { font-size: 15px; margin: 14px 0 4px; }
.dflow-report table { border-collapse: collapse; margin: 4px 0 10px; }
.dflow-report th, .dflow-report td { padding: 3px 9px; border-bottom: 1px solid #ddd; text-align: right; }
.dflow-report th:first-child, .dflow-report td:first-child { text-align: left; }
.dflow-report .muted { color: #666; }
.dflow-report svg { display: block; margin: 4px 0 12px; }
.dflow-report svg text { font-size: 11px; fill: #333; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _seconds(s: float | None) -> str:
    if s is None:
        return ""
    if s >= 1:
        return f"{s:,.2f} s"
    return f"{s * 1000:,.1f} ms"


def _nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``hi``."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(hi / step)) + 1)]


class _Chart:
    """An SVG canvas with a plot area and linear axes."""

    def __init__(self, width: int, height: int, title: str, left: int = 60, bottom: int = 34) -> None:
        self.w, self.h, self.left, self.bottom, self.top, self.right = width, height, left, bottom, 24, 16
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                      f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
                      f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
                      f'<text x="{self.left}" y="15" style="font-weight:bold">{_e(title)}</text>']

    @property
    def plot_w(self) -> float:
        return self.w - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.h - self.top - self.bottom

    def x(self, v: float, hi: float) -> float:
        return self.left + (v / hi if hi else 0) * self.plot_w

    def y(self, v: float, hi: float) -> float:
        return self.top + self.plot_h - (v / hi if hi else 0) * self.plot_h

    def axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str,
             x_fmt: Any = _num, y_fmt: Any = _num) -> None:
        xh, yh = x_ticks[-1], y_ticks[-1]
        for t in y_ticks:
            y = self.y(t, yh)
            self.parts.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.left + self.plot_w:.1f}" y2="{y:.1f}" '
                              f'stroke="#e6e6e6"/>')
            self.parts.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(y_fmt(t))}</text>')
        for t in x_ticks:
            x = self.x(t, xh)
            self.parts.append(f'<text x="{x:.1f}" y="{self.top + self.plot_h + 15:.1f}" text-anchor="middle">'
                              f'{_e(x_fmt(t))}</text>')
        base = self.top + self.plot_h
        self.parts.append(f'<line x1="{self.left}" y1="{base:.1f}" x2="{self.left + self.plot_w:.1f}" y2="{base:.1f}" '
                          f'stroke="#888"/>')
        self.parts.append(f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{base:.1f}" stroke="#888"/>')
        self.parts.append(f'<text x="{self.left + self.plot_w / 2:.1f}" y="{self.h - 4}" text-anchor="middle" '
                          f'class="muted">{_e(x_label)}</text>')
        self.parts.append(f'<text x="12" y="{self.top + self.plot_h / 2:.1f}" text-anchor="middle" '
                          f'transform="rotate(-90 12 {self.top + self.plot_h / 2:.1f})">{_e(y_label)}</text>')

    def svg(self) -> str:
        return "".join(self.parts) + "</svg>"


def _rates(t: Sequence[float], counts: Sequence[int]) -> list[tuple[float, float]]:
    """Per-interval rates of a cumulative count, as steps: (t, rate) at both ends of each interval."""
    points: list[tuple[float, float]] = []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if dt <= 0:
            continue
        rate = max(0.0, (counts[i] - counts[i - 1]) / dt)
        points += [(t[i - 1], rate), (t[i], rate)]
    return points


def throughput_svg(report: Any, width: int = 720, height: int = 260) -> str:
    series = report.throughput
    t = series.t
    chart = _Chart(width, height, "Throughput over time")
    if len(t) < 2 or t[-1] <= 0:
        chart.parts.append(f'<text x="{chart.left}" y="{height / 2}">the run was too short to sample</text>')
        return chart.svg()
    lines: list[tuple[str, list[tuple[float, float]]]] = [("inputs done", _rates(t, series.inputs_done))]
    # LLM ops by answers as they arrive (a batch of prompts leaves its op all at once); templates
    # are part of their LLM op.
    counted = [(f"{key} answers", counts) for key, counts in series.requests.items()]
    counted += [(f"{key} rows out", counts) for key, counts in series.ops.items()
                if key not in series.requests and report.ops.get(key) is not None and report.ops[key].op != "template"]
    counted.sort(key=lambda kv: -(kv[1][-1] if kv[1] else 0))
    for label, counts in counted[:MAX_LINES - 1]:
        if counts and counts[-1]:
            lines.append((label, _rates(t, counts)))
    y_hi = max((r for _, pts in lines for _, r in pts), default=1.0)
    x_ticks, y_ticks = _nice_ticks(t[-1]), _nice_ticks(y_hi)
    chart.axes(x_ticks, y_ticks, "seconds since the run started", "rows / s")
    for i, (label, pts) in enumerate(lines):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{chart.x(x, x_ticks[-1]):.1f},{chart.y(y, y_ticks[-1]):.1f}" for x, y in pts)
        chart.parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        lx = chart.left + 10 + (i % 3) * 200
        ly = chart.top + 12 + (i // 3) * 14
        chart.parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
                           f'<text x="{lx + 14}" y="{ly + 1}">{_e(label[:28])}</text>')
    return chart.svg()


def latency_svg(key: str, hist: Any, color: str, width: int = 720, height: int = 200) -> str:
    chart = _Chart(width, height, f"Request latency: {key} ({hist.count:,} requests)")
    if not hist.count:
        chart.parts.append(f'<text x="{chart.left}" y="{height / 2}">no successful requests</text>')
        return chart.svg()
    lo, hi = min(hist.buckets), max(hist.buckets)
    lo, hi = lo - 1, hi + 2  # a little room on both sides
    n = hi - lo
    y_ticks = _nice_ticks(max(hist.buckets.values()))
    log_lo, log_hi = math.log2(hist.bounds(lo)[0]), math.log2(hist.bounds(hi)[0])

    def x_of(seconds: float) -> float:
        return chart.left + (math.log2(seconds) - log_lo) / (log_hi - log_lo) * chart.plot_w

    chart.axes([0.0, 1.0], y_ticks, "seconds (log scale)", "requests", x_fmt=lambda _: "")
    step = max(1, n // 8)
    for i in range(lo, hi + 1, step):
        s = hist.bounds(i)[0]
        chart.parts.append(f'<text x="{x_of(s):.1f}" y="{chart.top + chart.plot_h + 15:.1f}" text-anchor="middle">'
                           f'{_e(_seconds(s))}</text>')
    for i, count in sorted(hist.buckets.items()):
        b_lo, b_hi = hist.bounds(i)
        x0, x1 = x_of(b_lo), x_of(b_hi)
        y = chart.y(count, y_ticks[-1])
        chart.parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                           f'height="{chart.top + chart.plot_h - y:.1f}" fill="{color}"/>')
    for q, dash in ((0.5, "4,3"), (0.9, "2,2"), (0.99, "1,2")):
        v = hist.quantile(q)
        if v:
            x = x_of(max(v, hist.bounds(lo)[0]))
            chart.parts.append(f'<line x1="{x:.1f}" y1="{chart.top}" x2="{x:.1f}" y2="{chart.top + chart.plot_h:.1f}" '
                               f'stroke="#333" stroke-dasharray="{dash}"/>'
                               f'<text x="{x + 3:.1f}" y="{chart.top + 10}">p{int(q * 100)} {_e(_seconds(v))}</text>')
    return chart.svg()


def time_svg(report: Any, width: int = 720) -> str:
    ops = list(report.ops.values())
    rows = [(op.key, op.busy_s, op.wall_s) for op in ops]
    if report.source:
        rows.insert(0, ("source (pulling inputs)", report.source.get("busy_s", 0.0), 0.0))
        rows.insert(1, ("source (waiting for memory)", report.source.get("budget_wait_s", 0.0), 0.0))
    bar, gap = 16, 8
    height = 24 + 34 + len(rows) * (bar + gap)
    chart = _Chart(width, height, "Where time went per op (busy; wall time behind)", left=200)
    hi = max([max(b, w) for _, b, w in rows] + [report.wall_s, 1e-6])
    x_ticks = _nice_ticks(hi)
    chart.axes(x_ticks, [0.0, 1.0], "seconds", "", y_fmt=lambda _: "")
    for i, (label, busy, wall) in enumerate(rows):
        y = chart.top + 4 + i * (bar + gap)
        if wall > 0:
            chart.parts.append(f'<rect x="{chart.left}" y="{y}" width="{chart.x(wall, x_ticks[-1]) - chart.left:.1f}" '
                               f'height="{bar}" fill="#c6dbef"/>')
        chart.parts.append(f'<rect x="{chart.left}" y="{y + 3}" width="{max(0.5, chart.x(busy, x_ticks[-1]) - chart.left):.1f}" '
                           f'height="{bar - 6}" fill="{PALETTE[1]}"/>')
        chart.parts.append(f'<text x="{chart.left - 6}" y="{y + 12}" text-anchor="end">{_e(label[:30])}</text>'
                           f'<text x="{chart.x(max(busy, wall), x_ticks[-1]) + 4:.1f}" y="{y + 12}">'
                           f'{_e(_seconds(busy))}</text>')
    return chart.svg()


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_fragment(report: Any) -> str:
    """The report's body (for ``_repr_html_`` and inside ``render_page``)."""
    started = datetime.datetime.fromtimestamp(report.started_at).strftime("%Y-%m-%d %H:%M:%S")
    cost = report.cost_usd
    parts = [f'<div class="dflow-report"><style>{_CSS}</style>',
             f"<h2>Run of flow {_e(report.flow)}: {_e(report.status)}</h2>",
             f'<p class="muted">started {started}, {_seconds(report.wall_s)}, {report.inputs:,} inputs'
             + (f", ${cost:.6f}" if cost is not None and cost > 0 else "")
             + (f", plan {_e(report.plan_fingerprint)}" if report.plan_fingerprint else "") + "</p>"]
    if report.error:
        parts.append(f"<p><b>Error:</b> {_e(report.error)}</p>")
    if report.budget:
        b = report.budget
        parts.append(f"<p><b>Budget:</b> ${b['spent_usd']:.6f} of ${b['max_cost_usd']:g} spent, "
                     f"{b['requests_granted']:,} requests sent, {b['requests_refused']:,} not sent"
                     + (" (budget reached)" if b["exhausted"] else "") + "</p>")
    parts.append("<h3>Rows per flow</h3>")
    parts.append(_table(["flow", "rows", "succeeded", "failed", "skipped", "budget exceeded", "dead-lettered"],
                        [[k, f"{f.rows:,}", f"{f.succeeded:,}", f"{f.failed:,}", f"{f.skipped:,}",
                          f"{f.budget_exceeded:,}", f"{f.dead_lettered:,}"] for k, f in report.flows.items()]))
    parts.append("<h3>Ops</h3>")
    parts.append(_table(
        ["op", "flow", "rows in", "rows out", "failed", "failures", "busy", "wall", "retries", "cache hits",
         "requests", "tokens in / out", "cost"],
        [[f"{op.key} ({op.op})" if op.op != op.key else op.key, op.flow, f"{op.rows_in:,}", f"{op.rows_out:,}",
          f"{op.rows_failed:,}", ", ".join(f"{k}: {v:,}" for k, v in op.failures_by_type.items()),
          _seconds(op.busy_s), _seconds(op.wall_s), f"{op.retries:,}", f"{op.cache_hits:,}",
          f"{op.requests:,}" if op.is_llm else "",
          f"{op.input_tokens:,} / {op.output_tokens:,}" if op.is_llm else "",
          ("" if not op.is_llm else "no price" if op.cost_usd is None else f"${op.cost_usd:.6f}")]
         for op in report.ops.values()]))
    parts.append("<h3>Plots</h3>")
    parts.append(throughput_svg(report))
    llm = [op for op in report.ops.values() if op.is_llm and op.latency is not None]
    for i, op in enumerate(llm):
        parts.append(latency_svg(op.key, op.latency, PALETTE[(i + 2) % len(PALETTE)]))
    parts.append(time_svg(report))
    parts.append("</div>")
    return "".join(parts)


def render_page(report: Any) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>daft_flow run: {_e(report.flow)}'
            f"</title></head><body>{render_fragment(report)}</body></html>\n")
