"""Dead letters through S3FileSink (moto on loopback) and dflow.replay reading them back from S3."""
import json

import daft_flow as dflow


def parse(s: str) -> int:
    return int(s)


def test_dead_letters_go_to_s3_and_replay_from_there(s3):
    client = s3.client()
    client.create_bucket(Bucket="dead")
    flow = dflow.Flow("text", str).with_policy(dead_letter=dflow.S3FileSink("s3://dead/letters"))
    flow["n"] = flow["text"].run_python(parse, return_type=int)
    out = flow.collect_batch(["1", "two", "3", "four"])  # dead-lettered rows do not raise
    assert out == [{"text": "1", "n": 1}, None, {"text": "3", "n": 3}, None]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="dead", Prefix="letters/")["Contents"]]
    records = [json.loads(line) for k in keys
               for line in client.get_object(Bucket="dead", Key=k)["Body"].read().decode().splitlines()]
    assert sorted((r["input_index"], r["input"], r["error_type"]) for r in records) == \
        [(1, "two", "ValueError"), (3, "four", "ValueError")]

    words = {"two": 2, "four": 4}
    fixed = dflow.Flow("text", str)
    fixed["n"] = fixed["text"].run_python(lambda s: words.get(s, 0) or int(s), return_type=int)
    report = dflow.replay("s3://dead/letters", fixed)
    assert report.inputs == ["two", "four"] and report.input_indexes == [1, 3]
    assert report.succeeded == [0, 1] and report.results == [{"text": "two", "n": 2}, {"text": "four", "n": 4}]
