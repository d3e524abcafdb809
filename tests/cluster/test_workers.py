"""dflow-worker processes on loopback and dflow.Cluster: the same results as a local run, every row
exactly once when a worker is SIGKILLed, and clear refusals (token, IR version, sizes, addresses)."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import daft_flow as dflow
from daft_flow.testing.workers import WorkerProcess, kill_while_busy
from cluster_flows import DOCS, _doc_flow, _failures, _jsonl

TOKEN = "cluster-test-token-7b1e0c"


@pytest.fixture(scope="module")
def workers():
    procs = [WorkerProcess("--threads", "2", token=TOKEN) for _ in range(3)]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()
    for p in procs:
        assert TOKEN not in p.log


@pytest.fixture(scope="module")
def cluster(workers):
    c = dflow.Cluster([w.address for w in workers], token=TOKEN, morsel_rows=16)
    yield c
    c.close()


def test_three_workers_give_the_results_of_a_local_run(cluster, workers):
    flow = _doc_flow()
    local = flow.collect_batch(DOCS, on_error="return")
    remote = flow.collect_batch(DOCS, on_error="return", cluster=cluster)
    assert len(remote) == len(DOCS)
    for a, b in zip(local, remote):
        assert [r for r in a if isinstance(r, dict)] == [r for r in b if isinstance(r, dict)]
        assert _failures([r for r in a if not isinstance(r, dict)]) == _failures([r for r in b if not isinstance(r, dict)])
    # Every worker took part, and the Arrow form with lineage (global input indices, row ids) is identical.
    assert all(json.loads(cluster._action(w.address, "info"))["morsels_done"] > 0 for w in workers)
    # The plan stays on the workers: a second run of the same flow does not send it again.
    received = [w.log.count("received") for w in workers]
    flow.collect_batch(DOCS[:50], on_error="return", cluster=cluster)
    assert [w.log.count("received") for w in workers] == received
    t_local = flow.collect_arrow(DOCS, on_error="skip", lineage=True)
    t_remote = flow.collect_arrow(DOCS, on_error="skip", lineage=True, cluster=cluster)
    assert t_remote.equals(t_local)


def test_failures_keep_their_type_notes_and_remote_traceback(cluster):
    flow = _doc_flow()
    with pytest.raises(dflow.FlowRunError) as local:
        flow.collect_batch(DOCS)
    with pytest.raises(dflow.FlowRunError) as remote:
        flow.collect_batch(DOCS, cluster=cluster)
    assert _failures(remote.value.failures) == _failures(local.value.failures)
    assert remote.value.results == local.value.results
    err = remote.value.failures[0].error
    assert isinstance(err, ValueError)
    notes = "\n".join(err.__notes__)
    assert "shout) computing field 'loud'" in notes
    assert "raised on dflow-worker" in notes and "in shout" in notes  # the worker's traceback, as text
    with pytest.raises(ValueError, match="no sevens"):  # collect() raises the row's own exception
        flow.collect(DOCS[7], cluster=cluster)


def test_stream_in_order_and_in_completion_order(cluster):
    flow = _doc_flow()
    local = list(flow.stream(DOCS, on_error="skip"))
    assert list(flow.stream(DOCS, on_error="skip", cluster=cluster)) == local
    unordered = list(flow.stream(DOCS, on_error="skip", ordered=False, cluster=cluster))
    key = lambda r: sorted(r.items())  # noqa: E731
    assert sorted(unordered, key=key) == sorted(local, key=key)
    # Breaking out of a stream stops the run: the workers end with nothing in flight.
    s = flow.stream(iter(DOCS * 50), on_error="skip", cluster=cluster)
    next(s)
    s.close()


def test_untyped_values_and_bad_inputs_travel_as_locally(cluster):
    flow = dflow.Flow("x", int)
    flow["obj"] = flow["x"].run_python(lambda x: {"x": x, "set": {x}})  # untyped: pickled Python objects
    inputs = [1, 2, "three", 4, None, 6]
    local = flow.collect_batch(inputs, on_error="return")
    remote = flow.collect_batch(inputs, on_error="return", cluster=cluster)
    assert [r for r in remote if isinstance(r, dict)] == [r for r in local if isinstance(r, dict)]
    assert _failures([r for r in remote if not isinstance(r, dict)]) == \
        _failures([r for r in local if not isinstance(r, dict)])


def test_multisink_on_a_cluster_writes_every_row_once(cluster, tmp_path):
    def run(where, **options):
        doc = dflow.Flow("doc", str)
        doc["n"] = doc["doc"].run_python(len, return_type=int)
        flow = doc["doc"].chunk_text(max_chars=40, overlap=8)
        flow["loud"] = flow["chunk"].run_python(lambda c: c.upper() if "seven" not in c else 1 / 0)
        a = flow.write_sink(dflow.JSONFileSink(str(where / "json")), {"chunk": flow["chunk"], "loud": flow["loud"],
                                                                      "n": doc["n"]})
        b = doc.write_sink(dflow.ParquetSink(str(where / "pq")), {"doc": doc["doc"], "n": doc["n"]})
        return dflow.collect(dflow.Multisink([a, b]), DOCS[0], on_error="return", **options), \
            dflow.Multisink([a, b]).collect_batch(DOCS, on_error="return", **options)

    (_, local), (_, remote) = run(tmp_path / "local"), run(tmp_path / "remote", cluster=cluster)
    assert [r.rows_written for r in remote] == [r.rows_written for r in local]
    assert [_failures(r.failures) for r in remote] == [_failures(r.failures) for r in local]

    def rows(where):
        lines = _jsonl(sorted(glob.glob(str(where / "json" / "*.jsonl"))))
        table = pa.concat_tables([pa.parquet.read_table(p) for p in sorted(glob.glob(str(where / "pq" / "*.parquet")))])
        return lines, table.to_pylist()

    import pyarrow.parquet  # noqa: F401

    assert rows(tmp_path / "remote") == rows(tmp_path / "local")
    # A SinkFlow's stream on a cluster writes on this side too, and yields where each row went.
    doc = dflow.Flow("doc", str)
    one = doc.write_sink(dflow.JSONFileSink(str(tmp_path / "streamed")), doc["doc"])
    assert len(list(one.stream(DOCS[:20], cluster=cluster))) == 20
    assert sorted(r["doc"] for r in _jsonl(glob.glob(str(tmp_path / "streamed" / "*.jsonl")))) == sorted(DOCS[:20])


def test_a_sigkilled_worker_loses_no_row_and_duplicates_none(tmp_path):
    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.004)
        return x * 3

    flow["y"] = flow["x"].run_python(slow)
    sink = flow.write_sink(dflow.JSONFileSink(str(tmp_path / "out")), {"x": flow["x"], "y": flow["y"]})
    n = 900
    procs = [WorkerProcess("--threads", "2") for _ in range(3)]
    try:
        cluster = dflow.Cluster([p.address for p in procs], morsel_rows=10)
        for target, check in ((flow, "rows"), (sink, "sink")):
            job = cluster.submit(target, range(n))
            victim = procs[1] if check == "rows" else procs[2]
            kill_while_busy(job, victim)  # while it holds a morsel, after some results came back
            result = job.result(timeout=120)
            assert job.status() == "succeeded"
            progress = job.progress()
            assert progress["morsels_resent"] >= 1 and progress["workers"][victim.address]["lost"]
            if check == "rows":
                assert result == [{"x": i, "y": 3 * i} for i in range(n)]
            else:
                assert result.rows_written == n and not result.failures
                written = _jsonl(glob.glob(str(tmp_path / "out" / "*.jsonl")))
                assert sorted(r["x"] for r in written) == list(range(n))  # each row exactly once
                assert all(r["y"] == 3 * r["x"] for r in written)
    finally:
        for p in procs:
            p.stop()


def test_a_wrong_or_missing_token_is_refused_and_never_shown(workers):
    for token in ("not-the-token", None):
        c = dflow.Cluster([workers[0].address], token=token)
        with pytest.raises(dflow.ClusterError, match="refused the token") as e:
            dflow.Flow("x", int).collect_batch([1], cluster=c)
        assert TOKEN not in str(e.value)
    c = dflow.Cluster([workers[0].address], token=TOKEN)
    assert TOKEN not in repr(c) and "***" in repr(c)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(c)


def test_listening_beyond_loopback_without_a_token_exits_non_zero():
    env = {k: v for k, v in os.environ.items() if k != "DFLOW_WORKER_TOKEN"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(dflow.__file__))
    proc = subprocess.run([sys.executable, "-m", "daft_flow.cluster.worker", "--listen", "0.0.0.0:0"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "refuses to listen on 0.0.0.0 without a token" in proc.stderr
    assert "DFLOW_WORKER_TOKEN" in proc.stderr


def test_an_unreachable_worker_is_named_after_bounded_retries(workers):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    c = dflow.Cluster([dead], connect_attempts=2, connect_timeout=2)
    start = time.monotonic()
    with pytest.raises(dflow.ClusterError, match=f"worker {dead} is unreachable: 2 attempt"):
        dflow.Flow("x", int).collect_batch([1, 2], cluster=c)
    assert time.monotonic() - start < 30
    # With one live worker the run goes on without the dead one.
    c = dflow.Cluster([dead, workers[0].address], token=TOKEN, connect_attempts=1, connect_timeout=2)
    assert dflow.Flow("x", int).collect_batch([1, 2], cluster=c) == [{"x": 1}, {"x": 2}]


def test_a_worker_of_another_ir_version_is_refused_with_both_versions():
    from daft_flow.plan.trace import IR_VERSION

    code = ("import sys, daft_flow.plan.trace as t; t.IR_VERSION = 999\n"
            "from daft_flow.cluster.worker import main\nsys.exit(main())")
    with WorkerProcess(python=[sys.executable, "-c", code]) as other:
        c = dflow.Cluster([other.address])
        with pytest.raises(dflow.ClusterError, match=f"runs IR version 999 .*this client runs IR version {IR_VERSION}"):
            dflow.Flow("x", int).collect_batch([1], cluster=c)
        # A plan sent anyway is refused by the worker itself, naming both versions.
        with pytest.raises(flight.FlightServerError, match=f"IR version {IR_VERSION}.*IR version 999"):
            c._action(other.address, "plan", dflow.Flow("x", int).to_bytes())


def test_an_oversized_input_fails_its_row_and_an_oversized_morsel_is_refused():
    with WorkerProcess("--max-morsel-bytes", "200KB", "--gpus", "3") as w:
        c = dflow.Cluster([w.address], morsel_rows=50)
        info = c.workers()[w.address]
        assert info["max_morsel_bytes"] == 200_000 and info["gpus"] == [3]
        flow = dflow.Flow("doc", str)
        flow["n"] = flow["doc"].run_python(len, return_type=int)
        docs = ["small"] * 30 + ["x" * 300_000] + ["y" * 1000] * 300  # morsels over the limit are split
        out = flow.collect_batch(docs, on_error="return", cluster=c)
        assert isinstance(out[30], dflow.RowFailure) and "over the workers' limit of 200000 bytes" in str(out[30].error)
        assert out[30].input_index == 30 and out[30].row_id == flow.collect_arrow([docs[30]], lineage=True)["_row_id"][0].as_py()
        assert [r["n"] for i, r in enumerate(out) if i != 30] == [len(d) for i, d in enumerate(docs) if i != 30]
        # A client that ignores the limit is refused by the worker.
        key = c._action(w.address, "plan", flow.to_bytes()).decode()
        writer, reader = c._client(w.address).do_exchange(
            flight.FlightDescriptor.for_command(json.dumps({"plan": key, "first_input": 0})), c._options())
        big = pa.record_batch([pa.array(["z" * 100_000] * 5, type=pa.large_string())], names=["input"])
        with pytest.raises(flight.FlightServerError, match="over 200000 bytes was refused"):
            writer.begin(big.schema)
            writer.write_batch(big)
            writer.done_writing()
            reader.read_all()


_CLIENT = """
import sys, daft_flow as dflow
flow = dflow.Flow("x", int)
def slow(x: int) -> int:
    import time
    time.sleep(0.02)
    return x
flow["y"] = flow["x"].run_python(slow)
c = dflow.Cluster([sys.argv[1]], morsel_rows=40)
for i, row in enumerate(flow.stream(range(10**6), cluster=c)):
    if i == 10:
        print("streaming", flush=True)
"""


def test_a_client_that_disconnects_mid_run_frees_the_workers_run():
    with WorkerProcess("--threads", "2") as w:
        c = dflow.Cluster([w.address])
        before = json.loads(c._action(w.address, "info"))
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
        client = subprocess.Popen([sys.executable, "-c", _CLIENT, w.address], stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert client.stdout.readline().strip() == "streaming"
            deadline = time.monotonic() + 30
            while json.loads(c._action(w.address, "info"))["in_flight"] == 0:  # between two morsels
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait()
            client.stdout.close()
        deadline = time.monotonic() + 60
        while True:
            info = json.loads(c._action(w.address, "info"))
            if info["in_flight"] == 0 and info["threads"] <= before["threads"] + 2:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.1)


def test_sigterm_finishes_running_morsels_and_the_run_goes_on():
    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.01)
        return x + 1

    flow["y"] = flow["x"].run_python(slow)
    with WorkerProcess("--threads", "2") as a, WorkerProcess("--threads", "2") as b:
        job = dflow.Cluster([a.address, b.address], morsel_rows=10).submit(flow, range(400))
        while job.progress()["workers"].get(a.address, {}).get("in_flight", 0) == 0:
            time.sleep(0.002)
        assert a.stop() == 0  # drains: what it runs finishes or goes back to the client
        assert job.result(timeout=120) == [{"x": i, "y": i + 1} for i in range(400)]
        assert "stopping" in a.log

    def very_slow(x: int) -> int:
        import time

        time.sleep(0.03)
        return x + 1

    flow["y"] = flow["x"].run_python(very_slow)
    # A grace period shorter than a morsel: the morsel is stopped and handed back, and runs elsewhere.
    with WorkerProcess("--threads", "1", "--grace", "0.1") as a, WorkerProcess("--threads", "2") as b:
        c = dflow.Cluster([a.address, b.address], morsel_rows=40)
        job = c.submit(flow, range(120))
        while json.loads(c._action(a.address, "info"))["in_flight"] == 0:  # the worker itself holds a morsel
            time.sleep(0.002)
        assert a.stop() == 0
        assert job.result(timeout=120) == [{"x": i, "y": i + 1} for i in range(120)]
        assert "handing them back" in a.log
        assert job.progress()["morsels_resent"] >= 1


def test_jobs_report_progress_and_can_be_cancelled(cluster, workers):
    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.01)
        return x

    flow["y"] = flow["x"].run_python(slow)
    job = cluster.submit(flow, range(10**6))
    while job.progress()["inputs_done"] < 32:  # two morsels handed back
        time.sleep(0.01)
    assert job.status() == "running" and job.progress()["morsels_done"] >= 2
    assert job.cancel() and job.status() == "cancelled"
    with pytest.raises(dflow.JobCancelled):
        job.result()
    deadline = time.monotonic() + 30
    while any(json.loads(cluster._action(w.address, "info"))["in_flight"] for w in workers):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done = cluster.submit(flow, range(5))
    assert done.result(timeout=60) == [{"x": i, "y": i} for i in range(5)] and done.status() == "succeeded"
    assert not done.cancel()
    with pytest.raises(TypeError, match="unknown execution option"):
        cluster.submit(flow, range(5), batch_rowz=3)
    with pytest.raises(TypeError, match="submit"):
        cluster.submit("not a flow", range(5))
    with pytest.raises(ValueError, match="checkpoint= cannot be combined with cluster="):
        cluster.submit(flow, range(5), checkpoint="ckpt/")


def test_bad_cluster_arguments_are_refused():
    for bad in ([], [""], ["a:1", "a:1"]):
        with pytest.raises(ValueError):
            dflow.Cluster(bad)
    with pytest.raises(ValueError, match="morsel_rows"):
        dflow.Cluster(["a:1"], morsel_rows=0)
    with pytest.raises(ValueError, match="printable ASCII") as e:
        dflow.Cluster(["a:1"], token="s3cr\u00e9t token")
    assert "s3cr" not in str(e.value)
    with pytest.raises(TypeError, match="cluster= takes"):
        dflow.Flow("x", int).collect_batch([1], cluster="127.0.0.1:7711")


def test_the_run_report_adds_up_the_workers_morsels(cluster):
    flow = _doc_flow()
    flow.collect_batch(DOCS, on_error="return")
    local = flow.last_run()
    flow.collect_batch(DOCS, on_error="return", cluster=cluster)
    remote = flow.last_run()
    assert remote is dflow.last_run() and remote.status == "completed"
    assert remote.accounting == local.accounting
    assert remote.inputs == local.inputs == len(DOCS)
    assert remote.plan_fingerprint == flow.fingerprint()
    for key, op in local.ops.items():
        assert (remote.ops[key].rows_in, remote.ops[key].rows_out, remote.ops[key].rows_failed,
                remote.ops[key].failures_by_type) == (op.rows_in, op.rows_out, op.rows_failed, op.failures_by_type)
    assert remote.throughput.inputs_done[-1] == len(DOCS)
    with pytest.raises(ValueError, match="max_cost_usd"):
        flow.collect_batch(DOCS, cluster=cluster, max_cost_usd=1.0)


def test_llm_usage_and_provider_keys_work_as_locally():
    """The provider travels as configuration; each worker reads the key from its own environment;
    usage (requests, tokens) comes back and adds up to what a local run uses."""
    from daft_flow.testing import FaultServer

    key = "sk-cluster-fault-4242"
    with FaultServer(api_key=key) as server, \
            WorkerProcess("--threads", "2", env={"CLUSTER_LLM_KEY": key}) as w1, \
            WorkerProcess("--threads", "2") as w2:
        provider = dflow.OpenAIProvider(base_url=server.base_url, api_key=key, api_key_env="CLUSTER_LLM_KEY",
                                        model="fault-chat")
        flow = dflow.Flow("t", str)
        flow["a"] = flow["t"].prompt("Say: {t}".format(t=flow["t"]), provider=provider, max_tokens=4)
        texts = [f"text {i}" for i in range(40)]
        local = flow.collect_batch(texts)
        local_usage = flow.last_usage().as_dict()
        with_key = dflow.Cluster([w1.address], morsel_rows=8)
        assert flow.collect_batch(texts, cluster=with_key) == local
        usage = flow.last_usage()
        assert usage is dflow.usage()
        for name in ("rows", "requests", "input_tokens", "output_tokens", "errors", "truncated"):
            assert usage.total(name) == sum(u[name] for u in local_usage.values()), name
        assert key not in w1.log
        # A worker without the variable stops the run as a local run would, naming it, never the key.
        with pytest.raises(dflow.ProviderConfigError, match="set the environment variable CLUSTER_LLM_KEY") as e:
            flow.collect_batch(texts[:3], cluster=dflow.Cluster([w2.address]))
        assert key not in str(e.value) and "raised on dflow-worker" in "\n".join(e.value.__notes__)


def test_workers_serve_tls(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, pem_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(pem_key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    with WorkerProcess("--tls-cert", str(cert), "--tls-key", str(pem_key), token=TOKEN) as w:
        assert w.url.startswith("grpc+tls://")
        flow = dflow.Flow("x", int)
        flow["y"] = flow["x"].run_python(lambda x: x + 1, return_type=int)
        c = dflow.Cluster([w.address], token=TOKEN, tls_root_certs=str(cert))
        assert flow.collect_batch(range(10), cluster=c) == [{"x": i, "y": i + 1} for i in range(10)]
        plain = dflow.Cluster([f"grpc://{w.address}"], token=TOKEN, connect_attempts=1, connect_timeout=2)
        with pytest.raises(dflow.ClusterError, match="unreachable"):
            flow.collect_batch(range(10), cluster=plain)


def test_the_console_script_is_declared():
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["dflow-worker"] == "daft_flow.cluster.worker:main"
    from daft_flow.cluster.worker import main

    assert main(["--listen", "0.0.0.0:0"]) == 2  # refuses without a token, before listening


def test_a_frozen_worker_is_noticed_and_its_morsels_run_elsewhere():
    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.005)
        return x - 1

    flow["y"] = flow["x"].run_python(slow)
    with WorkerProcess("--threads", "1") as a, WorkerProcess("--threads", "1") as b:
        job = dflow.Cluster([a.address, b.address], morsel_rows=10, heartbeat=0.5).submit(flow, range(300))
        while job.progress()["workers"].get(b.address, {}).get("in_flight", 0) == 0:
            time.sleep(0.002)
        b.proc.send_signal(signal.SIGSTOP)  # alive, connections open, never answering
        try:
            assert job.result(timeout=120) == [{"x": i, "y": i - 1} for i in range(300)]
            assert job.progress()["workers"][b.address]["lost"]
        finally:
            b.proc.send_signal(signal.SIGCONT)


def test_filter_and_limit_on_a_cluster_match_local(cluster):
    doc = dflow.Flow("doc", str)
    doc["n"] = doc["doc"].run_python(len, return_type=int)
    kept = doc.filter(doc["n"] > 40)
    chunks = kept["doc"].chunk_text(max_chars=30, overlap=0)
    for flow in (kept, kept.limit(7), chunks, chunks.limit(25)):
        assert flow.collect_batch(DOCS, cluster=cluster) == flow.collect_batch(DOCS)
        assert flow.collect_arrow(DOCS, lineage=True, cluster=cluster).equals(flow.collect_arrow(DOCS, lineage=True))
    assert kept.last_run().accounting == (kept.collect_batch(DOCS), kept.last_run())[1].accounting


def test_ctrl_c_during_a_cluster_run_stops_it(cluster, workers):
    import threading

    flow = dflow.Flow("x", int)

    def slow(x: int) -> int:
        import time

        time.sleep(0.01)
        return x

    flow["y"] = flow["x"].run_python(slow)
    returned = threading.Event()

    def press_ctrl_c() -> None:
        # Again every 2 s until the call returns: Python drops a KeyboardInterrupt that lands while the
        # main thread runs a finalizer (__del__, weakref callbacks), which a loaded machine makes likely.
        while not returned.wait(0.5 if not presses else 2.0):
            presses.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    presses: list[float] = []
    presser = threading.Thread(target=press_ctrl_c)
    # Ctrl-C as at a terminal: a test run started in the background (CI) inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            flow.collect_batch(range(10**5), cluster=cluster)
    finally:
        returned.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert len(presses) <= 3, f"Ctrl-C was ignored {len(presses) - 1} times"
    deadline = time.monotonic() + 30
    while any(json.loads(cluster._action(w.address, "info"))["in_flight"] for w in workers):
        assert time.monotonic() < deadline
        time.sleep(0.05)


class _FullDisk(dflow.JSONFileSink):
    """Every write fails, as on a full disk: on a cluster the rows fail here, where writes happen."""

    def _write_lines(self, path, lines):
        raise OSError(28, "injected: No space left on device")


def test_failed_sink_writes_on_a_cluster_fail_their_rows_as_locally(cluster, tmp_path):
    from daft_flow.retry import Backoff

    def run(where, **options):
        doc = dflow.Flow("doc", str)
        good = doc.write_sink(dflow.JSONFileSink(str(where / "good")), doc["doc"])
        bad = doc.write_sink(_FullDisk(str(where / "bad")), doc["doc"])
        bad._writer.backoff = Backoff(initial=0.001, maximum=0.001)
        return dflow.Multisink([good, bad]).collect_batch(DOCS[:40], on_error="return", **options)

    local, remote = run(tmp_path / "local"), run(tmp_path / "remote", cluster=cluster)
    assert [r.rows_written for r in remote] == [r.rows_written for r in local] == [40, 0]
    assert [(f.input_index, f.row_id, f.op, f.field, type(f.error).__name__) for f in remote[1].failures] == \
        [(f.input_index, f.row_id, f.op.replace("/local/", "/remote/"), f.field, type(f.error).__name__)
         for f in local[1].failures]
    assert len(remote[1].failures) == 40 and "No space left" in str(remote[1].failures[0].error.__cause__)


class _Model:
    """A class function whose __init__ (loading weights) leaves a line in a file per instance."""

    def __init__(self, log_path: str) -> None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write("loaded\n")

    def __call__(self, xs: list[int]) -> list[int]:
        return [x * 10 for x in xs]


def test_class_function_instances_stay_loaded_across_morsels_and_runs(tmp_path):
    import functools

    log = tmp_path / "loads.txt"
    flow = dflow.Flow("x", int)
    flow["y"] = flow["x"].run_python(functools.partial(_Model, str(log)), batch=True, return_type=int)
    with WorkerProcess("--threads", "1") as w:
        c = dflow.Cluster([w.address], morsel_rows=10)
        for _ in range(2):  # 2 runs of 10 morsels: one instance, loaded once
            assert flow.collect_batch(range(100), cluster=c) == [{"x": i, "y": 10 * i} for i in range(100)]
        assert log.read_text().count("loaded") == 1
