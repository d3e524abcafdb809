"""The library's logger (``logging.getLogger("daft_flow")``).

A new user who has not configured ``logging`` should still see what a slow first call is doing
("starting the embedded model ..."), which Python's fallback handler would drop (it shows
warnings only). So until the application configures logging itself (the root logger gets a
handler), INFO and above from daft_flow go to stderr. Once it has, daft_flow's records only
propagate to the application's handlers. ``logging.getLogger("daft_flow").setLevel(logging.WARNING)``
silences the INFO lines.
"""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger("daft_flow")


class _UntilConfigured(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to stderr only while the root logger has no handlers (logging not configured)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[no-untyped-def, override]
        return sys.stderr  # the current stderr (tests and notebooks replace it)

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        super().emit(record)


def install_default_handler() -> None:
    if not any(isinstance(h, _UntilConfigured) for h in logger.handlers):
        handler = _UntilConfigured()
        handler.setFormatter(logging.Formatter("daft_flow: %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
