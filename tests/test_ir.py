import pathlib
import subprocess
import sys

import pytest

import daft_flow as dflow
from daft_flow.plan import flow_pb2 as ir
from daft_flow.plan.serialize import read_plan
from daft_flow.plan.trace import IR_VERSION, trace

ROOT = pathlib.Path(__file__).resolve().parents[1]


def upper(s: str) -> str:
    return s.upper()


def upper_batch(xs: list[str]) -> list[str]:
    return [x.upper() for x in xs]


async def upper_async(s: str) -> str:
    return s.upper()


def split(s: str) -> list[str]:
    return s.split()


def _flows():
    row = dflow.Flow("doc", str)
    row["up"] = row["doc"].run_python(upper)

    batch = dflow.Flow("doc", str)
    batch["up"] = batch["doc"].run_python(upper_batch, batch=True, batch_size=10)

    asy = dflow.Flow("doc", str)
    asy["up"] = asy["doc"].run_python(upper_async, max_in_flight=7)

    words = dflow.Flow("doc", str)["doc"].flat_map(split, field="word")
    words["up"] = words["word"].run_python(upper)

    target = dflow.Flow("url", str)
    target["up"] = target["url"].run_python(upper)
    untyped = dflow.Flow("doc", str).run_python(lambda s: s.split()).flat_map(target)

    chained = dflow.Flow(str).run_python(upper).chain(words)

    expr = dflow.Flow("doc", str)
    expr["n"] = expr["doc"].str.len() * 2 + 1
    expr = expr.filter((expr["n"] > 1) & expr["doc"].str.contains(r"\w", regex=True)).limit(5)
    expr["first"] = expr["doc"].str.split().list.get(0).str.upper().fill_null("-")
    return {"row": row, "batch": batch, "async": asy, "flat_map": words, "as_list": untyped, "chain": chained,
            "expressions": expr}


@pytest.mark.parametrize("name", list(_flows()))
def test_every_op_round_trips_through_bytes(name):
    flow = _flows()[name]
    traced = trace(flow)
    again = dflow.Flow.from_bytes(flow.to_bytes())
    assert trace(again).plan == traced.plan
    assert again.fingerprint() == flow.fingerprint()
    assert again.collect_batch(["a b", "c"]) == flow.collect_batch(["a b", "c"])
    assert traced.plan.ir_version == IR_VERSION
    assert dflow.Flow.from_bytes(again.to_bytes()).fingerprint() == flow.fingerprint()


def test_plan_contains_each_op_kind():
    flows = _flows()
    ops = {n: {node.WhichOneof("op") for node in trace(f).plan.nodes} for n, f in flows.items()}
    assert "python_udf" in ops["row"] and "as_list" in ops["as_list"]
    modes = {n: [node.python_udf.mode for node in trace(flows[n]).plan.nodes if node.HasField("python_udf")]
             for n in ("row", "batch", "async")}
    assert modes == {"row": [ir.PythonUdf.ROW], "batch": [ir.PythonUdf.BATCH], "async": [ir.PythonUdf.ASYNC]}
    chained = trace(flows["chain"]).plan
    assert [lvl.WhichOneof("origin") for lvl in chained.levels] == [None, "explode", "explode"]
    assert [lvl.explode.one_to_one for lvl in chained.levels] == [False, True, False]


def test_plan_bytes_carry_their_objects():
    flow = _flows()["flat_map"]
    restored = read_plan(flow.to_bytes())
    assert [n.name for n in restored.plan.nodes] == [n.name for n in trace(flow).plan.nodes]
    assert restored.objects[0]("a b") == ["a", "b"]
    assert all(entry.pickled for entry in restored.plan.objects)
    assert restored.plan.fingerprint == flow.fingerprint()


@pytest.mark.parametrize("version, words", [(IR_VERSION + 1, f"newer daft_flow (IR version {IR_VERSION + 1}); this "
                                                             f"daft_flow reads IR version {IR_VERSION}: upgrade"),
                                            (IR_VERSION - 1, f"older daft_flow (IR version {IR_VERSION - 1}); this "
                                                             f"daft_flow reads IR version {IR_VERSION}: build the flow "
                                                             "again")])
def test_other_ir_versions_are_clear_errors_in_both_directions(version, words):
    data = _flows()["row"].to_bytes()
    msg = ir.Plan.FromString(data)
    msg.ir_version = version
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        dflow.Flow.from_bytes(msg.SerializeToString())


def test_bytes_that_are_not_a_plan_or_another_kind_of_plan_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a daft_flow plan"):
        dflow.Flow.from_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ValueError, match="not a daft_flow plan"):
        dflow.Flow.from_bytes(b"")
    with pytest.raises(TypeError, match="bytes of a plan"):
        dflow.Flow.from_bytes("a string")
    data = _flows()["row"].to_bytes()
    with pytest.raises(ValueError, match="damaged"):
        dflow.Flow.from_bytes(data[:-7])
    sink = _flows()["row"].write_sink(dflow.ArrowSink())
    with pytest.raises(TypeError, match="hold a SinkFlow, not a Flow: use dflow.SinkFlow.from_bytes"):
        dflow.Flow.from_bytes(sink.to_bytes())
    with pytest.raises(TypeError, match="hold a Flow, not a Multisink"):
        dflow.Multisink.from_bytes(data)


def test_explain_names_levels_fields_and_ops():
    text = _flows()["chain"].explain()
    assert "flow 'doc.word'" in text and "flat_map" in text and "chain" in text
    assert "run_python(test_ir.upper)" in text or "upper" in text
    assert "word: str = input" in text


def test_unused_fields_are_not_traced():
    flow = dflow.Flow("doc", str)
    flow["a"] = flow["doc"].run_python(upper)
    child = flow["doc"].flat_map(split, field="w")
    plan = trace(child).plan
    assert "a" not in [n.name for n in plan.nodes]


def test_generated_code_matches_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
                    f"--pyi_out={tmp_path}", str(ROOT / "proto" / "flow.proto")], check=True)
    for name in ("flow_pb2.py", "flow_pb2.pyi"):
        checked_in = (ROOT / "daft_flow" / "plan" / name).read_text()
        assert (tmp_path / name).read_text() == checked_in, (
            f"daft_flow/plan/{name} is stale: regenerate with tools/gen-proto")


def test_a_plan_whose_function_cannot_be_pickled_names_it():
    import threading

    lock = threading.Lock()

    def guarded(s: str) -> str:
        with lock:
            return s

    flow = dflow.Flow("d", str)
    flow["g"] = flow["d"].run_python(guarded)
    assert flow.collect("x")["g"] == "x"
    with pytest.raises(TypeError) as info:
        flow.to_bytes()
    assert "guarded" in "".join(info.value.__notes__) and "cannot be pickled" in "".join(info.value.__notes__)
