"""Plans that travel: every op kind, built in a user's own module, turned into bytes, and run in a
fresh process that never imported that module (its directory is neither its cwd nor on its
sys.path): the same rows as in this process. Sinks write the same rows."""
from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys

import pytest

import daft_flow as dflow
from daft_flow.testing import FaultServer

PACKAGE_PARENT = str(pathlib.Path(dflow.__file__).resolve().parents[1])  # the daft_flow this process runs
KEY = "sk-travel-secret-0123456789abcdef"

USER_MODULE = '''
import asyncio
import pydantic
import daft_flow as dflow

SEPARATORS = {" ", "-", "_"}  # a set of strings: its order changes with PYTHONHASHSEED


class Title(pydantic.BaseModel):
    title: str
    words: int


def normalize(text):
    for sep in sorted(SEPARATORS):
        text = text.replace(sep, " ")
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return normalize(text).split()


class Tagger:
    def __init__(self, tag):
        self.tag = tag

    def __call__(self, word: str) -> str:
        return f"{self.tag}:{word}"


def shout_batch(xs: list[str]) -> list[str]:
    return [x.upper() for x in xs]


async def slow_len(x: str) -> int:
    await asyncio.sleep(0)
    return len(x)


def make_suffixer(suffix):
    return lambda s: s + suffix


def provider(base_url, key=None):
    return dflow.OpenAIProvider(base_url=base_url, api_key=key, api_key_env="TRAVEL_KEY", model="fault-chat",
                                embedding_model="fault-embed", max_retries=3, timeout=10.0)


def flows(base_url, key, tokenizer_path, sink_dir, s3_url):
    p = provider(base_url, key)
    out = {}
    row = dflow.Flow("doc", str)
    row["clean"] = row["doc"].run_python(normalize, return_type=str)
    row["tagged"] = row["clean"].run_python(Tagger("t"))
    row["suffixed"] = row["clean"].run_python(make_suffixer("!"), return_type=str)
    out["row"] = row
    batch = dflow.Flow("doc", str)
    batch["loud"] = batch["doc"].run_python(shout_batch, batch=True, batch_size=2, return_type=str)
    out["batch"] = batch
    asy = dflow.Flow("doc", str)
    asy["n"] = asy["doc"].run_python(slow_len, max_in_flight=3)
    out["async"] = asy
    per_word = dflow.Flow("doc", str)["doc"].flat_map(words, field="word")
    per_word["tag"] = per_word["word"].run_python(Tagger("w"))
    out["flat_map_fn"] = per_word
    target = dflow.Flow("w", str)
    target["tag"] = target["w"].run_python(Tagger("x"))
    out["flat_map_flow"] = dflow.Flow("doc", str).run_python(words).flat_map(target)
    out["chain"] = dflow.Flow("doc", str).run_python(normalize, return_type=str).chain(per_word)
    chars = dflow.Flow("doc", str).chunk_text(max_chars=12, overlap=3)
    chars["up"] = chars["chunk"].run_python(make_suffixer("?"), return_type=str)
    out["chunk_chars"] = chars
    tok = dflow.Tokenizer.from_file(tokenizer_path)
    tokens = dflow.Flow("doc", str).chunk_text(max_tokens=5, overlap_tokens=1, tokenizer=tok)
    tokens["ids"] = tokens["chunk"].tokenize(tok)
    out["chunk_tokens"] = tokens
    ids = dflow.Flow("doc", str)
    ids["ids"] = ids["doc"].tokenize(tokenizer_path, add_special_tokens=False)
    out["tokenize"] = ids
    doc = dflow.Flow("doc", str)
    chunks = doc["doc"].chunk_text(max_chars=20, overlap=0)
    chunks["summary"] = chunks.prompt("Document: {d}\\nChunk: {c}".format(d=doc["doc"], c=chunks["chunk"]),
                                      provider=p, max_tokens=12, temperature=0.2, options={"top_p": 0.9})
    chunks["title"] = chunks["chunk"].prompt("Title this", provider=p, response_format=Title)
    out["prompt"] = chunks
    emb = dflow.Flow("doc", str)
    emb["vec"] = emb["doc"].embed_text(provider=p)
    out["embed_text"] = emb
    files = dflow.Flow("path", str)
    files["file"] = files["path"].open_file()
    files["text"] = files["file"].read()
    files["data"] = files["file"].read(as_bytes=True)
    out["open_file_read"] = files
    sinks = {}
    src = dflow.Flow("doc", str)
    src["clean"] = src["doc"].run_python(normalize, return_type=str)
    cols = {"doc": src["doc"], "clean": src["clean"]}
    sinks["json_sink"] = src.write_sink(dflow.JSONFileSink(f"{sink_dir}/json"), cols)
    sinks["parquet_sink"] = src.write_sink(dflow.ParquetSink(f"{sink_dir}/parquet"), cols)
    sinks["lancedb_sink"] = src.write_sink(dflow.LanceDBSink(f"{sink_dir}/lance", "rows"), cols)
    sinks["arrow_sink"] = src.write_sink(dflow.ArrowSink(), cols)
    sinks["daft_sink"] = src.write_sink(dflow.DaftSink(), cols)
    sinks["s3_sink"] = src.write_sink(dflow.S3FileSink(s3_url), src["clean"])
    multi = dflow.Multisink([src.write_sink(dflow.JSONFileSink(f"{sink_dir}/multi_json"), cols),
                             src.write_sink(dflow.ArrowSink(), {"clean": src["clean"]})])
    return out, sinks, multi
'''

# Turns results into JSON-comparable data: rows (Files as their URL, bytes as hex) and, for sinks,
# what was written (read back from where the sink says it wrote).
NORMALIZE = '''
import json


def plain(value):
    import daft_flow as dflow
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dflow.File):
        return {"file": value.url}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float):
        return round(value, 5)
    return value


def written(result, sink):
    """The rows a SinkResult says were written, read back (sorted: part numbers differ per run)."""
    import glob
    import pyarrow.parquet as pq
    rows = []
    kind = type(sink).__name__
    if kind in ("ArrowSink", "DaftSink"):
        table = result.data if kind == "ArrowSink" else result.data.to_arrow()
        rows = table.to_pylist()
    elif kind == "JSONFileSink":
        for path in sorted(set(result.paths)):
            with open(path) as f:
                rows += [json.loads(line) for line in f]
    elif kind == "ParquetSink":
        for path in sorted(set(result.paths)):
            rows += pq.read_table(path).to_pylist()
    elif kind == "LanceDBSink":
        rows = [{"rows_written": result.rows_written}]
    elif kind == "S3FileSink":
        import fsspec
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        rows = [fs.cat(p).decode() for p in result.paths]
    return {"rows_written": result.rows_written, "failures": len(result.failures),
            "rows": sorted(json.dumps(plain(r), sort_keys=True) for r in rows)}
'''

CHILD = NORMALIZE + '''
import importlib.util
import pickle
import sys

import daft_flow as dflow

assert importlib.util.find_spec("travel_flows") is None, "the defining module must not be importable here"
spec = json.load(open(sys.argv[1]))
out = {}
for name, entry in spec["flows"].items():
    flow = dflow.Flow.from_bytes(bytes.fromhex(entry["bytes"]))
    again = pickle.loads(bytes.fromhex(entry["pickle"]))
    rows = flow.collect_batch(spec["inputs"][name])
    out[name] = {"rows": plain(rows), "fingerprint": flow.fingerprint(), "pickled_fingerprint": again.fingerprint(),
                 "explain": flow.explain()}
    if name == "row":
        out[name]["stream"] = plain(list(flow.stream(spec["inputs"][name])))
        out[name]["arrow"] = plain(flow.collect_arrow(spec["inputs"][name]).to_pylist())
        out[name]["collect"] = plain(flow.collect(spec["inputs"][name][0]))
for name, entry in spec["sinks"].items():
    sink_flow = dflow.SinkFlow.from_bytes(bytes.fromhex(entry["bytes"]))
    result = sink_flow.collect_batch(spec["sink_inputs"])
    out[name] = {"written": written(result, sink_flow.sink), "fingerprint": sink_flow.fingerprint()}
multi = dflow.Multisink.from_bytes(bytes.fromhex(spec["multi"]))
results = dflow.collect(multi, spec["sink_inputs"][0])
out["multisink"] = {"written": [written(r, s.sink) for r, s in zip(results, multi.sinks)],
                    "fingerprint": multi.fingerprint()}
print(json.dumps(out))
'''


@pytest.fixture
def user_module(tmp_path):
    """The user's module, importable here only while the test builds its flows."""
    src = tmp_path / "user_src"
    src.mkdir()
    (src / "travel_flows.py").write_text(USER_MODULE)
    sys.path.insert(0, str(src))
    try:
        import travel_flows

        yield travel_flows
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("travel_flows", None)


def test_every_op_kind_runs_the_same_in_a_fresh_process(tmp_path, user_module, s3):
    namespace: dict = {}
    exec(NORMALIZE, namespace)
    plain, written = namespace["plain"], namespace["written"]
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tokenizer_path = tok_dir / "tokenizer.json"
    shutil.copy(dflow.Tokenizer.default().path, tokenizer_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha beta gamma delta")
    (docs / "b.html").write_text("<html><body><p>Hello <b>there</b></p><script>x()</script></body></html>")
    s3.client().create_bucket(Bucket="travel")
    text_inputs = ["the quick-brown fox_jumps", "over the lazy dog", "pack my box with five dozen liquor jugs"]
    with FaultServer(retry_after=0.01, api_key=KEY) as server:
        flows, sinks, multi = user_module.flows(server.base_url, KEY, str(tokenizer_path), str(tmp_path / "sinks"),
                                                "s3://travel/out")
        inputs = {name: text_inputs for name in flows}
        inputs["open_file_read"] = [str(docs / "a.txt"), str(docs / "b.html")]
        spec: dict = {"flows": {}, "sinks": {}, "inputs": inputs, "sink_inputs": text_inputs}
        expected: dict = {}
        for name, flow in flows.items():
            expected[name] = {"rows": plain(flow.collect_batch(inputs[name])), "fingerprint": flow.fingerprint()}
            # Bytes made after the flow has run (its provider has a client, locks, a loop then).
            spec["flows"][name] = {"bytes": flow.to_bytes().hex(), "pickle": pickle.dumps(flow).hex()}
        for name, sink_flow in sinks.items():
            expected[name] = {"written": written(sink_flow.collect_batch(text_inputs), sink_flow.sink),
                              "fingerprint": sink_flow.fingerprint()}
            spec["sinks"][name] = {"bytes": sink_flow.to_bytes().hex()}
        results = dflow.collect(multi, text_inputs[0])
        expected["multisink"] = {"written": [written(r, s.sink) for r, s in zip(results, multi.sinks)],
                                 "fingerprint": multi.fingerprint()}
        spec["multi"] = multi.to_bytes().hex()
        tokenizer_path.unlink()  # the tokenizer travels by content
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
        env.update(PYTHONPATH=PACKAGE_PARENT, TRAVEL_KEY=server.api_key, PYTHONHASHSEED="12345")
        proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "spec.json")], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-5000:]
    got = json.loads(proc.stdout)
    assert set(got) == set(expected)
    for name, want in expected.items():
        have = got[name]
        assert have["fingerprint"] == want["fingerprint"], name
        if "rows" in want:
            assert have["rows"] == want["rows"], name
            assert have["pickled_fingerprint"] == want["fingerprint"], name
            assert "fingerprint " + want["fingerprint"][:16] in have["explain"]
        else:
            assert have["written"] == want["written"], name
    row = got["row"]
    assert row["stream"] == row["rows"] == row["arrow"] and row["collect"] == row["rows"][0]
    assert all(r["summary"].startswith("answer") for rows in expected["prompt"]["rows"] for r in rows)
    assert all(set(r["title"]) == {"title", "words"} for rows in expected["prompt"]["rows"] for r in rows)
    assert expected["open_file_read"]["rows"][1]["text"].split() == ["Hello", "there"]


def test_a_provider_without_its_key_says_which_variable_to_set(tmp_path, user_module):
    with FaultServer() as server:
        flows, _, _ = user_module.flows(server.base_url, KEY, dflow.Tokenizer.default().path, str(tmp_path), "s3://x/y")
        data = flows["embed_text"].to_bytes()
        env = {k: v for k, v in os.environ.items() if k not in ("TRAVEL_KEY",)}
        env["PYTHONPATH"] = PACKAGE_PARENT
        code = ("import sys, daft_flow as dflow\n"
                "flow = dflow.Flow.from_bytes(open(sys.argv[1], 'rb').read())\n"
                "flow.collect('x')\n")
        (tmp_path / "plan.bin").write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "plan.bin")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ProviderConfigError" in proc.stderr and "TRAVEL_KEY" in proc.stderr
    assert KEY not in proc.stderr and server.api_key not in proc.stderr
