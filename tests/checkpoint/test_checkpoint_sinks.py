"""Checkpointed sink flows: staged writes committed per batch, every row exactly once across
attempts, files of crashed attempts cleaned up, committed files that were not made final yet
rolled forward."""
import glob
import json
import os

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from daft_flow.checkpoint import CheckpointError

failing: set[str] = set()


class Upper:
    """Fails the words in ``failing``; its fingerprint does not follow that set."""

    def __call__(self, w: str) -> str:
        if w in failing:
            raise ValueError(f"failing on {w}")
        return w.upper()

    def __dflow_fingerprint__(self) -> str:
        return "upper"


@pytest.fixture(autouse=True)
def _reset():
    failing.clear()


def sinks(out: str, mode: str = "overwrite") -> dflow.Multisink:
    doc = dflow.Flow("doc", str)
    words = doc["doc"].flat_map(lambda s: s.split(), return_type=list[str])
    words["up"] = words["item"].run_python(Upper(), return_type=str)
    row = {"doc": doc["doc"], "up": words["up"]}
    return dflow.Multisink([words.write_sink(dflow.JSONFileSink(f"{out}/json", mode=mode), row),
                            words.write_sink(dflow.ParquetSink(f"{out}/parquet", mode=mode), row)])


def json_rows(out: str) -> list[tuple]:
    rows = []
    for path in glob.glob(f"{out}/json/*.jsonl"):
        with open(path, encoding="utf-8") as f:
            rows += [(r["doc"], r["up"]) for r in map(json.loads, f)]
    return sorted(rows)


def parquet_rows(out: str) -> list[tuple]:
    t = pq.read_table(f"{out}/parquet")
    return sorted(zip(t.column("doc").to_pylist(), t.column("up").to_pylist()))


DOCS = [f"w{i}a w{i}b w{i}c" for i in range(40)]
EXPECTED = sorted((d, w.upper()) for d in DOCS for w in d.split())


def test_rows_of_inputs_run_again_are_written_once_across_attempts(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    failing.update({"w3b", "w17c", "w39a"})  # one word of three documents
    results = sinks(out).collect_batch(DOCS, checkpoint=ckpt, on_error="return")
    assert [r.rows_written for r in results] == [117, 117]
    assert len(json_rows(out)) == 117  # the other words of those documents are committed already
    failing.clear()
    ms = sinks(out)
    results = ms.collect_batch(DOCS, checkpoint=ckpt)
    assert json_rows(out) == parquet_rows(out) == EXPECTED  # every row exactly once
    assert [r.rows_written for r in results] == [120, 120]  # what the sinks hold, over both attempts
    assert all(os.path.exists(p) for r in results for p in r.paths)
    assert ms.last_run().inputs == 3  # only the three documents ran again
    names = os.listdir(f"{out}/json")
    assert any("-a2" in n for n in names) and not any(n.startswith(".") for n in names)


def test_a_crashed_attempt_s_files_are_removed_and_committed_ones_are_made_final(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    failing.add("w5a")
    sinks(out).collect_batch(DOCS, checkpoint=ckpt, on_error="return", first_batch_rows=8, batch_rows=8)
    json_dir = f"{out}/json"
    committed = sorted(os.listdir(json_dir))
    # What a killed attempt leaves: a staged file of a batch it never committed, a temporary
    # file, and a committed file still under its staged name (killed between commit and rename).
    (tmp_path / "out" / "json" / ".part-00000099-000-a2.jsonl.staged").write_text('{"doc": "ghost", "up": "GHOST"}\n')
    (tmp_path / "out" / "json" / ".part-00000099-000.jsonl.123.tmp").write_text("half")
    os.rename(f"{json_dir}/{committed[-1]}", f"{json_dir}/.{committed[-1]}.staged")
    failing.clear()
    sinks(out).collect_batch(DOCS, checkpoint=ckpt)
    assert json_rows(out) == parquet_rows(out) == EXPECTED
    assert not [n for n in os.listdir(json_dir) if n.startswith(".")]


def test_a_committed_file_that_is_gone_is_a_clear_error(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    failing.add("w5a")
    sinks(out).collect_batch(DOCS, checkpoint=ckpt, on_error="return")
    victim = sorted(glob.glob(f"{out}/parquet/*.parquet"))[0]
    os.unlink(victim)
    with pytest.raises(CheckpointError, match="are gone") as e:
        sinks(out).collect_batch(DOCS, checkpoint=ckpt)
    assert os.path.basename(victim) in str(e.value)


def test_append_mode_keeps_its_run_tag_across_attempts_and_other_runs_files(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    sinks(out, mode="append").collect_batch(DOCS[:2])  # an earlier run's output stays
    failing.add("w7a")
    sinks(out, mode="append").collect_batch(DOCS, checkpoint=ckpt, on_error="return")
    failing.clear()
    sinks(out, mode="append").collect_batch(DOCS, checkpoint=ckpt)
    tags = {n.split("-")[1] for n in os.listdir(f"{out}/json")}
    assert len(tags) == 2  # the earlier run's and the checkpointed run's, one tag for both attempts
    assert json_rows(out) == sorted(EXPECTED + [r for r in EXPECTED if r[0] in DOCS[:2]])


def test_error_if_exists_refuses_other_output_but_not_the_checkpoint_s_own(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    failing.add("w1a")
    sinks(out, mode="error_if_exists").collect_batch(DOCS, checkpoint=ckpt, on_error="return")
    failing.clear()
    sinks(out, mode="error_if_exists").collect_batch(DOCS, checkpoint=ckpt)
    assert json_rows(out) == EXPECTED
    with pytest.raises(FileExistsError):
        sinks(out, mode="error_if_exists").collect_batch(DOCS, checkpoint=str(tmp_path / "other"))


def test_sinks_that_cannot_stage_are_refused_before_anything_runs(tmp_path):
    doc = dflow.Flow("doc", str)
    sink = doc.write_sink(dflow.ArrowSink(), doc["doc"])
    with pytest.raises(CheckpointError, match="cannot take part in a checkpointed run"):
        sink.collect_batch(["a"], checkpoint=str(tmp_path / "ckpt"))
    assert not os.path.exists(tmp_path / "ckpt")


def test_sink_flow_stream_and_dflow_collect_take_a_checkpoint(tmp_path):
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    doc = dflow.Flow("doc", str)
    write = doc.write_sink(dflow.JSONFileSink(out), doc["doc"])
    written = list(write.stream(["a", "b"], checkpoint=ckpt))
    assert len(written) == 2
    assert list(write.stream(["a", "b"], checkpoint=ckpt)) == []  # both done: nothing written again
    ms = dflow.Multisink([write])
    (result,) = dflow.collect(ms, "c", checkpoint=str(tmp_path / "ck2"))
    assert result.rows_written == 1
