import pytest

import daft_flow as dflow
from daft_flow.testing import FaultServer


@pytest.fixture
def fault_server():
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
