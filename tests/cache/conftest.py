import shutil
import socket
import subprocess
import time

import pytest

import daft_flow as dflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server (Debian's package) on a free loopback port, for the session."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _default_cache_back():
    """Each test starts and ends with the process's default cache (a DiskCache under DFLOW_CACHE_DIR)."""
    dflow.set_cache(None)
    yield
    dflow.set_cache(None)


@pytest.fixture
def calls(tmp_path, monkeypatch):
    """Counts calls of the functions in ``counting.py`` (a module of its own, so the counter is
    not part of the functions' fingerprints)."""
    import counting

    counting.reset()
    return counting
