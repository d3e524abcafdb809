"""Failure policies under faults: documents -> chunk_text -> a Python function that raises on 5% of
the documents' chunks -> prompt -> JSONFileSink, with a dead-letter sink, at 10,000 chunk rows
(2,500 documents of 4 chunks), against the fault server in its own process.

  clean, no policy   no faults, no poisoned documents, no with_policy (the happy path's baseline)
  clean, policy      the same with the policies of the faulty runs (retry + dead letters): what
                     policies cost when nothing fails
  faulty, isolate    10% 429, 5% 500, 2% dropped connections at the server, 5% of the documents
                     poisoned; chunks: Retry(max_attempts=3) and a dead-letter sink
  faulty, fail_parent  the same faults; a chunk's failure fails its document (Retry and dead
                     letters on the documents: a poisoned document's whole subtree is recomputed)

Target: each faulty run within 1.3x of the clean run's time plus the retries' backoff (the longest
chain of waits one request or row went through before it was answered: its own wall-time floor).
Each faulty run must also account for every row exactly once: sink rows + dead letters == rows (by
row id), no duplicates. The accounting table is ``RunReport.accounting``. The exit code is always 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from typing import Any

from . import _harness as h

DEFAULT_DOCS = 2500
CHUNKS_PER_DOC = 4
ATTEMPTS = 3


def _documents(n: int) -> list[str]:
    # 4 chunks of 60 characters each ("w0000_00 " is 9 characters: 6 words per chunk, 24 per document).
    return [" ".join(f"w{d:04d}_{w:02d}" for w in range(24)) for d in range(n)]


def _server(faults: bool) -> tuple[subprocess.Popen, str]:
    rates = ["--rate-limit-rate", "0.10", "--error-rate", "0.05", "--drop-rate", "0.02"] if faults else []
    proc = subprocess.Popen([sys.executable, "-m", "daft_flow.testing", "--retry-after", "0.05", "--seed", "3", *rates],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats") as r:
        return json.load(r)


def _provider_class() -> Any:
    """OpenAIProvider that also records each request's waits before retries (the backoff), so the
    target can allow for the longest chain of them."""
    import daft_flow as dflow

    class TimedProvider(dflow.OpenAIProvider):
        waits: dict[int, float] = {}

        async def _sleep(self, delay: float) -> None:
            task = id(asyncio.current_task())
            self.waits[task] = self.waits.get(task, 0.0) + delay
            await super()._sleep(delay)

    return TimedProvider


def _run(docs: list[str], poisoned: set[int], policy: str | None, base_url: str, out: str) -> dict[str, Any]:
    import daft_flow as dflow

    import re

    word = re.compile(r"w(\d{4})_03 ")

    def check_chunk(chunk: str) -> str:
        """Raises for the chunk holding word 3 of each poisoned document."""
        m = word.search(chunk)
        if m is not None and int(m.group(1)) in poisoned:
            raise ValueError(f"cannot use chunk {chunk[:9]!r}")
        return chunk

    provider = _provider_class()(base_url=base_url, api_key="test-key", model="fault-chat", max_retries=12,
                                 max_concurrency=64, timeout=10.0)
    retry = dflow.Retry(max_attempts=ATTEMPTS, initial_delay=0.01, max_delay=0.1)
    dead = dflow.JSONFileSink(os.path.join(out, "dead"))
    doc = dflow.Flow("document", str)
    if policy == "fail_parent":
        doc = doc.with_policy(retry=retry, dead_letter=dead)
        chunks = doc.chunk_text(max_chars=60, overlap=0).with_policy("fail_parent")
    elif policy == "isolate":
        chunks = doc.chunk_text(max_chars=60, overlap=0).with_policy(retry=retry, dead_letter=dead)
    else:
        chunks = doc.chunk_text(max_chars=60, overlap=0)
    chunks["checked"] = chunks["chunk"].run_python(check_chunk, return_type=str)
    chunks["summary"] = chunks["checked"].prompt("summarize", provider=provider, max_tokens=4)
    sink = chunks.write_sink(dflow.JSONFileSink(os.path.join(out, "rows")),
                             {"doc": doc["document"], "chunk_index": chunks["chunk_index"], "summary": chunks["summary"]})
    t0 = time.perf_counter()
    result = sink.collect_batch(docs, on_error="return")
    elapsed = time.perf_counter() - t0
    report = sink.last_run()
    return {"seconds": elapsed, "result": result, "report": report, "waits": dict(provider.waits),
            "policy_retries": sum(f.retries for f in report.flows.values())}


def _read(directory: str) -> list[dict[str, Any]]:
    if not os.path.isdir(directory):
        return []
    rows = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


def _chunk_ids(docs: list[str]) -> dict[tuple[int, int], str]:
    import daft_flow as dflow

    chunks = dflow.Flow("document", str).chunk_text(max_chars=60, overlap=0)
    t = chunks.collect_arrow(docs, lineage=True)
    return {(i, c): r for i, c, r in zip(t.column("_input_index").to_pylist(), t.column("chunk_index").to_pylist(),
                                         t.column("_row_id").to_pylist())}


def _exactly_once(docs: list[str], ids: dict[tuple[int, int], str], out: str, policy: str) -> tuple[bool, str]:
    """Sink rows + dead letters == rows, by row id, with no duplicates."""
    index = {d: i for i, d in enumerate(docs)}
    written = [ids[(index[r["doc"]], r["chunk_index"])] for r in _read(os.path.join(out, "rows"))]
    dead = _read(os.path.join(out, "dead"))
    if policy == "fail_parent":  # a dead letter is a document: its chunks are what it stands for
        dead_ids = [rid for r in dead for (d, _), rid in ids.items() if d == r["input_index"]]
    else:
        dead_ids = [r["row_id"] for r in dead]
    ok = (len(written) == len(set(written)) and len(dead_ids) == len(set(dead_ids))
          and not set(written) & set(dead_ids) and set(written) | set(dead_ids) == set(ids.values()))
    kinds = sorted({r["error_type"] for r in dead})
    attempts = sorted({r["attempts"] for r in dead})
    return ok, (f"{len(written)} written + {len(dead_ids)} dead-lettered rows ({len(dead)} records, {kinds}, "
                f"attempts {attempts}) of {len(ids)}")


def main(argv: list[str] | None = None) -> int:
    p = h.parser("policies", __doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=DEFAULT_DOCS, help="documents (4 chunk rows each)")
    p.add_argument("--repeat", type=int, default=2, help="interleaved rounds; each case's best time counts")
    args = p.parse_args(argv)

    docs = _documents(args.docs)
    n = len(docs) * CHUNKS_PER_DOC
    poisoned = {d for d in range(len(docs)) if d % 20 == 7}  # 5% of the documents
    h.print_header("policies", f"documents={len(docs):,} chunk rows={n:,} poisoned documents={len(poisoned)} "
                               "faults=10% 429, 5% 500, 2% dropped")
    ids = _chunk_ids(docs)
    cases = [("clean, no policy", False, set(), None), ("clean, policy", False, set(), "isolate"),
             ("faulty, isolate", True, poisoned, "isolate"), ("faulty, fail_parent", True, poisoned, "fail_parent")]
    rows: list[h.Row] = []
    done: dict[str, dict[str, Any]] = {}
    proc, base_url = _server(False)  # a first, untimed run: imports, the provider's connections
    try:
        with tempfile.TemporaryDirectory() as out:
            _run(docs[:100], set(), "isolate", base_url, out)
    finally:
        proc.terminate()
        proc.wait()
    best: dict[str, dict[str, Any]] = {}
    for round_ in range(args.repeat):  # interleaved rounds: a shared machine's drift hits every case alike
        for name, faults, bad, policy in cases:
            print(f"  round {round_ + 1}/{args.repeat}: {name} ...", file=sys.stderr, flush=True)
            proc, base_url = _server(faults)
            try:
                with tempfile.TemporaryDirectory() as out:
                    run = _run(docs, bad, policy, base_url, out)
                    run["stats"] = _stats(base_url)
                    run["check"] = _exactly_once(docs, ids, out, policy or "isolate")
                run["longest_wait"] = max(run["waits"].values(), default=0.0)
                print(f"    {run['seconds']:.2f}s", file=sys.stderr, flush=True)
                if name not in best or run["seconds"] < best[name]["seconds"]:
                    best[name] = run
                if not run["check"][0]:  # any round that loses or repeats a row fails the check
                    best[name]["check"] = run["check"]
            except Exception as e:
                traceback.print_exc()
                best.setdefault(name, {"error": f"{type(e).__name__}: {e}"[:120]})
            finally:
                proc.terminate()
                proc.wait()
    for name, *_ in cases:
        run = best.get(name)
        if run is None or "error" in run:
            rows.append(h.Row(name, None, error=run["error"] if run else "not run"))
            continue
        done[name] = run
        s = run["stats"]
        rows.append(h.Row(name, run["seconds"], rows=n,
                          note=f"{s['received']} requests (429 {s.get('injected_429', 0)}, 500 {s.get('errors', 0)}, "
                               f"dropped {s.get('dropped', 0)}), {run['policy_retries']} row retries, "
                               f"longest backoff {run['longest_wait']:.2f}s"))

    print()
    h.print_table(rows, baseline="clean, policy")
    print()
    for name, run in done.items():
        if name.startswith("faulty"):
            print(f"accounting, {name}:")
            print(f"  {'flow':<18} {'rows':>7} {'succeeded':>9} {'failed':>7} {'dead_lettered':>13} {'skipped':>7}")
            for flow, a in run["report"].accounting.items():
                print(f"  {flow:<18} {a['rows']:>7} {a['succeeded']:>9} {a['failed']:>7} {a['dead_lettered']:>13} "
                      f"{a['skipped']:>7}")
            print(f"  exactly once: {run['check'][1]}")
    print()
    base = done.get("clean, policy")
    if base is not None and "clean, no policy" in done:
        h.check("clean with policies / without (happy path)", base["seconds"] / done["clean, no policy"]["seconds"],
                "<=", 1.1)
    for name in ("faulty, isolate", "faulty, fail_parent"):
        run = done.get(name)
        if run is None or base is None:
            continue
        allowance = base["seconds"] + run["longest_wait"]
        h.check(f"{name} / (clean + longest backoff {run['longest_wait']:.2f}s)", run["seconds"] / allowance, "<=", 1.3)
        h.check(f"{name}: sink rows + dead letters == rows, once each", float(run["check"][0]), ">=", 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
