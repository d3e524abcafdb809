import pytest

from servers_fixture import HTTPFileServer, MotoS3, restore_env, set_env


@pytest.fixture
def http_files(tmp_path):
    """A local HTTP server over a fresh directory: yields (directory, server)."""
    root = tmp_path / "www"
    root.mkdir()
    with HTTPFileServer(str(root)) as server:
        yield root, server


@pytest.fixture(scope="session")
def s3():
    """A moto S3 endpoint on loopback, with AWS_ENDPOINT_URL (and test credentials) set while it runs."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with MotoS3() as server:
        old = set_env(server.env)
        try:
            yield server
        finally:
            restore_env(old)
