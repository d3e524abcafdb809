"""Fingerprints: stable across processes and machines, sensitive to everything that changes
results, blind to what does not (names, line numbers, concurrency, secrets)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import types

import pytest

import daft_flow as dflow
from daft_flow.plan.logic_hash import digest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A user's module: helpers, constants, a class, closures, defaults, sets of strings (whose
# iteration order changes with PYTHONHASHSEED), a chunker with a tokenizer file.
USER_MODULE = '''
import daft_flow as dflow

STOP = {"the", "a", "an", "of", "and"}
TABLE = {"x": 1, "y": [2, 3], "z": {"k": (4.5, None)}}


def clean(word):
    return word.strip(".,").lower()


class Scorer:
    weight = 3

    def __init__(self, bias):
        self.bias = bias

    def __call__(self, text: str) -> int:
        return sum(len(clean(w)) for w in text.split() if clean(w) not in STOP) * self.weight + self.bias


def make_counter(step=2, *, scale=10):
    offset = TABLE["x"]
    return lambda s: [len(w) * scale + offset + step for w in s.split()]


def build(tokenizer_path, base_url="http://127.0.0.1:9/v1", key="sk-unused-1234567890"):
    provider = dflow.OpenAIProvider(base_url=base_url, api_key=key, model="m1", embedding_model="e1")
    doc = dflow.Flow("doc", str)
    doc["score"] = doc["doc"].run_python(Scorer(7), return_type=int)
    doc["counts"] = doc["doc"].run_python(make_counter(), return_type=list[int])
    chunks = doc["doc"].chunk_text(max_tokens=12, overlap_tokens=2, tokenizer=tokenizer_path)
    chunks["ids"] = chunks["chunk"].tokenize(tokenizer_path)
    chunks["summary"] = chunks.prompt("Doc: {d}\\nChunk: {c}".format(d=doc["doc"], c=chunks["chunk"]),
                                      provider=provider, max_tokens=16)
    chunks["vec"] = chunks["chunk"].embed_text(provider=provider)
    chunks["score"] = doc["score"]
    return chunks
'''

SCRIPT = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import user_flows
flow = user_flows.build(sys.argv[2])
plan = flow.to_ir()
print(json.dumps({"plan": plan.fingerprint, "nodes": [n.fingerprint for n in plan.nodes],
                  "ops": [n.op_fingerprint for n in plan.nodes], "levels": [lvl.fingerprint for lvl in plan.levels]}))
'''


def _tokenizer_copy(directory: pathlib.Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tokenizer.json"
    shutil.copy(dflow.Tokenizer.default().path, path)
    return str(path)


def _run(tmp_path: pathlib.Path, module_dir: pathlib.Path, tokenizer: str, seed: str, cwd: pathlib.Path) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(pathlib.Path(dflow.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(module_dir), tokenizer], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_same_flow_has_the_same_fingerprint_in_other_processes_and_places(tmp_path):
    """Two processes with different hash seeds, working directories and tokenizer paths (the same
    content): every fingerprint is equal."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "user_flows.py").write_text(USER_MODULE)
    first = _run(tmp_path, tmp_path / "a", _tokenizer_copy(tmp_path / "t1"), "1", tmp_path / "a")
    second = _run(tmp_path, tmp_path / "b", _tokenizer_copy(tmp_path / "elsewhere" / "t2"), "4242", tmp_path)
    assert first == second
    assert len(first["plan"]) == 32 and len(set(first["nodes"])) == len(first["nodes"])
    # In this process too (another hash seed again).
    sys.path.insert(0, str(tmp_path / "a"))
    try:
        import user_flows

        plan = user_flows.build(_tokenizer_copy(tmp_path / "t3")).to_ir()
    finally:
        sys.path.remove(str(tmp_path / "a"))
        sys.modules.pop("user_flows", None)
    assert plan.fingerprint == first["plan"] and [n.fingerprint for n in plan.nodes] == first["nodes"]


def _module(source: str, name: str = "fp_user") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), f"/somewhere/{name}.py", "exec"), module.__dict__)
    return module


BASE = """
    LIMIT = 3
    def helper(w):
        return w[:LIMIT]
    def fn(s, sep=" ", *, upper=True):
        words = [helper(w) for w in s.split(sep)]
        return "-".join(w.upper() if upper else w for w in words)
"""


def _fn_fingerprint(source: str) -> str:
    flow = dflow.Flow("d", str)
    flow["out"] = flow["d"].run_python(_module(source).fn, return_type=str)
    return flow.fingerprint()


@pytest.mark.parametrize("change", [
    ("return \"-\".join", "return \"+\".join"),  # the body
    ("LIMIT = 3", "LIMIT = 4"),  # a global value it reads (through a helper)
    ("return w[:LIMIT]", "return w[1:LIMIT]"),  # a helper of the same module
    ("sep=\" \"", "sep=\",\""),  # a default
    ("upper=True", "upper=False"),  # a keyword-only default
])
def test_a_change_of_logic_changes_the_fingerprint(change):
    old, new = change
    assert old in BASE
    assert _fn_fingerprint(BASE) != _fn_fingerprint(BASE.replace(old, new))


def test_names_lines_files_and_docstrings_do_not_count():
    base = _fn_fingerprint(BASE)
    assert _fn_fingerprint("\n\n\n" + BASE) == base  # other line numbers
    assert _fn_fingerprint(BASE.replace("def fn(s", 'def fn(s').replace('    words =', '    """Docs."""\n        words =',
                                                                                    1)) == base
    flow = dflow.Flow("d", str)
    flow["out"] = flow["d"].run_python(_module(BASE, "other_name").fn, return_type=str)
    assert flow.fingerprint() == base  # another module name and file


def test_closures_and_versions_count():
    def make(n):
        return lambda s: s * n

    def fp(fn, **kw):
        flow = dflow.Flow("d", str)
        flow["out"] = flow["d"].run_python(fn, return_type=str, **kw)
        return flow.fingerprint()

    assert fp(make(2)) == fp(make(2))
    assert fp(make(2)) != fp(make(3))
    assert fp(make(2), version="2") != fp(make(2))
    assert fp(make(2), version=2) == fp(make(2), version="2")
    assert fp(make(2), version="2") != fp(make(2), version="3")
    assert fp(make(2), max_in_flight=None) == fp(make(2))
    with pytest.raises(TypeError, match="version must be a str or int"):
        fp(make(2), version=[1])


def _chunks(**kw):
    flow = dflow.Flow("d", str)
    return flow["d"].chunk_text(**kw)


def _prompt(template="Summarize: {chunk}", **kw):
    provider_kw = kw.pop("provider_kw", {})
    provider = dflow.OpenAIProvider(base_url=provider_kw.pop("base_url", "http://127.0.0.1:9/v1"),
                                    api_key=provider_kw.pop("api_key", "sk-one-1234567890"),
                                    model=provider_kw.pop("model", "m"), **provider_kw)
    chunks = _chunks(max_chars=100, overlap=10)
    chunks["s"] = chunks.prompt(template, provider=provider, **kw)
    return chunks.fingerprint()


def test_each_parameter_that_changes_results_changes_the_fingerprint(tmp_path):
    base = _chunks(max_chars=100, overlap=10).fingerprint()
    assert _chunks(max_chars=100, overlap=10).fingerprint() == base  # built again
    assert _chunks(max_chars=101, overlap=10).fingerprint() != base
    assert _chunks(max_chars=100, overlap=11).fingerprint() != base
    assert _chunks(max_tokens=100).fingerprint() != _chunks(max_tokens=101).fingerprint()

    p = _prompt()
    assert _prompt() == p
    assert _prompt("Summarise: {chunk}") != p  # the template
    assert _prompt(model="other") != p  # the op's model
    assert _prompt(provider_kw={"model": "m2"}) != p  # the provider's default model
    assert _prompt(provider_kw={"base_url": "http://127.0.0.1:10/v1"}) != p
    assert _prompt(max_tokens=5) != p and _prompt(temperature=0.5) != p
    assert _prompt(response_format={"type": "object", "properties": {"a": {"type": "string"}}}) != p
    assert _prompt(options={"top_p": 0.5}) != p
    # What changes no answer does not count: the key, rate limits, concurrency, retries.
    assert _prompt(provider_kw={"api_key": "sk-two-0987654321"}) == p
    assert _prompt(provider_kw={"requests_per_minute": 60, "max_concurrency": 2, "max_retries": 1}) == p


def test_a_tokenizer_counts_by_its_content_not_its_path(tmp_path):
    a = _tokenizer_copy(tmp_path / "a")
    b = _tokenizer_copy(tmp_path / "b")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n")

    def fp(tok):
        chunks = _chunks(max_tokens=8, tokenizer=tok)
        chunks["ids"] = chunks["chunk"].tokenize(tok)
        return chunks.to_ir()

    pa, pb, pv = fp(a), fp(b), fp(str(vocab))
    assert pa.fingerprint == pb.fingerprint
    assert pa.fingerprint != pv.fingerprint
    tokenizer_entry = [o for o in pa.objects if o.qualname == "Tokenizer"][0]
    assert tokenizer_entry.fingerprint == digest(dflow.Tokenizer.from_file(b))
    assert str(tmp_path) not in pa.SerializeToString().decode("latin-1")  # no path in the plan


def test_node_fingerprints_separate_op_identity_from_position():
    flow = dflow.Flow("d", str)
    flow["a"] = flow["d"].run_python(str.upper, return_type=str)
    flow["b"] = flow["a"].run_python(str.upper, return_type=str)
    plan = flow.to_ir()
    a, b = plan.nodes[1], plan.nodes[2]
    assert a.op_fingerprint == b.op_fingerprint  # the same op...
    assert a.fingerprint != b.fingerprint  # ...at another place (its input differs)
    renamed = dflow.Flow("x", str)
    renamed["a"] = renamed["x"].run_python(str.upper, return_type=str)
    renamed["b"] = renamed["a"].run_python(str.upper, return_type=str)
    other = renamed.to_ir()
    assert [n.fingerprint for n in other.nodes] == [n.fingerprint for n in plan.nodes]  # flow names do not count
    assert other.fingerprint != plan.fingerprint  # but the output's field names do


def test_return_types_and_modes_count():
    def fp(**kw):
        flow = dflow.Flow("d", str)
        flow["n"] = flow["d"].run_python(len, **kw)
        return flow.fingerprint()

    assert fp(return_type=int) != fp(return_type=float) != fp()
    assert fp(batch=True) != fp()


def test_sink_flows_count_their_sink_and_keep_their_fingerprint_after_running(tmp_path):
    flow = dflow.Flow("d", str)
    write = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "a")), flow["d"])
    before = write.fingerprint()
    write.collect_batch(["x", "y"])
    assert write.fingerprint() == before
    other = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "b")), flow["d"])
    assert other.fingerprint() != before


def test_digest_follows_classes_and_sets_whatever_the_hash_seed():
    assert digest(frozenset({"a", "b", "c"})) == digest(frozenset({"c", "b", "a"}))
    assert digest({"x": 1, "y": 2}) == digest({"y": 2, "x": 1})
    assert digest([1, 2]) != digest((1, 2)) != digest([2, 1])
    assert digest(1) != digest(1.0) != digest(True)

    class A:
        def __call__(self, s):
            return s

    class B:
        def __call__(self, s):
            return s + s

    assert digest(A()) != digest(B())
    loop = []
    loop.append(loop)
    assert digest(loop) == digest(loop)  # cycles end
