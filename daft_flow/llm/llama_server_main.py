"""Entry point of the embedded llama.cpp server process: ``python llama_server_main.py PARENT_PID ARGS...``.

Run as a script (by path, so the child does not import daft_flow): it asks Linux to send it
SIGTERM when the process that started it dies (``PR_SET_PDEATHSIG``), even if that process was
killed before its atexit handlers could stop the server, then runs ``llama_cpp.server`` with ARGS.
Doing this here, after exec, instead of in a ``preexec_fn`` lets ``subprocess`` start the server
without forking the (multi-threaded) parent: no fork-after-threads hazards or warnings.
"""
import os
import runpy
import signal
import sys


def _die_with_parent(parent: int) -> None:
    if sys.platform != "linux":
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
        sys.exit(0)


if __name__ == "__main__":
    _die_with_parent(int(sys.argv[1]))
    sys.argv = ["llama_cpp.server", *sys.argv[2:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
