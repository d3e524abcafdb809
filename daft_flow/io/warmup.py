"""Importing what remote reads need before the first read, on a thread of its own.

The first ``read()`` of a process used to import aiohttp, fsspec's async HTTP filesystem and the
runner inside the run it was timed in (about a fifth of a second, more than the reads of a few
hundred small files take once connections are open). Building a ``read()`` op (or loading a plan
that has one) starts these imports on a daemon thread, so they overlap with whatever the program
does before it runs the flow; a run that starts earlier waits only for what is left (Python's
import locks make the two threads share one import, never run it twice).
"""
from __future__ import annotations

import importlib
import logging
import threading

_log = logging.getLogger("daft_flow")

# In dependency order, so the two threads meet on a package's lock rather than halfway through it.
MODULES = ("fsspec", "aiohttp", "pycurl", "daft_flow.io.curl", "fsspec.asyn", "fsspec.implementations.http",
           "daft_flow.execution.runner", "daft_flow.execution.python_runners", "daft_flow.ops.row_ops")

_lock = threading.Lock()
_thread: threading.Thread | None = None


def warm_up_reads() -> threading.Thread:
    """Starts importing :data:`MODULES` on a daemon thread (once per process) and returns it."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="daft_flow-read-warmup", daemon=True)
            _thread.start()
        return _thread


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # an extra that is not installed: the read itself says so, naming the URL
            _log.debug("read warm-up: importing %s failed: %s", name, e)
