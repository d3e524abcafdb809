"""Process-wide state that survives ``os.fork()`` (multiprocessing's default start method on Linux).

A forked child has only the thread that forked. A lock another thread held at that moment stays
held in the child forever, so the first ``with lock:`` there never returns. ``ForkSafeLock`` is a
``threading.Lock`` that the child gets back unlocked; use it for module-level locks and for those
of long-lived objects (providers, servers).
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Any


class ForkSafeLock:
    """A ``threading.Lock`` (``with``, ``acquire``, ``release``, ``locked``) that is unlocked again
    in a forked child, whatever thread of the parent held it."""

    _instances: "weakref.WeakSet[ForkSafeLock]" = weakref.WeakSet()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        ForkSafeLock._instances.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    @classmethod
    def _renew_all(cls) -> None:
        for lock in list(cls._instances):
            lock._lock = threading.Lock()


os.register_at_fork(after_in_child=ForkSafeLock._renew_all)
