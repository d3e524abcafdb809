"""Failure policies in checkpointed runs: a dead-lettered row's input counts as done, so a resumed
run does not run it again and keeps the earlier attempt's dead letters; retries are refused with
a clear error (a commit does not wait for rows in a retry yet)."""

import pytest

import daft_flow as dflow
from jsonl_records import read_jsonl

failing: set[str] = set()
calls: list[str] = []


class Upper:
    """Fails the words in ``failing`` and records its calls; its fingerprint does not follow them."""

    def __call__(self, w: str) -> str:
        calls.append(w)
        if w in failing:
            raise ValueError(f"failing on {w}")
        return w.upper()

    def __dflow_fingerprint__(self) -> str:
        return "upper"


class Length:
    """The document's own op: fails the documents in ``failing`` (not dead-lettered: no policy)."""

    def __call__(self, d: str) -> int:
        if d in failing:
            raise RuntimeError(f"cannot measure {d}")
        return len(d)

    def __dflow_fingerprint__(self) -> str:
        return "length"


@pytest.fixture(autouse=True)
def _reset():
    failing.clear()
    calls.clear()


DOCS = [f"w{i}a w{i}b w{i}c" for i in range(12)]


def _sink(out, dead):
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(Length(), return_type=int)
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str]).with_policy(
        dead_letter=dflow.JSONFileSink(str(dead)))
    words["up"] = words["item"].run_python(Upper(), return_type=str)
    return words.write_sink(dflow.JSONFileSink(str(out)), {"doc": doc["doc"], "n": doc["n"], "up": words["up"]})


def test_a_resumed_run_does_not_run_dead_lettered_rows_again(tmp_path):
    out, dead, ckpt = tmp_path / "out", tmp_path / "dead", str(tmp_path / "ckpt")
    failing.update({"w3b", "w7a", DOCS[5]})  # two words dead-lettered; document 5 fails (no policy)
    first = _sink(out, dead).collect_batch(DOCS, on_error="return", checkpoint=ckpt)
    assert {f.input_index for f in first.failures if not f.dead_lettered} == {5}
    assert sorted(r["row_id"] for r in read_jsonl(dead)) and len(read_jsonl(dead)) == 2
    failing.clear()
    calls.clear()
    second = _sink(out, dead).collect_batch(DOCS, on_error="return", checkpoint=ckpt)
    assert sorted(calls) == sorted(DOCS[5].split())  # only the failed document ran again
    assert not second.failures
    dead_letters = read_jsonl(dead)  # the first attempt's dead letters are still there, once each
    assert sorted((r["input_index"], r["error_type"]) for r in dead_letters) == [(3, "ValueError"), (7, "ValueError")]
    written = sorted(r["up"] for r in read_jsonl(out))
    expected = sorted(w.upper() for d in DOCS for w in d.split() if w not in ("w3b", "w7a"))
    assert written == expected  # every other word once, the dead-lettered ones only in the dead letters


def test_a_resumed_collect_batch_keeps_dead_lettered_inputs_in_their_places(tmp_path):
    ckpt, dead = str(tmp_path / "ckpt"), tmp_path / "dead"

    def flow():
        doc = dflow.Flow("doc", str).with_policy(dead_letter=dflow.JSONFileSink(str(dead)))
        doc["up"] = doc["doc"].run_python(Upper(), return_type=str)
        return doc

    failing.update({DOCS[2], DOCS[9]})  # dead-lettered in the first attempt
    fresh = flow().collect_batch(DOCS[:6], on_error="return", checkpoint=ckpt)  # an attempt that stops at 6
    assert [isinstance(r, dflow.RowFailure) for r in fresh] == [False, False, True, False, False, False]
    calls.clear()
    failing.clear()  # a dead-lettered input is done: the resumed call does not run it again
    resumed = flow().collect_batch(DOCS, on_error="return", checkpoint=ckpt)
    assert DOCS[2] not in calls and len(calls) == 6
    assert len(resumed) == len(DOCS)
    assert [r.input_index for r in resumed if isinstance(r, dflow.RowFailure)] == [2]
    failure = resumed[2]
    assert failure.dead_lettered and failure.field == "up" and isinstance(failure.error, ValueError)
    assert "failing on" in str(failure.error)
    assert [r["up"] for r in resumed if isinstance(r, dict)] == [d.upper() for i, d in enumerate(DOCS) if i != 2]
    again = flow().collect_batch(DOCS, checkpoint=ckpt)  # complete: nothing runs; dead letter as None
    assert again[2] is None and again[0] == {"doc": DOCS[0], "up": DOCS[0].upper()} and len(again) == len(DOCS)


def test_a_checkpointed_run_refuses_a_retry_policy_by_name(tmp_path):
    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=2))
    doc["up"] = doc["doc"].run_python(Upper(), return_type=str)
    with pytest.raises(ValueError, match="flow 'doc' retries failed rows .* checkpoint= does not support"):
        doc.collect_batch(DOCS, checkpoint=str(tmp_path / "ckpt"))
    sink = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), doc["up"])
    with pytest.raises(ValueError, match="flow 'doc' retries failed rows"):
        sink.collect_batch(DOCS, checkpoint=str(tmp_path / "ckpt2"))
    assert not calls and not (tmp_path / "out").exists()
