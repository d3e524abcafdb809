"""Crash test: a process writing documents -> chunks -> prompt -> Multisink([JSONFileSink,
ParquetSink]) with a checkpoint is SIGKILLed at 5 random moments, then run to completion. Each
sink must then hold every row exactly once (and, after every kill, what a reader lists must be
whole files with no row twice), and the LLM server (the fault server, in its own process) must
have seen no more calls than the rows plus the requests in flight at each kill."""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest

import daft_flow as dflow
from crash_worker import documents

HERE = os.path.dirname(os.path.abspath(__file__))
KILLS = 5
# An answer the server finished sending this long before a kill counts as in flight: the client had
# it on the wire or was storing it. Its journal write follows within milliseconds on a quiet
# machine; measured on the shared 2-core machine, answers repeated after a kill had been sent at
# most 52 ms before it, but a full run at load 8 once saw one sent ~0.3 s before. A second still
# separates "was in flight" from "was redone for no reason" (a run redone from the start).
GRACE_S = 1.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The daft_flow this process runs (a built checkout or the installed wheel), never the checkout itself.
    parent = os.path.dirname(os.path.dirname(os.path.abspath(dflow.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    env["DFLOW_PROGRESS"] = "0"
    return env


def _log(base: str) -> list[list]:
    with urllib.request.urlopen(base + "/requests", timeout=10) as r:
        return json.load(r)["requests"]


def _rows_seen_by_a_reader(out: str) -> tuple[list, list]:
    """What a reader listing the sink directories sees: every file must parse whole."""
    json_rows = []
    for path in sorted(glob.glob(f"{out}/json/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            json_rows += [(r["doc"][:20], r["chunk_index"]) for r in map(json.loads, f)]
    pq_rows = []
    for path in sorted(glob.glob(f"{out}/parquet/*.parquet")):
        t = pq.read_table(path)
        pq_rows += [(d[:20], c) for d, c in zip(t.column("doc").to_pylist(), t.column("chunk_index").to_pylist())]
    return json_rows, pq_rows


@pytest.fixture
def llm_server():
    # Its stderr would show the broken pipes of clients killed mid-answer.
    server = subprocess.Popen([sys.executable, "-P", "-m", "daft_flow.testing", "--latency", "0.1", "--log-requests"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    try:
        url = server.stdout.readline().strip()
        yield url, url.rsplit("/v1", 1)[0]
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def test_sigkill_at_random_moments_then_resume_writes_every_row_once(tmp_path, llm_server):
    url, base = llm_server
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
    worker = [sys.executable, "-P", os.path.join(HERE, "crash_worker.py"), url, ckpt, out]
    rng = random.Random(int(os.environ.get("DFLOW_CRASH_SEED", "13")))
    kills: list[float] = []
    for attempt in range(KILLS):
        seen = len(_log(base))
        proc = subprocess.Popen(worker, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(_log(base)) == seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until this attempt is sending prompts
        time.sleep(rng.uniform(0.0, 0.5))
        assert proc.poll() is None, f"attempt {attempt} ended before it was killed: {proc.communicate()}"
        kills.append(time.monotonic())
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        # What a reader sees after the crash: whole files, no row twice.
        json_rows, pq_rows = _rows_seen_by_a_reader(out)
        assert len(json_rows) == len(set(json_rows)) and len(pq_rows) == len(set(pq_rows))
    done = subprocess.run(worker, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    chunks = dflow_chunks(len(documents(24)))
    json_rows, pq_rows = _rows_seen_by_a_reader(out)
    assert sorted(json_rows) == sorted(chunks) and sorted(pq_rows) == sorted(chunks)  # each row exactly once
    leftovers = [n for d in ("json", "parquet") for n in os.listdir(f"{out}/{d}") if n.startswith(".")]
    assert leftovers == []  # no staged or temporary file is left
    with open(f"{ckpt}/manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["complete"] and manifest["attempts"] == KILLS + 1

    log = [r for r in _log(base) if r[0] == "completions"]
    in_flight = [sum(1 for _, _, start, end in log if start <= t and (end is None or end > t - GRACE_S))
                 for t in kills]
    print(f"crash test: {len(chunks)} rows, {len(log)} requests, in flight at the kills: {in_flight}")
    assert len(log) <= len(chunks) + sum(in_flight), (len(log), len(chunks), in_flight)
    assert len(log) > len(chunks)  # the kills did catch requests in flight (else this test proves little)
    # Sharper, reported rather than asserted: prompts sent twice that were not in flight at a kill the
    # first time. A full CI run once saw one such repeat (in 171 requests) that no run alone shows; the
    # bound above, which the issue sets, still held. Its cause is not known yet.
    first: dict[str, tuple] = {}
    unexplained = []
    for _kind, digest, start, end in sorted(log, key=lambda r: r[2]):
        if digest in first:
            s0, e0 = first[digest]
            if not any(s0 <= t and (e0 is None or e0 > t - GRACE_S) for t in kills):
                unexplained.append(digest)
        else:
            first[digest] = (start, end)
    print(f"crash test: prompts repeated although not in flight at a kill: {unexplained}")


def dflow_chunks(n_docs: int) -> list[tuple[str, int]]:
    """(document prefix, chunk index) of every chunk the worker's flow makes."""
    import daft_flow as dflow

    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=400, overlap=0)
    rows = chunks.collect_batch(documents(n_docs), include_parents=["doc"])
    return [(r["doc"][:20], r["chunk_index"]) for per_doc in rows for r in per_doc]


def test_a_crash_inside_one_large_document_redoes_only_its_unfinished_chunks(tmp_path, llm_server):
    """Per-flow checkpointing: the document is not done when the process dies, but each chunk's
    answer was saved as it arrived (the checkpoint's journal), so the resumed run asks only for
    the chunks whose answers had not arrived."""
    url, base = llm_server
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
    worker = [sys.executable, "-P", os.path.join(HERE, "crash_worker.py"), url, ckpt, out, "big"]
    proc = subprocess.Popen(worker, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_log(base)) < 60 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    kill = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    asked_before = len(_log(base))
    assert _rows_seen_by_a_reader(out) == ([], [])  # nothing of the document was committed
    done = subprocess.run(worker, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = dflow.Flow("doc", str)
    n_chunks = len(doc.chunk_text(max_chars=400, overlap=0).collect(documents(1, 10000)[0]))
    json_rows, pq_rows = _rows_seen_by_a_reader(out)
    assert len(json_rows) == len(set(json_rows)) == n_chunks == len(pq_rows)
    log = [r for r in _log(base) if r[0] == "completions"]
    in_flight = sum(1 for _, _, start, end in log if start <= kill and (end is None or end > kill - GRACE_S))
    asked_after = len(log) - asked_before
    print(f"large document: {n_chunks} chunks, {asked_before} asked before the kill, {asked_after} after")
    assert asked_after <= n_chunks - asked_before + in_flight  # finished chunks were not asked again
