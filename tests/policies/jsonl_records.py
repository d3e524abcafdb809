"""Reading what JSONFileSinks wrote (sink rows, dead letters) in the policy tests."""
import glob
import json


def read_jsonl(directory) -> list[dict]:
    """Every row of every ``*.jsonl`` file in ``directory``, files in name order."""
    rows = []
    for path in sorted(glob.glob(f"{directory}/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows
