"""Live progress of a run: one row per op (rows in/out/failed, rows/s, LLM tokens and cost so far)
under a line with the inputs done, the elapsed time, an ETA when the number of inputs is known,
and the cost against the budget.

Drawn with rich on a terminal (stderr) and as an HTML table updated in place in a Jupyter
notebook. Shown only there, once a run has lasted ``SHOW_AFTER_S``: never when stderr is a file or
a pipe, so logs and CI output stay clean. ``progress=False`` or ``DFLOW_PROGRESS=0`` turn it off;
``progress=True`` or ``DFLOW_PROGRESS=1`` show it on stderr even when it is not a terminal;
``progress=<rich.console.Console>`` draws on that console. The monitor's sampler thread calls
``update`` a few times a second; nothing here runs per row or per batch.
"""
from __future__ import annotations

import html
import os
import sys
import time
from typing import Any

SHOW_AFTER_S = 1.0  # short runs show nothing
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def check_progress_option(value: Any) -> Any:
    """``progress=`` must be None (auto), a bool, or a rich Console."""
    if value is None or isinstance(value, bool):
        return value
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency
        Console = ()  # type: ignore[assignment,misc]
    if isinstance(value, Console):
        return value
    raise TypeError(f"progress must be None (shown on a terminal or in a notebook), True, False or a "
                    f"rich.console.Console, got {type(value).__name__}")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - an IPython that cannot answer is not a notebook
        return False
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def progress_for(option: Any) -> "TerminalProgress | NotebookProgress | None":
    """The display a run with ``progress=option`` gets, or None (see the module docstring)."""
    env = os.environ.get("DFLOW_PROGRESS", "").strip().lower()
    if option is False or (option is None and env in _OFF):
        return None
    if option is not None and option is not True:
        return TerminalProgress(option)  # a rich Console
    if option is True or env in _ON:
        return TerminalProgress(None)
    if in_notebook():
        return NotebookProgress()
    return TerminalProgress(None) if _is_tty(sys.stderr) else None


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


# -- what is shown -----------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _live_cost(usage: Any) -> float | None:
    from daft_flow.llm.usage import cost_of

    return cost_of(usage.model, usage.input_tokens, usage.cached_tokens, usage.output_tokens)


def headline(monitor: Any, t: float, done: bool = False) -> str:
    n, total = monitor.inputs_done, monitor.total_inputs
    parts = [f"daft_flow · {monitor.plan.levels[monitor.plan.output_level].flow}"]
    if total:
        parts.append(f"{n:,}/{total:,} inputs ({100.0 * n / total:.0f}%)")
    else:
        parts.append(f"{n:,} inputs")
    parts.append(_clock(t))
    if total and not done and n and n < total:
        parts.append(f"ETA {_clock((total - n) * t / n)}")
    costs = [_live_cost(s.runner.usage) for s in monitor.stages if getattr(s.runner, "usage", None) is not None]
    if costs:
        known = [c for c in costs if c is not None]
        spent = f"${sum(known):.4f}" if len(known) == len(costs) else "$?"
        if monitor.budget is not None:
            spent += f" of ${monitor.budget.max_cost_usd:g}"
        parts.append(spent)
    return " · ".join(parts)


def op_rows(monitor: Any, stats: dict[str, Any], t: float) -> list[list[str]]:
    """Per op: name, flow, in, out, failed, rows/s, tokens in/out, cost."""
    rows = []
    now_ns = stats.get("elapsed_ns", int(t * 1e9))
    for info, st in zip(monitor.stages, stats.get("stages", ())):
        if info.op == "template":  # part of the LLM op that follows it
            continue
        start = st["first_start_ns"]
        span = (now_ns - start) / 1e9 if start >= 0 else 0.0
        rate = f"{st['rows_out'] / span:,.0f}" if span > 0 else ""
        usage = getattr(info.runner, "usage", None)
        tokens = cost = ""
        if usage is not None:
            tokens = f"{usage.input_tokens:,}/{usage.output_tokens:,}"
            c = _live_cost(usage)
            cost = f"${c:.4f}" if c is not None else "?"
        name = info.key if info.key == info.op else f"{info.key} ({info.op})"
        rows.append([name, info.flow, f"{st['rows_in']:,}", f"{st['rows_out']:,}", f"{st['rows_failed']:,}", rate,
                     tokens, cost])
    return rows


COLUMNS = ["op", "flow", "in", "out", "failed", "rows/s", "tokens in/out", "cost"]


class TerminalProgress:
    """rich's Live display of a table, redrawn by the sampler thread."""

    REDRAW_S = 0.5  # a frame costs ~3 ms of GIL time: twice a second keeps that under 1% of a run

    def __init__(self, console: Any) -> None:
        self.console = console
        self.live: Any = None
        self.shown = False
        self.last = 0.0

    def _renderable(self, monitor: Any, stats: dict[str, Any], t: float, done: bool = False) -> Any:
        from rich.table import Table

        table = Table(title=headline(monitor, t, done), title_justify="left", box=None, pad_edge=False)
        for i, name in enumerate(COLUMNS):
            table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True)
        for row in op_rows(monitor, stats, t):
            table.add_row(*row)
        return table

    def update(self, monitor: Any, stats: dict[str, Any], t: float) -> None:
        if t < SHOW_AFTER_S or (self.live is not None and t - self.last < self.REDRAW_S):
            return
        self.last = t
        if self.live is None:
            from rich.console import Console
            from rich.live import Live

            console = self.console if self.console is not None else Console(stderr=True)
            # What the run's functions or a stream() loop print to a terminal stdout goes above the
            # table instead of through it.
            redirect = self.console is None and _is_tty(sys.stdout)
            self.live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=redirect,
                             redirect_stderr=False)
            self.live.start()
        self.live.update(self._renderable(monitor, stats, t), refresh=True)
        self.shown = True

    def close(self, monitor: Any, stats: dict[str, Any], t: float) -> None:
        if self.live is not None:
            if stats:
                self.live.update(self._renderable(monitor, stats, t, done=True), refresh=True)
            self.live.stop()
            self.live = None


class NotebookProgress:
    """An HTML table in the notebook's output, updated in place (IPython display handles)."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.last = 0.0

    def _html(self, monitor: Any, stats: dict[str, Any], t: float, done: bool = False) -> Any:
        from IPython.display import HTML

        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                       for row in op_rows(monitor, stats, t))
        return HTML(f"<div><b>{html.escape(headline(monitor, t, done))}</b><table><tr>{head}</tr>{body}</table></div>")

    def update(self, monitor: Any, stats: dict[str, Any], t: float) -> None:
        if t < SHOW_AFTER_S or time.monotonic() - self.last < 0.5:  # the front end redraws slower than a terminal
            return
        from IPython.display import display

        self.last = time.monotonic()
        if self.handle is None:
            self.handle = display(self._html(monitor, stats, t), display_id=True)
        else:
            self.handle.update(self._html(monitor, stats, t))

    def close(self, monitor: Any, stats: dict[str, Any], t: float) -> None:
        if self.handle is not None and stats:
            self.handle.update(self._html(monitor, stats, t, done=True))
