"""Failure policies in checkpointed runs: a dead-lettered row's input counts as done, so a resumed
run does not run it again and keeps the earlier attempt's dead letters; an input with rows in a
retry is committed once its retries are back (also across SIGKILLs)."""
import glob
import json


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


def _retrying(flaky):
    doc = dflow.Flow("doc", str)
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str]).with_policy(
        retry=dflow.Retry(max_attempts=3, initial_delay=0.001, max_delay=0.01))
    words["up"] = words["item"].run_python(flaky, return_type=str)
    return words


class FlakyOnce:
    """Fails the first attempt of the words in ``flaky`` and every attempt of those in ``failing``."""

    def __init__(self, flaky: set[str]) -> None:
        self.flaky = set(flaky)

    def __call__(self, w: str) -> str:
        calls.append(w)
        if w in failing:
            raise ValueError(f"failing on {w}")
        if w in self.flaky:
            self.flaky.discard(w)
            raise ConnectionError(f"flaky on {w}")
        return w.upper()

    def __dflow_fingerprint__(self) -> str:
        return "flaky-once"


FLAKY = {"w1b", "w4a", "w4c", "w9b"}


def test_a_checkpointed_run_with_retries_commits_inputs_once_their_retries_are_back(tmp_path):
    fresh = _retrying(FlakyOnce(FLAKY)).collect_batch(DOCS, on_error="return", batch_rows=3)
    calls.clear()
    failing.add("w7a")  # retried until its attempts run out: input 7 is not done
    ckpt = str(tmp_path / "ckpt")
    first = _retrying(FlakyOnce(FLAKY)).collect_batch(DOCS, on_error="return", batch_rows=3, checkpoint=ckpt)
    assert [[r for r in rows if isinstance(r, dict)] for i, rows in enumerate(first) if i != 7] == \
        [[r for r in rows if isinstance(r, dict)] for i, rows in enumerate(fresh) if i != 7]
    with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    assert [r[:2] for r in manifest["done"]] == [[0, 7], [8, 12]] and not manifest["complete"]
    calls.clear()
    failing.clear()
    second = _retrying(FlakyOnce(set())).collect_batch(DOCS, on_error="return", batch_rows=3, checkpoint=ckpt)
    assert sorted(calls) == ["w7a", "w7b", "w7c"]  # only the input that was not done runs again
    assert second == fresh  # the retried inputs' rows come back from the checkpoint in their order
    with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
        assert json.load(f)["complete"]


def test_a_checkpointed_sink_run_with_retries_writes_each_row_once(tmp_path):
    out, ckpt = tmp_path / "out", str(tmp_path / "ckpt")
    failing.add("w3c")
    words = _retrying(FlakyOnce(FLAKY))
    sink = words.write_sink(dflow.JSONFileSink(str(out)), {"up": words["up"]})
    result = sink.collect_batch(DOCS, on_error="return", batch_rows=3, checkpoint=ckpt)
    assert result.rows_written == 35 and [f.input_index for f in result.failures] == [3]
    failing.clear()
    words = _retrying(FlakyOnce(FLAKY))
    sink = words.write_sink(dflow.JSONFileSink(str(out)), {"up": words["up"]})
    sink.collect_batch(DOCS, batch_rows=3, checkpoint=ckpt)
    assert sorted(r["up"] for r in read_jsonl(out)) == sorted(w.upper() for d in DOCS for w in d.split())


def test_sigkill_during_retries_then_resume_writes_every_row_once(tmp_path):
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, DFLOW_PROGRESS="0",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(dflow.__file__))))
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
    worker = [sys.executable, "-P", os.path.join(here, "retry_crash_worker.py"), ckpt, out]
    rng = random.Random(7)
    progress: list[tuple[int, int]] = []  # inputs done, and with rows committed but retries out, per kill
    for _ in range(3):
        proc = subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not os.path.exists(f"{ckpt}/manifest.json") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(1.2, 2.5))
        assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
            m = json.load(f)
        progress.append((sum(b - a for a, b, _ in m["done"]), len(m["partial"])))
    done = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    print("retry crash test: done and partial inputs after each kill:", progress)
    assert sum(progress[-1]) > 0 and progress[0][0] < 120, progress  # the kills came mid-run, after commits
    from retry_crash_worker import DOCS as docs

    expected = sorted((d[:12], k) for d in docs for k in range(len(dflow.Flow("d", str)["d"].chunk_text(
        max_chars=30, overlap=0).collect(d))))
    json_rows = [(r["doc"][:12], r["chunk_index"]) for r in read_jsonl(f"{out}/json")]
    pq_rows = []
    for path in sorted(glob.glob(f"{out}/parquet/*.parquet")):
        t = pq.read_table(path)
        pq_rows += [(d[:12], c) for d, c in zip(t.column("doc").to_pylist(), t.column("chunk_index").to_pylist())]
    assert sorted(json_rows) == expected and sorted(pq_rows) == expected  # each row exactly once
    assert all(r["up"] == r["up"].upper() for r in read_jsonl(f"{out}/json"))
    with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
        assert json.load(f)["complete"]
