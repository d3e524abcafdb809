import os

import pytest

from servers_fixture import GCSEmulator, HTTPFileServer, MotoS3, restore_env, set_env

# gcsfs (2025.x on) asks GCS's gRPC control API what kind of bucket it reads, which an emulator
# does not serve: each bucket would wait 60 s before gcsfs falls back. It reads this at import.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture
def http_files(tmp_path):
    """A local HTTP server over a fresh directory: yields (directory, server)."""
    root = tmp_path / "www"
    root.mkdir()
    with HTTPFileServer(str(root)) as server:
        yield root, server


def _serve_with_env(server_class, *modules):
    """Runs a loopback server for the session with the environment that points clients at it."""
    for module in modules:
        pytest.importorskip(module)
    with server_class() as server:
        old = set_env(server.env)
        try:
            yield server
        finally:
            restore_env(old)


@pytest.fixture(scope="session")
def s3():
    """A moto S3 endpoint on loopback, with AWS_ENDPOINT_URL (and test credentials) set while it runs."""
    yield from _serve_with_env(MotoS3, "moto.server", "s3fs")


@pytest.fixture(scope="session")
def gcs():
    """A GCS emulator on loopback, with STORAGE_EMULATOR_HOST set while it runs."""
    yield from _serve_with_env(GCSEmulator, "gcp_storage_emulator", "gcsfs")


@pytest.fixture(params=["libcurl", "aiohttp"])
def http_client(request, monkeypatch):
    """Runs a test once per client of http(s) reads: libcurl (pycurl; skipped where it is not
    installed) and aiohttp (the fallback, and the client with ``DAFT_FLOW_HTTP_CLIENT=aiohttp``)."""
    from daft_flow.io import curl, locations

    if request.param == "libcurl":
        if not curl.available():
            pytest.skip("pycurl is not installed (or DAFT_FLOW_HTTP_CLIENT=aiohttp)")
        monkeypatch.setattr(locations, "_curl", curl)
    else:
        monkeypatch.setattr(locations, "_curl", False)
    return request.param
