"""Retries: a failed row (with its subtree) comes back in a retry batch; its siblings and
ancestors are not computed again, sinks never write a row twice, and every row is counted once."""
import collections
import json
import threading

import pytest

import daft_flow as dflow

FAST = dflow.Retry(max_attempts=2, initial_delay=0.001, max_delay=0.01)


class Flaky:
    """Fails the first ``fails`` calls for each value that ``bad(value)`` picks; counts calls."""

    def __init__(self, fails=1, bad=lambda v: True, error=ConnectionError):
        self.fails, self.bad, self.error = fails, bad, error
        self.calls = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self.lock:
            self.calls[value] += 1
            n = self.calls[value]
        if self.bad(value) and n <= self.fails:
            raise self.error(f"flaky on {value!r} (call {n})")
        return value.upper()


def accounting_holds(report, inputs):
    acc = report.accounting
    for name, a in acc.items():
        assert a["rows"] == a["succeeded"] + a["failed"] + a["filtered"], (name, a)
    root = next(iter(acc.values()))
    assert root["rows"] == inputs
    return acc


def test_a_once_flaky_function_succeeds_under_two_attempts():
    flaky = Flaky()
    doc = dflow.Flow("doc", str)
    doc["up"] = doc["doc"].run_python(flaky, return_type=str)
    inputs = [f"d{i}" for i in range(50)]
    with pytest.raises(dflow.FlowRunError) as e:
        doc.collect_batch(inputs)
    assert len(e.value.failures) == 50 and all(f.attempts == 1 for f in e.value.failures)

    flaky.calls.clear()
    retried = doc.with_policy(retry=FAST)
    assert retried.collect_batch(inputs) == [{"doc": s, "up": s.upper()} for s in inputs]
    assert set(flaky.calls.values()) == {2}
    acc = accounting_holds(retried.last_run(), 50)
    assert acc["doc"]["succeeded"] == 50 and acc["doc"]["failed"] == 0
    assert retried.last_run().flows["doc"].retries == 50
    assert retried.last_run().ops["up"].retries == 50


@pytest.mark.parametrize("mode", ["batch", "async"])
def test_batch_and_async_functions_are_retried_too(mode):
    seen = collections.Counter()

    def batch_fn(values: list) -> list:
        for v in values:
            seen[v] += 1
        if any(seen[v] == 1 for v in values):
            raise TimeoutError("the service dropped the batch")
        return [v.upper() for v in values]

    async def async_fn(v: str) -> str:
        seen[v] += 1
        if seen[v] == 1:
            raise ConnectionResetError("peer reset")
        return v.upper()

    doc = dflow.Flow("doc", str).with_policy(retry=FAST)
    doc["up"] = doc["doc"].run_python(batch_fn if mode == "batch" else async_fn, return_type=str,
                                      batch=mode == "batch")
    out = doc.collect_batch([f"x{i}" for i in range(20)])
    assert [r["up"] for r in out] == [f"X{i}" for i in range(20)]
    accounting_holds(doc.last_run(), 20)


def test_attempts_are_spent_then_the_row_fails_with_its_count():
    flaky = Flaky(fails=10, bad=lambda v: v == "bad")
    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=3, initial_delay=0.001))
    doc["up"] = doc["doc"].run_python(flaky, return_type=str)
    out = doc.collect_batch(["a", "bad", "c"], on_error="return")
    assert out[0]["up"] == "A" and out[2]["up"] == "C"
    failure = out[1]
    assert isinstance(failure, dflow.RowFailure) and isinstance(failure.error, ConnectionError)
    assert failure.attempts == 3 and "after 3 attempts" in str(failure)
    assert flaky.calls["bad"] == 3 and flaky.calls["a"] == 1
    acc = accounting_holds(doc.last_run(), 3)
    assert acc["doc"] == {"rows": 3, "succeeded": 2, "failed": 1, "dead_lettered": 0, "skipped": 0, "filtered": 0}
    assert doc.last_run().flows["doc"].retries == 2


def test_only_the_errors_retry_on_names_are_retried():
    flaky = Flaky(fails=5, error=ValueError)
    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=4, initial_delay=0.001,
                                                               on=(ConnectionError, TimeoutError)))
    doc["up"] = doc["doc"].run_python(flaky, return_type=str)
    out = doc.collect_batch(["a"], on_error="return")
    assert out[0].attempts == 1 and flaky.calls["a"] == 1


def test_a_retried_chunk_does_not_recompute_its_siblings_or_parent():
    parent_calls = collections.Counter()

    def words(doc: str) -> int:
        parent_calls[doc] += 1
        return len(doc.split())

    flaky = Flaky(bad=lambda chunk: "w3" in chunk)
    doc = dflow.Flow("doc", str)
    doc["words"] = doc["doc"].run_python(words)
    chunks = doc["doc"].chunk_text(max_chars=12, overlap=0).with_policy(retry=FAST)
    chunks["up"] = chunks["chunk"].run_python(flaky, return_type=str)
    docs = ["w0 w1 w2 w3 w4 w5 w6 w7", "a b c d e f g h i j"]
    rows = chunks.collect_batch(docs, include_parents=["words"])
    # Rows of each input in chunk order, the retried one in its place.
    assert [[r["chunk_index"] for r in rs] for rs in rows] == [list(range(len(rs))) for rs in rows]
    assert "".join(r["up"] for r in rows[0]).replace(" ", "") == docs[0].upper().replace(" ", "")
    assert all(r["words"] == 8 for r in rows[0])
    retried = [c for c, n in flaky.calls.items() if n > 1]
    assert len(retried) == 1 and "w3" in retried[0]
    assert all(n == 1 for c, n in flaky.calls.items() if c not in retried)
    assert parent_calls == {docs[0]: 1, docs[1]: 1}
    acc = accounting_holds(chunks.last_run(), 2)
    assert acc["doc.chunks"]["failed"] == 0 and acc["doc.chunks"]["rows"] == sum(len(r) for r in rows)


def test_a_retried_root_row_is_its_input_again_with_its_row_id():
    flaky = Flaky(bad=lambda v: v in ("b", "d"))
    doc = dflow.Flow("doc", str)
    doc["up"] = doc["doc"].run_python(flaky, return_type=str)
    clean = dflow.Flow("doc", str)
    clean["up"] = clean["doc"].run_python(str.upper, return_type=str)
    inputs = list("abcdef")
    table = doc.with_policy(retry=FAST).collect_arrow(inputs, lineage=True)
    expected = clean.collect_arrow(inputs, lineage=True)
    assert sorted(table.to_pylist(), key=lambda r: r["_input_index"]) == expected.to_pylist()


def test_sinks_write_every_row_once_through_retries(tmp_path):
    flaky = Flaky(bad=lambda chunk: chunk.startswith("b"))
    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=2, overlap=0).with_policy(retry=dflow.Retry(max_attempts=3, initial_delay=0.001))
    chunks["up"] = chunks["chunk"].run_python(flaky, return_type=str)
    out, arrow = tmp_path / "out", dflow.ArrowSink()
    to_files = chunks.write_sink(dflow.JSONFileSink(str(out)), {"up": chunks["up"]})
    to_memory = chunks.write_sink(arrow, {"up": chunks["up"], "i": chunks["chunk_index"]})
    docs = [" ".join("abcdefgh"[(i + k) % 8] for k in range(6)) for i in range(40)]
    files, memory = dflow.Multisink([to_files, to_memory]).collect_batch(docs)
    expected = sum(len(d.split()) for d in docs)
    written = [json.loads(line) for f in sorted(out.iterdir()) for line in f.read_text().splitlines()]
    assert files.rows_written == memory.rows_written == len(written) == expected
    assert sorted(r["up"].strip() for r in written) == sorted(w.upper() for d in docs for w in d.split())
    assert any("-retry" in f.name for f in out.iterdir())
    assert memory.data.num_rows == expected
    assert not files.failures and not memory.failures


def test_a_row_waiting_for_its_retry_does_not_hold_up_the_others():
    released = threading.Event()

    def slow_once(v: str) -> str:
        if v == "first" and not released.is_set():
            released.set()
            raise ConnectionError("try again later")
        return v

    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=2, initial_delay=0.3, jitter=False))
    doc["v"] = doc["doc"].run_python(slow_once, return_type=str)
    inputs = ["first"] + [f"x{i}" for i in range(300)]
    order = [r["doc"] for r in doc.stream(inputs, ordered=True)]
    # ordered=True keeps the order of first attempts; a retried row comes when its retry ends.
    assert order[-1] == "first" and order[:-1] == inputs[1:]
    accounting_holds(doc.last_run(), 301)


def test_stream_collect_and_collect_arrow_see_retried_child_rows():
    flaky = Flaky(bad=lambda chunk: "x" in chunk)
    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=4, overlap=0).with_policy(retry=FAST)
    chunks["up"] = chunks["chunk"].run_python(flaky, return_type=str)
    text = "aa bb xx cc dd"
    assert [r["up"].strip() for r in chunks.collect(text)] == ["AA", "BB", "XX", "CC", "DD"]
    streamed = [r["up"].strip() for r in chunks.stream([text, text])]
    assert sorted(streamed) == sorted(["AA", "BB", "XX", "CC", "DD"] * 2)
    table = chunks.collect_arrow([text])
    assert sorted(v.strip() for v in table.column("up").to_pylist()) == ["AA", "BB", "CC", "DD", "XX"]


def test_ordered_stream_keeps_first_attempts_in_order_and_yields_retries_when_done():
    flaky = Flaky(bad=lambda value: value.endswith("3"))
    doc = dflow.Flow("doc", str).with_policy(retry=FAST)
    doc["up"] = doc["doc"].run_python(flaky, return_type=str)
    inputs = [f"d{i}" for i in range(40)]
    rows = list(doc.stream(inputs, ordered=True, lineage=True, batch_rows=8, first_batch_rows=8))
    first = [r["_input_index"] for r in rows if not r["doc"].endswith("3")]
    assert first == sorted(first) and len(first) == 36  # first attempts keep the input order
    assert sorted(r["_input_index"] for r in rows) == list(range(40))  # retried rows too, once each
    assert all(r["up"] == r["doc"].upper() for r in rows)
    assert doc.collect_batch(inputs) == [{"doc": s, "up": s.upper()} for s in inputs]  # put back in place
