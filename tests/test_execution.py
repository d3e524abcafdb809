import itertools

import pyarrow as pa
import pytest

import daft_flow as dflow


def words_flow():
    doc = dflow.Flow("document", str)
    doc["length"] = doc["document"].run_python(len, return_type=int)

    def split(s: str) -> list[str]:
        return s.split()

    words = doc["document"].flat_map(split, field="word")

    def describe(word: str, document: str) -> str:
        return f"{word}/{len(document)}"

    words["described"] = words["word"].run_python(describe, doc["document"])
    return doc, words


def test_collect_root_flow_returns_one_row():
    doc, _ = words_flow()
    assert doc.collect("a bc") == {"document": "a bc", "length": 4}


def test_collect_child_flow_returns_its_rows_reading_parent_fields():
    _, words = words_flow()
    assert words.collect("to be") == [
        {"word": "to", "described": "to/5"},
        {"word": "be", "described": "be/5"},
    ]


def test_collect_batch_accepts_generators_and_keeps_input_order():
    doc, words = words_flow()
    inputs = (f"w{i} x" for i in range(1000))
    results = words.collect_batch(inputs, batch_rows=64)
    assert len(results) == 1000
    assert results[999] == [{"word": "w999", "described": "w999/6"}, {"word": "x", "described": "x/6"}]


def test_empty_input_and_empty_children():
    doc, words = words_flow()
    assert doc.collect_batch([]) == []
    assert words.collect_batch(["", "   "]) == [[], []]
    assert list(words.stream([])) == []
    table = words.collect_arrow([])
    assert table.num_rows == 0 and table.column_names == ["word", "described"]


def test_none_values_reach_functions_and_come_back():
    flow = dflow.Flow("x", str | None)

    def mark(x: str | None) -> str:
        return "none" if x is None else x

    flow["y"] = flow["x"].run_python(mark)
    flow["z"] = flow["x"].run_python(lambda x: None, return_type=str)
    assert flow.collect_batch([None, "a"]) == [{"x": None, "y": "none", "z": None}, {"x": "a", "y": "a", "z": None}]


def test_unicode_round_trips():
    texts = ["héllo wörld", "日本語のテキスト", "emoji 🎉🚀", "combining e\u0301", "rtl שלום", "\x00nul", ""]
    flow = dflow.Flow("t", str)
    flow["rev"] = flow["t"].run_python(lambda s: s[::-1], return_type=str)
    flow["n"] = flow["t"].run_python(len, return_type=int)
    assert flow.collect_batch(texts) == [{"t": t, "rev": t[::-1], "n": len(t)} for t in texts]


def test_lone_surrogate_result_fails_the_row_not_the_run():
    flow = dflow.Flow("t", str)
    flow["bad"] = flow["t"].run_python(lambda s: s + "\ud800", return_type=str)
    with pytest.raises(dflow.FlowRunError) as e:
        flow.collect_batch(["a"])
    assert "UTF-8" in str(e.value.failures[0].error)


def test_100mb_string_value():
    big = "x" * (100 * 2**20)
    flow = dflow.Flow("t", str)
    flow["n"] = flow["t"].run_python(len, return_type=int)
    flow["tail"] = flow["t"].run_python(lambda s: s[-3:], return_type=str)
    (row,) = flow.collect_batch([big, "abc"])[:1]
    assert row["n"] == len(big) and row["tail"] == "xxx" and row["t"] == big


def test_stream_ordered_and_unordered_yield_every_row():
    doc, words = words_flow()
    inputs = [f"a{i} b{i}" for i in range(500)]
    ordered = [r["word"] for r in words.stream(inputs, batch_rows=16)]
    assert ordered == [w for s in inputs for w in s.split()]
    unordered = [r["word"] for r in words.stream(inputs, ordered=False, batch_rows=16)]
    assert sorted(unordered) == sorted(ordered)


def test_stream_shows_first_rows_before_the_input_is_exhausted():
    pulled = []

    def inputs():
        for i in range(100_000):
            pulled.append(i)
            yield str(i)

    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(str.upper, return_type=str)
    stream = flow.stream(inputs())
    first = next(stream)
    assert first == {"x": "0", "y": "0"}
    assert len(pulled) < 100_000
    stream.close()


def test_breaking_out_of_stream_stops_the_run(no_leaked_threads):
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
    for row in flow.stream(itertools.count(), batch_rows=128):
        if row["x"] == 1000:
            break
    # the infinite input stopped being pulled; the fixture checks the runtime threads are gone


def test_batch_form_gets_lists_or_arrow_arrays():
    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(lambda xs: [len(x) for x in xs], batch=True, return_type=int)

    def lens(xs: pa.Array) -> pa.Array:
        assert isinstance(xs, pa.Array)
        return pa.compute.utf8_length(xs)

    flow["m"] = flow["x"].run_python(lens, batch=True, return_type=int)
    assert flow.collect_batch(["ab", "c"]) == [{"x": "ab", "n": 2, "m": 2}, {"x": "c", "n": 1, "m": 1}]


def test_batch_size_splits_calls():
    sizes = []

    def record(xs: list[str]) -> list[int]:
        sizes.append(len(xs))
        return [len(x) for x in xs]

    flow = dflow.Flow("x", str)
    flow["n"] = flow["x"].run_python(record, batch=True, batch_size=10)
    flow.collect_batch([str(i) for i in range(25)])
    assert max(sizes) <= 10 and sum(sizes) == 25


def test_async_functions_run_concurrently_within_max_in_flight():
    import asyncio

    running = {"now": 0, "peak": 0}

    async def slow(x: int) -> int:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        return x * 2

    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(slow, max_in_flight=8)
    assert flow.collect_batch(range(100)) == [{"x": i, "y": 2 * i} for i in range(100)]
    assert 1 < running["peak"] <= 8


def test_flat_map_of_another_flow_and_chain():
    url = dflow.Flow("url", str)
    url["host"] = url["url"].run_python(lambda u: u.split("/")[2], return_type=str)
    listing = dflow.Flow("listing", str).run_python(lambda s: s.split(","), return_type=list[str]).flat_map(url)
    assert listing.collect("http://a/x,http://b/y") == [
        {"url": "http://a/x", "host": "a"},
        {"url": "http://b/y", "host": "b"},
    ]
    _, words = words_flow()
    chained = dflow.Flow(str).run_python(lambda s: s.strip(), return_type=str).chain(words)
    assert chained.collect("  hi there ") == [{"word": "hi", "described": "hi/8"},
                                              {"word": "there", "described": "there/8"}]


def test_untyped_function_values_flow_through_as_python_objects():
    flow = dflow.Flow("x", int)
    flow["obj"] = flow["x"].run_python(lambda x: {"set": {x}})
    flow["back"] = flow["obj"].run_python(lambda o: sorted(o["set"])[0], return_type=int)
    assert flow.collect(4) == {"x": 4, "obj": {"set": {4}}, "back": 4}


def test_row_ids_are_stable_and_children_derive_from_parents():
    _, words = words_flow()
    a = words.collect_arrow(["x y", "z"], lineage=True)
    b = words.collect_arrow(["z", "x y"], lineage=True)
    ids_a = dict(zip(a["word"].to_pylist(), a["_row_id"].to_pylist()))
    ids_b = dict(zip(b["word"].to_pylist(), b["_row_id"].to_pylist()))
    assert ids_a == ids_b and len(set(ids_a.values())) == 3
    assert a["_input_index"].to_pylist() == [0, 0, 1]


def test_collect_arrow_is_the_bulk_form():
    doc, _ = words_flow()
    table = doc.collect_arrow([f"{i}" * 3 for i in range(10_000)])
    assert table.num_rows == 10_000
    assert table.schema.field("length").type == pa.int64()
    assert table["length"].to_pylist()[123] == 9


def test_memory_budget_bounds_what_is_in_flight():
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].run_python(str.upper, return_type=str)
    flow["z"] = flow["y"].run_python(lambda s: s[::-1], return_type=str)
    row = "a" * 1024
    baseline = proc.memory_info().rss
    peak = baseline
    for i, _ in enumerate(flow.stream((row for _ in range(300_000)), memory_budget="32MB")):
        if i % 10_000 == 0:
            peak = max(peak, proc.memory_info().rss)
    # 300 MB of input went through; what stayed resident is bounded by the budget, not the input size
    assert peak - baseline < 150 * 2**20
