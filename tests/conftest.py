import os
import threading

import pytest

# Triton's kernels run in its interpreter on CPU tensors in tests where there is no NVIDIA GPU (CI);
# with one, the kernel tests run the compiled kernels on it. Triton reads this when it is first
# imported (its standard library is defined then), so it is set before any test module is collected.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# cache=True uses a DiskCache under DFLOW_CACHE_DIR: tests never write to the user's cache directory.
if "DFLOW_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["DFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="dflow-test-cache-")

import daft_flow as dflow
from daft_flow.testing import FaultServer


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_source_tree(tmp_path_factory):
    """Tests run from a scratch directory. CI installs the wheel and runs pytest from the checkout, whose
    ``daft_flow/`` has no built extension: a child process (``python -c``, ``-m``) or a Ray worker puts
    its current directory first on ``sys.path`` and would import that half package instead."""
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


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


@pytest.fixture
def fault_server():
    """An OpenAI-compatible fault server on loopback (see daft_flow.testing)."""
    with FaultServer(retry_after=0.05) as server:
        yield server


@pytest.fixture
def provider(fault_server):
    return dflow.OpenAIProvider(base_url=fault_server.base_url, api_key=fault_server.api_key, model="fault-chat",
                                embedding_model="fault-embed", max_retries=10, timeout=5.0)


@pytest.fixture
def default_to(provider):
    dflow.set_provider(provider)
    yield provider
    dflow.set_provider(None)
