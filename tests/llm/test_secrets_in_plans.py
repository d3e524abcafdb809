"""No secret in a plan's bytes, its pickle, explain(), reprs, fingerprints or error messages: API keys
stay in memory (or the environment), credentials in a base_url are shown as ***."""
import pickle

import pytest

import daft_flow as dflow
from daft_flow.testing import FaultServer

KEY = "sk-grep-me-0123456789abcdefXYZ"
PASSWORD = "pa55-w0rd-grep-me"
QUERY_SECRET = "q-secret-grep-me-42"


def _everything_shown(obj, flow):
    """Every text and byte form of a flow and its provider."""
    plan = flow.to_ir()
    forms = [flow.to_bytes(), pickle.dumps(flow), plan.SerializeToString(), str(plan).encode(), flow.explain().encode(),
             repr(flow).encode(), repr(obj).encode(), obj.describe().encode(), flow.fingerprint().encode()]
    return b"\n".join(forms)


def _flow(provider):
    flow = dflow.Flow("d", str)
    flow["a"] = flow["d"].prompt("say", provider=provider, max_tokens=8)
    flow["v"] = flow["d"].embed_text(provider=provider)
    return flow


def test_an_api_key_is_in_no_bytes_pickle_explain_repr_or_fingerprint_even_after_a_run():
    with FaultServer(api_key=KEY) as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=KEY, model="fault-chat",
                                        embedding_model="fault-embed")
        flow = _flow(provider)
        before = _everything_shown(provider, flow)
        assert flow.collect("hi")["a"].startswith("answer")
        after = _everything_shown(provider, flow)  # a provider that has run holds a client with the key
        for shown in (before, after):
            assert KEY.encode() not in shown
        assert pickle.loads(pickle.dumps(provider)).api_key_env == "OPENAI_API_KEY"
        assert KEY.encode() not in pickle.dumps(provider)


def test_a_key_from_the_environment_does_not_travel_either(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    provider = dflow.OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key_env="MY_LLM_KEY")
    assert provider.api_key == KEY
    assert KEY.encode() not in _everything_shown(provider, _flow(provider))
    monkeypatch.delenv("MY_LLM_KEY")
    restored = pickle.loads(pickle.dumps(provider))
    with pytest.raises(dflow.ProviderConfigError, match="MY_LLM_KEY"):
        restored._request_key()


def test_credentials_in_base_url_are_redacted_and_never_pickled():
    url = f"http://user:{PASSWORD}@127.0.0.1:9/v1?api-key={QUERY_SECRET}&mode=fast"
    provider = dflow.OpenAIProvider(base_url=url, api_key=KEY)
    flow = _flow(provider)
    shown = b"\n".join([flow.explain().encode(), repr(flow).encode(), repr(provider).encode(),
                        provider.describe().encode(), flow.to_ir().SerializeToString(), flow.fingerprint().encode()])
    for secret in (PASSWORD, QUERY_SECRET, KEY):
        assert secret.encode() not in shown
    assert "api-key=***" in flow.explain() and "mode=fast" in flow.explain()
    for dump in (flow.to_bytes, lambda: pickle.dumps(flow), lambda: pickle.dumps(provider)):
        with pytest.raises(TypeError, match="api_key_env") as info:
            dump()
        assert PASSWORD not in str(info.value) and QUERY_SECRET not in str(info.value)


def test_errors_of_a_rejected_key_do_not_contain_it():
    with FaultServer(api_key="the-right-key") as server:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=KEY, model="fault-chat")
        flow = dflow.Flow("d", str)
        flow["a"] = flow["d"].prompt("say", provider=provider)
        with pytest.raises(dflow.ProviderConfigError) as info:
            flow.collect("hi")
    text = "".join([str(info.value), repr(info.value), *getattr(info.value, "__notes__", [])])
    assert "401" in text and KEY not in text


def test_options_refuse_credentials():
    flow = dflow.Flow("d", str)
    for options in ({"api_key": KEY}, {"extra_headers": {"Authorization": f"Bearer {KEY}"}},
                    {"extra_headers": {"x-api-key": KEY}}):
        with pytest.raises(ValueError, match="looks like a credential") as info:
            flow["d"].prompt("say", options=options, provider=dflow.OpenAIProvider(base_url="http://127.0.0.1:9/v1"))
        assert KEY not in str(info.value)
    flow["d"].prompt("say", options={"max_completion_tokens": 5, "top_p": 0.5},
                     provider=dflow.OpenAIProvider(base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(TypeError, match="JSON"):
        flow["d"].prompt("say", options={"x": object()})


def test_secret_attributes_of_user_objects_do_not_shape_fingerprints():
    from daft_flow.plan.logic_hash import digest

    class Client:
        def __init__(self, api_key, model):
            self.api_key, self.model = api_key, model

        def __call__(self, s):
            return s

    assert digest(Client("a", "m")) == digest(Client("b", "m")) != digest(Client("a", "n"))
