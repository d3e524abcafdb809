"""Checkpoints on S3 (moto on loopback): the manifest, commit records and results live in the
bucket, and S3FileSink stages objects under its prefix's _dflow_staging/ until they are committed."""
import json

import pytest

import daft_flow as dflow

failing: set[int] = set()


class Flaky:
    def __call__(self, x: int) -> str:
        if x in failing:
            raise ValueError(f"failing on {x}")
        return f"value {x}"

    def __dflow_fingerprint__(self) -> str:
        return "flaky"


@pytest.fixture(autouse=True)
def _reset():
    failing.clear()


def test_rows_checkpoint_in_a_bucket(s3):
    client = s3.client()
    client.create_bucket(Bucket="ckpt-rows")
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(Flaky(), return_type=str)
    failing.add(4)
    flow.collect_batch(range(10), checkpoint="s3://ckpt-rows/run1", on_error="return")
    manifest = json.loads(client.get_object(Bucket="ckpt-rows", Key="run1/manifest.json")["Body"].read())
    assert manifest["done_inputs"] == 9 and manifest["kind"] == "rows"
    failing.clear()
    assert flow.collect_batch(range(10), checkpoint="s3://ckpt-rows/run1") == [
        {"x": i, "y": f"value {i}"} for i in range(10)]
    assert flow.last_run().inputs == 1


def test_s3_sink_objects_are_committed_once_across_attempts(s3, tmp_path):
    client = s3.client()
    client.create_bucket(Bucket="ckpt-out")
    doc = dflow.Flow("x", int)
    doc["y"] = doc["x"].run_python(Flaky(), return_type=str)
    ms = dflow.Multisink([doc.write_sink(dflow.S3FileSink("s3://ckpt-out/objects"), doc["y"]),
                          doc.write_sink(dflow.JSONFileSink(str(tmp_path / "json")), {"y": doc["y"]})])
    failing.update({2, 7})
    ms.collect_batch(range(12), checkpoint="s3://ckpt-out/checkpoint", on_error="return")
    failing.clear()
    results = ms.collect_batch(range(12), checkpoint="s3://ckpt-out/checkpoint")
    listed = client.list_objects_v2(Bucket="ckpt-out", Prefix="objects/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert not [k for k in keys if "_dflow_staging" in k]  # nothing staged is left
    bodies = sorted(client.get_object(Bucket="ckpt-out", Key=k)["Body"].read().decode() for k in keys)
    assert bodies == sorted(f"value {i}" for i in range(12))  # every row exactly once
    assert [r.rows_written for r in results] == [12, 12]
