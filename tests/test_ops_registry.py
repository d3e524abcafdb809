"""The op registry: every IR node kind and level origin has one class that explains, fingerprints,
restores and lowers it; trace, explain and the physical planner only dispatch through it."""
import pathlib
import shutil

import pytest

import daft_flow as dflow
from daft_flow.ops import registry
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.restore import restore_flow
from daft_flow.plan.trace import trace

ROOT = pathlib.Path(__file__).resolve().parents[1]


def words(s: str) -> list[str]:
    return s.split()


def upper(s: str) -> str:
    return s.upper()


async def shout(s: str) -> str:
    return s.upper() + "!"


def lengths(xs: list[str]) -> list[int]:
    return [len(x) for x in xs]


def every_op_flow() -> dflow.Flow:
    """One flow using every node kind and every level origin."""
    provider = dflow.OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="unused", model="m",
                                    embedding_model="e")
    doc = dflow.Flow("url", str)
    doc["file"] = doc["url"].open_file()
    doc["text"] = doc["file"].read()
    doc["size"] = doc["text"].run_python(lengths, batch=True, batch_size=8)
    doc["long"] = (doc["text"].str.strip().str.len() * 2 > 3) & ~doc["url"].str.contains(r"\.tmp$", regex=True)
    doc = doc.filter(doc["long"])
    chunks = doc["text"].chunk_text(max_tokens=16, overlap_tokens=2)
    chunks["ids"] = chunks["chunk"].tokenize()
    chunks["summary"] = chunks.prompt("Doc {d}\nChunk {c}".format(d=doc["text"], c=chunks["chunk"]), provider=provider,
                                      max_tokens=8, temperature=0.5)
    chunks["vec"] = chunks["chunk"].embed_text(provider=provider)
    target = dflow.Flow("w", str)
    target["loud"] = target["w"].run_python(shout)
    per_word = chunks["chunk"].run_python(lambda s: s.split()).flat_map(target)
    for name in ("ids", "summary", "vec"):
        per_word[name] = chunks[name]
    per_word["size"] = doc["size"]
    return dflow.Flow("d", str).run_python(upper).chain(per_word)


def test_every_node_kind_and_origin_has_one_registered_home():
    kinds = {f.name for f in ir.Node.DESCRIPTOR.oneofs_by_name["op"].fields}
    origins = {f.name for f in ir.Level.DESCRIPTOR.oneofs_by_name["origin"].fields} | {""}
    for kind in kinds:
        cls = registry.node_op(kind)
        assert cls.kind == kind
        assert cls.lower.__func__ is not registry.Expr.lower.__func__, kind
        if kind not in ("level_input", "level_attribute"):  # restored with their level
            assert cls.restore.__func__ is not registry.Expr.restore.__func__, kind
    for kind in origins:
        assert registry.level_origin(kind or None).kind == kind
    with pytest.raises(ValueError, match="unknown op kind 'nope'"):
        registry.node_op("nope")


def test_a_kind_registered_twice_is_refused():
    class Clash(registry.Expr):
        kind = "tokenize"

        def label(self) -> str:
            return "clash"

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Clash)


def test_trace_explain_and_lowering_have_no_op_chains():
    """No isinstance/WhichOneof dispatch on op kinds outside the ops' own modules."""
    for path in ("daft_flow/plan/trace.py", "daft_flow/plan/explain.py", "daft_flow/execution/physical.py"):
        text = (ROOT / path).read_text()
        assert "isinstance(expr" not in text and 'WhichOneof("op") ==' not in text, path
        for kind in ("python_udf", "llm_call", "tokenize", "render_template", "as_list", "chunk_text"):
            assert f'"{kind}"' not in text, (path, kind)


def test_every_op_is_restored_from_its_node():
    flow = every_op_flow()
    traced = trace(flow)
    kinds = {n.WhichOneof("op") for n in traced.plan.nodes}
    assert kinds == {f.name for f in ir.Node.DESCRIPTOR.oneofs_by_name["op"].fields}
    origins = {lvl.WhichOneof("origin") for lvl in traced.plan.levels}
    assert origins == {None, "explode", "chunk_text"}
    restored = restore_flow(traced.plan, traced.objects)
    again = trace(restored)
    assert again.plan == traced.plan
    assert [type(o) for o in again.objects] == [type(o) for o in traced.objects]
    assert restored.explain() == flow.explain()
    assert restored.fields == flow.fields


def test_restored_flow_keeps_its_current_field_and_can_grow():
    chunks = dflow.Flow("d", str).chunk_text(max_chars=5, overlap=0)
    traced = trace(chunks)
    restored = restore_flow(traced.plan, traced.objects)
    grown = restored.run_python(upper, name="up")  # acts on the current field, "chunk"
    rows = grown.collect("ab cd ef")
    assert [r["up"] for r in rows] == [r["chunk"].upper() for r in rows] == ["AB ", "CD EF"]
    assert rows == chunks.run_python(upper, name="up").collect("ab cd ef")


def test_a_loaded_tokenizer_runs_what_was_loaded(tmp_path):
    """Deleting or replacing the tokenizer file after loading changes nothing for the loaded one."""
    default = dflow.Tokenizer.default()
    path = tmp_path / "tokenizer.json"
    shutil.copy(default.path, path)
    tok = dflow.Tokenizer.from_file(path)
    chunks = dflow.Flow("d", str).chunk_text(max_tokens=4, overlap_tokens=0, tokenizer=tok)
    chunks["ids"] = chunks["chunk"].tokenize(tok)
    expected = chunks.collect("the quick brown fox jumps over the lazy dog")
    path.write_text("the\nquick\n")  # another vocabulary under the same name
    assert chunks.collect("the quick brown fox jumps over the lazy dog") == expected
    path.unlink()
    assert chunks.collect("the quick brown fox jumps over the lazy dog") == expected
    assert expected[0]["ids"] == default.encode(expected[0]["chunk"])


def test_a_tokenizer_path_is_loaded_when_the_op_is_built(tmp_path):
    default = dflow.Tokenizer.default()
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n")
    flow = dflow.Flow("d", str)
    flow["ids"] = flow["d"].tokenize(str(path))
    path.unlink()
    assert flow.collect("hello world")["ids"] == [2, 4, 5, 3]
    with pytest.raises(ValueError, match="cannot open tokenizer file"):
        flow["d"].tokenize(str(path))
    assert default.encode("hello") != [2, 4, 3]


def test_chaining_an_untyped_value_gives_it_the_flow_s_type():
    words = dflow.Flow(str)["input"].flat_map(str.split, field="w")
    chained = dflow.Flow(str).run_python(str.upper).chain(words)  # str.upper has no annotations
    assert [r["w"] for r in chained.collect("a b")] == ["A", "B"]
    wrong = dflow.Flow(str).run_python(lambda s: 5).chain(words)
    (rows,) = wrong.collect_batch(["x"], on_error="return")
    assert isinstance(rows[0], dflow.RowFailure) and isinstance(rows[0].error, TypeError)
    assert "as_type" in rows[0].op and "expected str" in str(rows[0].error)


def test_failed_child_rows_follow_their_input_s_surviving_rows():
    def check(w: str) -> str:
        if w == "bad":
            raise ValueError("bad word")
        return w

    words = dflow.Flow("doc", str)["doc"].flat_map(str.split, field="w", return_type=list[str])
    words["ok"] = words["w"].run_python(check, return_type=str)
    (rows,) = words.collect_batch(["one bad two"], on_error="return")
    assert [r["ok"] for r in rows[:2]] == ["one", "two"]
    assert isinstance(rows[2], dflow.RowFailure) and "bad word" in str(rows[2].error)
