"""Handling what user code raises, without trusting the objects it raises.

A user's exception is reported with its row; it must never stop the run because of how it
behaves (a ``__str__`` that raises, a ``__notes__`` that is not a list, an ``asyncio.CancelledError``
leaking out of a coroutine). Only ``KeyboardInterrupt``, ``SystemExit`` and other exceptions that
are not ``Exception``s (``GeneratorExit``, test-runner outcomes) stop a run, on every path.
"""
from __future__ import annotations

import asyncio
from typing import Any


def safe_str(obj: Any) -> str:
    """``str(obj)``, or a placeholder when its ``__str__`` raises or returns a non-str."""
    try:
        text = str(obj)
        if isinstance(text, str):
            return text
    except Exception as e:
        return f"<{_type_name(obj)} object: str() raised {_type_name(e)}>"
    return f"<{_type_name(obj)} object: str() did not return a str>"


def describe(error: BaseException) -> str:
    """``"TypeName: message"`` for an exception, whatever its ``__str__`` does."""
    message = safe_str(error)
    return f"{_type_name(error)}: {message}" if message else _type_name(error)


def _type_name(obj: Any) -> str:
    try:
        return str(type(obj).__name__)
    except Exception:  # pragma: no cover - a metaclass that breaks __name__
        return "object"


def add_note(error: BaseException, note: str) -> None:
    """PEP 678 note, unless the exception's ``__notes__`` cannot take one (it is not a list):
    the note is a courtesy, the row's failure record already names row, op and field."""
    try:
        error.add_note(note)
    except Exception:
        pass


def stops_run(error: BaseException) -> bool:
    """Whether a user function's exception must stop the whole run rather than fail its row:
    KeyboardInterrupt, SystemExit and other non-``Exception`` exceptions, except a leaked
    ``asyncio.CancelledError`` (a cancellation that is not the run's own fails its row)."""
    return not isinstance(error, (Exception, asyncio.CancelledError))


def row_error(error: BaseException, op: str) -> Exception:
    """The exception a failed row keeps: the user's own, or for a leaked ``CancelledError`` (not an
    ``Exception``, so it could not sit in a ``FlowRunError`` group) a ``RuntimeError`` caused by it."""
    if isinstance(error, Exception):
        return error
    wrapped = RuntimeError(f"{op} raised asyncio.CancelledError: a task it awaited was cancelled, or it let a "
                           "cancellation escape; the row fails (the run was not cancelled)")
    wrapped.__cause__ = error
    return wrapped
