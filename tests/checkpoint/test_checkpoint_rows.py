"""checkpoint= on collect_batch, collect_arrow and stream: a resumed call runs only what is not
done and returns every row; a checkpoint of other inputs or another plan is refused."""
import json
import os

import numpy as np
import pyarrow as pa
import pytest

import daft_flow as dflow
from daft_flow.checkpoint import CheckpointError

calls: list[int] = []
failing: set[int] = set()


class Flaky:
    """A function object whose failures a test switches on and off; its state is not data that
    counts in its fingerprint (``__dflow_fingerprint__``)."""

    def __call__(self, x: int) -> int:
        calls.append(x)
        if x in failing:
            raise ValueError(f"failing on {x}")
        return x * 10

    def __dflow_fingerprint__(self) -> str:
        return "flaky"


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    failing.clear()


class WordToInt:
    def __call__(self, w: str) -> int:
        if w == "bad" and failing:
            raise ValueError("bad word")
        return 1 if w == "bad" else int(w)

    def __dflow_fingerprint__(self) -> str:
        return "word-to-int"


def times_ten() -> dflow.Flow:
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Flaky(), return_type=int)
    return flow


def manifest(path) -> dict:
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def test_a_resumed_collect_batch_runs_only_the_inputs_that_were_not_done(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    failing.update({3, 11})
    out = times_ten().collect_batch(range(20), checkpoint=ckpt, on_error="return")
    assert [type(r).__name__ for r in out].count("RowFailure") == 2
    m = manifest(ckpt)
    assert m["done_inputs"] == 18 and not m["complete"] and m["inputs_seen"] == 20
    failing.clear()
    calls.clear()
    flow = times_ten()
    assert flow.collect_batch(range(20), checkpoint=ckpt) == [{"x": i, "y": 10 * i} for i in range(20)]
    assert sorted(calls) == [3, 11] and flow.last_run().inputs == 2
    m = manifest(ckpt)
    assert m["complete"] and m["attempts"] == 2 and m["done"] == [[0, 20, m["done"][0][2]]]
    calls.clear()
    assert flow.collect_batch(range(20), checkpoint=ckpt) == [{"x": i, "y": 10 * i} for i in range(20)]
    assert calls == []  # a complete checkpoint: nothing runs, every row comes back


@pytest.mark.parametrize("inputs", ["list", "generator", "numpy", "arrow"])
def test_resume_reads_past_done_inputs_of_any_kind_of_input(tmp_path, inputs):
    def make():
        values = list(range(300))
        return {"list": values, "generator": (v for v in values), "numpy": np.arange(300),
                "arrow": pa.table({"x": pa.array(values, type=pa.int64())})}[inputs]

    ckpt = str(tmp_path / "ckpt")
    failing.update({5, 150, 299})
    times_ten().collect_batch(make(), checkpoint=ckpt, on_error="return")
    failing.clear()
    calls.clear()
    assert times_ten().collect_arrow(make(), checkpoint=ckpt).column("y").to_pylist() == [10 * i for i in range(300)]
    assert sorted(calls) == [5, 150, 299]


def test_collect_arrow_and_stream_return_earlier_rows_in_input_order(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    failing.update({0, 7})
    times_ten().collect_arrow(range(12), checkpoint=ckpt, on_error="skip")
    failing.clear()
    table = times_ten().collect_arrow(range(12), checkpoint=ckpt, lineage=True)
    assert table.column("x").to_pylist() == list(range(12))
    assert table.column("_input_index").to_pylist() == list(range(12))
    ids = times_ten().collect_arrow(range(12), lineage=True).column("_row_id").to_pylist()
    assert table.column("_row_id").to_pylist() == ids  # the same row ids as an uncheckpointed run
    rows = list(times_ten().stream(range(12), checkpoint=ckpt, lineage=True))
    assert [r["x"] for r in rows] == list(range(12)) and [r["_row_id"] for r in rows] == ids
    unordered = list(times_ten().stream(range(12), checkpoint=ckpt, ordered=False))
    assert sorted(r["x"] for r in unordered) == list(range(12))


def test_a_stream_left_early_resumes_where_it_stopped(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    stream = times_ten().stream(range(5000), checkpoint=ckpt, first_batch_rows=64)
    got = [next(stream) for _ in range(10)]
    stream.close()
    assert not manifest(ckpt)["complete"]
    calls.clear()
    rows = list(times_ten().stream(range(5000), checkpoint=ckpt))
    assert [r["x"] for r in rows] == list(range(5000)) and rows[:10] == got
    assert len(calls) < 5000  # the batches committed before the stream was left did not run again


def test_child_flows_and_filtered_inputs(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    doc = dflow.Flow("doc", str)
    doc = doc.filter(doc["doc"] != "skip me")
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str])
    words["n"] = words["item"].run_python(WordToInt(), return_type=int)
    failing.add(1)
    inputs = ["1 2", "skip me", "3 bad", "4"]
    out = words.collect_batch(inputs, checkpoint=ckpt, on_error="return")
    assert isinstance(out[2][-1], dflow.RowFailure)
    failing.clear()
    out = words.collect_batch(inputs, checkpoint=ckpt, on_error="return")
    assert out == [[{"item": "1", "n": 1}, {"item": "2", "n": 2}], [], [{"item": "3", "n": 3}, {"item": "bad", "n": 1}],
                   [{"item": "4", "n": 4}]]
    assert words.last_run().inputs == 1 and manifest(ckpt)["complete"]


def test_other_inputs_are_refused_and_nothing_is_lost(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    failing.add(9)
    times_ten().collect_batch(range(10), checkpoint=ckpt, on_error="return")
    before = manifest(ckpt)
    with pytest.raises(CheckpointError, match="not the inputs the checkpoint"):
        times_ten().collect_batch(range(1, 11), checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="inputs end after 5"):
        times_ten().collect_batch(range(5), checkpoint=ckpt)
    after = manifest(ckpt)
    assert after["done"] == before["done"] and after["commits"] == before["commits"]


def test_a_checkpoint_of_another_plan_is_refused_unless_forced_and_resume_false_starts_over(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    failing.add(2)
    times_ten().collect_batch(range(4), checkpoint=ckpt, on_error="return")
    other = dflow.Flow("x", int)
    other["y"] = other["x"].run_python(lambda x: x * 100, return_type=int)
    with pytest.raises(CheckpointError, match="another plan") as e:
        other.collect_batch(range(4), checkpoint=ckpt)
    assert "resume='force'" in str(e.value)
    forced = other.collect_batch(range(4), checkpoint=ckpt, resume="force")
    assert forced == [{"x": 0, "y": 0}, {"x": 1, "y": 10}, {"x": 2, "y": 200}, {"x": 3, "y": 30}]
    fresh = other.collect_batch(range(4), checkpoint=ckpt, resume=False)
    assert fresh == [{"x": i, "y": 100 * i} for i in range(4)] and manifest(ckpt)["attempts"] == 1
    with pytest.raises(ValueError, match="resume must be"):
        other.collect_batch(range(4), checkpoint=ckpt, resume="yes")
    with pytest.raises(ValueError, match="resume= applies to a checkpoint"):
        other.collect_batch(range(4), resume=False)


def test_a_corrupt_manifest_is_a_clear_error_and_is_left_as_it_is(tmp_path):
    ckpt = tmp_path / "ckpt"
    times_ten().collect_batch(range(3), checkpoint=str(ckpt))
    for bad in (b"{not json", b'{"format": "something else"}', json.dumps({**manifest(ckpt), "done": [[5, 2, "0"]]}).encode()):
        (ckpt / "manifest.json").write_bytes(bad)
        calls.clear()
        with pytest.raises(CheckpointError, match="corrupt|not a daft_flow checkpoint") as e:
            times_ten().collect_batch(range(3), checkpoint=str(ckpt))
        assert str(ckpt) in str(e.value) and calls == []
        assert (ckpt / "manifest.json").read_bytes() == bad  # never silently started again from zero


def test_a_location_that_cannot_be_written_is_a_clear_error_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot be read: NotADirectoryError"):
        times_ten().collect_batch(range(3), checkpoint=str(blocker / "ckpt"))
    assert calls == []
    if os.path.isdir("/proc/self"):  # a location not even root can write to
        with pytest.raises(CheckpointError, match="cannot be written"):
            times_ten().collect_batch(range(3), checkpoint="/proc/daft_flow_checkpoint")
        assert calls == []
    if os.geteuid() != 0:  # root writes into read-only directories
        ro = tmp_path / "ro"
        ro.mkdir()
        times_ten().collect_batch(range(3), checkpoint=str(ro / "ck"))
        os.chmod(ro / "ck", 0o555)
        try:
            with pytest.raises(CheckpointError, match="cannot be written"):
                times_ten().collect_batch(range(3), checkpoint=str(ro / "ck"))
        finally:
            os.chmod(ro / "ck", 0o755)


def test_files_a_killed_attempt_left_are_removed_on_resume(tmp_path):
    ckpt = tmp_path / "ckpt"
    failing.add(1)
    times_ten().collect_batch(range(3), checkpoint=str(ckpt), on_error="return")
    commits = manifest(ckpt)["commits"]
    (ckpt / "commits" / f"{commits:010d}.json").write_text("{}")  # written, never committed
    (ckpt / "results" / f"{commits:010d}.arrow").write_bytes(b"partial")
    failing.clear()
    assert times_ten().collect_batch(range(3), checkpoint=str(ckpt)) == [{"x": i, "y": 10 * i} for i in range(3)]
    assert sorted(os.listdir(ckpt / "results")) == [f"{s:010d}.arrow" for s in range(manifest(ckpt)["commits"])]
