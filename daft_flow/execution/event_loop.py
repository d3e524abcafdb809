"""The asyncio event loop the runtime owns: one daemon thread running async user functions,
LLM requests and reads for every run in the process.

It must outlive anything user code does: ``KeyboardInterrupt`` / ``SystemExit`` escaping a
coroutine would otherwise end ``run_forever`` and leave every waiter hanging, so the thread keeps
serving (runners turn those exceptions into a stop of their own run). A thread found dead is
replaced. After ``os.fork()`` the child has the loop object but not its thread, so the child
forgets it and starts its own on first use.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any, Coroutine, Iterable
from daft_flow.forksafe import ForkSafeLock

logger = logging.getLogger("daft_flow")

_lock = ForkSafeLock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_stopping = False
# Loops inherited from the parent process (after fork): kept referenced so that their destructors
# never run here (they would close descriptors and report "unclosed" resources of the parent).
_inherited: list[Any] = []


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    while True:
        try:
            loop.run_forever()
        except BaseException as e:  # the loop must survive whatever a callback raises
            logger.warning("daft_flow event loop: %s escaped a callback; the loop keeps running",
                           type(e).__name__, exc_info=not isinstance(e, (KeyboardInterrupt, SystemExit)))
            continue
        if _stopping or loop.is_closed():
            return


def get_loop() -> asyncio.AbstractEventLoop:
    """Starts the loop thread on first use (again if it died) and returns its loop."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            _thread = threading.Thread(target=_serve, args=(loop, ready), name="daft_flow-event-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def in_loop_thread() -> bool:
    """Whether the caller runs on the runtime's event-loop thread (inside an async function of a run)."""
    return _thread is not None and threading.current_thread() is _thread


def alive() -> bool:
    return _thread is not None and _thread.is_alive() and _loop is not None and not _loop.is_closed()


def submit(coro: Coroutine[Any, Any, Any]) -> "Future[Any]":
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def settle(tasks: Iterable["asyncio.Task[Any]"], timeout: float) -> None:
    """Cancels ``tasks`` and waits up to ``timeout`` seconds for them to finish, so that a stopped
    run leaves nothing pending on the loop ("Task was destroyed but it is pending!")."""
    tasks = [t for t in tasks if not t.done()]
    if not tasks or not alive() or in_loop_thread():
        return

    async def cancel_and_wait() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=timeout)

    assert _loop is not None
    try:
        asyncio.run_coroutine_threadsafe(cancel_and_wait(), _loop).result(timeout=timeout)
    except Exception:  # a coroutine that ignores cancellation, a blocked loop: the run is over anyway
        logger.debug("daft_flow: %d cancelled task(s) still running after %.1fs", len(tasks), timeout)


@atexit.register
def _shutdown() -> None:
    """Cancels what is still on the loop, waits briefly for it, then stops and closes the loop."""
    global _loop, _stopping
    with _lock:
        loop, thread = _loop, _thread
        if loop is None or loop.is_closed() or thread is None or not thread.is_alive():
            _loop = None
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=2.0)
        except Exception:
            pass
        _stopping = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=2)
        if not thread.is_alive():
            loop.close()
        _loop = None


def _forget_after_fork() -> None:
    """In a forked child: the parent's loop has no thread here. Never touch it; start afresh."""
    global _loop, _thread, _stopping
    if _loop is not None:
        _inherited.append(_loop)
    _loop, _thread, _stopping = None, None, False  # (_lock is a ForkSafeLock: unlocked here)


os.register_at_fork(after_in_child=_forget_after_fork)
