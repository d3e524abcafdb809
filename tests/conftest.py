import os
import threading

import pytest

# Triton's kernels run in its interpreter on CPU tensors in tests where there is no NVIDIA GPU (CI);
# with one, the kernel tests run the compiled kernels on it. Triton reads this when it is first
# imported (its standard library is defined then), so it is set before any test module is collected.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


def native_thread_count() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


@pytest.fixture
def no_leaked_threads():
    """Fails the test if it leaves runtime threads behind (the event-loop daemon is allowed)."""
    before = native_thread_count()
    yield
    for _ in range(100):
        if native_thread_count() <= before + 1:
            return
        threading.Event().wait(0.02)
    assert native_thread_count() <= before + 1, "runtime threads still running after the run ended"

