"""Batch errors (BatchError, on_batch_error="split") and op timeouts."""
import asyncio
import logging
import threading
import time

import pytest

import daft_flow as dflow


def poisoned_batch(values: list) -> list:
    """Fails the whole call if any value is poisoned, like a real batch API would."""
    calls.append(len(values))
    for v in values:
        if v.startswith("poison"):
            raise ValueError(f"bad value in batch: {v}")
    return [v.upper() for v in values]


calls: list[int] = []


@pytest.fixture(autouse=True)
def fresh_calls():
    calls.clear()
    yield


def test_a_failing_batch_fails_its_rows_with_a_batch_error():
    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(poisoned_batch, batch=True, return_type=str)
    values = [f"v{i}" for i in range(30)] + ["poison!"]
    out = doc.collect_batch(values, on_error="return")
    assert all(isinstance(r, dflow.RowFailure) for r in out)  # one batch: every row fails
    error = out[0].error
    assert isinstance(error, dflow.BatchError) and error.batch_size == 31 and isinstance(error.__cause__, ValueError)


def test_split_bisects_down_to_the_offending_row():
    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(poisoned_batch, batch=True, return_type=str, on_batch_error="split")
    values = [f"v{i}" for i in range(63)]
    values.insert(17, "poison-17")
    out = doc.collect_batch(values, on_error="return")
    failed = [i for i, r in enumerate(out) if isinstance(r, dflow.RowFailure)]
    assert failed == [17]
    error = out[17].error
    assert isinstance(error, dflow.BatchError) and error.index == 17 and error.batch_size == 64
    assert "element 17 of a batch of 64 rows" in str(error) and isinstance(error.__cause__, ValueError)
    assert [r["y"] for i, r in enumerate(out) if i != 17] == [v.upper() for v in values if v != "poison-17"]
    assert len(calls) <= 1 + 2 * 7  # the batch, then two halves per level down to one row


def test_split_with_a_batch_size_and_arrow_arguments():
    import pyarrow as pa

    def arrow_fn(values: pa.Array) -> list:
        if any(v.startswith("poison") for v in values.to_pylist()):
            raise ValueError("poisoned")
        return [v.upper() for v in values.to_pylist()]

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(arrow_fn, batch=True, batch_size=8, return_type=str, on_batch_error="split")
    values = [f"v{i}" for i in range(20)] + ["poison-a"] + [f"w{i}" for i in range(5)] + ["poison-b"]
    out = doc.collect_batch(values, on_error="return")
    assert [i for i, r in enumerate(out) if isinstance(r, dflow.RowFailure)] == [20, 26]
    assert {(r.error.batch_size, r.error.index) for r in out if isinstance(r, dflow.RowFailure)} == {(8, 4), (3, 2)}


def test_split_and_retry_together():
    seen: set[str] = set()

    def flaky_batch(values: list) -> list:
        new = [v for v in values if v not in seen]
        seen.update(values)
        if any(v == "flaky" for v in new):
            raise ConnectionError("dropped")
        return values

    doc = dflow.Flow("x", str).with_policy(retry=dflow.Retry(max_attempts=2, initial_delay=0.001))
    doc["y"] = doc["x"].run_python(flaky_batch, batch=True, return_type=str, on_batch_error="split")
    values = ["a", "b", "flaky", "c"]
    assert [r["y"] for r in doc.collect_batch(values)] == values


def test_a_hung_async_function_times_out_while_the_rest_finish():
    async def maybe_hang(v: str) -> str:
        if v == "hang":
            await asyncio.sleep(3600)
        await asyncio.sleep(0.001)
        return v.upper()

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(maybe_hang, return_type=str, timeout=0.2)
    values = [f"v{i}" for i in range(40)] + ["hang"] + [f"w{i}" for i in range(40)]
    out = doc.collect_batch(values, on_error="return")
    failed = [r for r in out if isinstance(r, dflow.RowFailure)]
    assert len(failed) == 1 and failed[0].input_index == 40 and isinstance(failed[0].error, TimeoutError)
    assert "maybe_hang) did not finish within its timeout of 0.2 s" in str(failed[0].error)
    assert sum(isinstance(r, dict) for r in out) == 80


def test_the_flows_policy_timeout_is_the_default_of_its_ops():
    async def hang(v: str) -> str:
        await asyncio.sleep(3600)
        return v

    doc = dflow.Flow("x", str).with_policy(timeout=0.1)
    doc["y"] = doc["x"].run_python(hang, return_type=str)
    doc["z"] = doc["x"].run_python(hang, return_type=str, timeout=0.2)  # its own wins
    (failure,) = [f for f in doc.collect_batch(["a"], on_error="return") if isinstance(f, dflow.RowFailure)]
    assert isinstance(failure.error, TimeoutError) and failure.field == "y" and "0.1 s" in str(failure.error)


def test_a_timeout_is_retried_like_any_error():
    tries = {"n": 0}

    async def slow_once(v: str) -> str:
        tries["n"] += 1
        if tries["n"] == 1:
            await asyncio.sleep(3600)
        return v

    doc = dflow.Flow("x", str).with_policy(retry=dflow.Retry(max_attempts=2, initial_delay=0.001, on=TimeoutError))
    doc["y"] = doc["x"].run_python(slow_once, return_type=str, timeout=0.1)
    assert doc.collect("a") == {"x": "a", "y": "a"}


def test_a_sync_function_past_its_timeout_is_named_in_a_warning_and_kept(caplog):
    def slow(v: str) -> str:
        if v == "slow":
            time.sleep(0.6)
        return v.upper()

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(slow, return_type=str, timeout=0.1)
    with caplog.at_level(logging.WARNING, logger="daft_flow"):
        out = doc.collect_batch(["a", "slow", "b"], on_error="return")
    assert out == [{"x": "a", "y": "A"}, {"x": "slow", "y": "SLOW"}, {"x": "b", "y": "B"}]
    late = [r.getMessage() for r in caplog.records if "past its timeout" in r.getMessage()]
    assert len(late) == 1
    row_id = doc.collect_arrow(["slow"], lineage=True).column("_row_id")[0].as_py()
    assert f"slow) computing field 'y' on row {row_id} (input 1) of flow 'x'" in late[0]
    assert "cannot be interrupted" in late[0]
    assert any("finished after" in r.getMessage() for r in caplog.records)


def test_a_sync_batch_function_past_its_timeout_is_named_too(caplog):
    def slow_batch(values: list) -> list:
        time.sleep(0.4)
        return values

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(slow_batch, batch=True, return_type=str, timeout=0.1)
    with caplog.at_level(logging.WARNING, logger="daft_flow"):
        assert doc.collect("a")["y"] == "a"
    assert any("slow_batch) on a batch of 1 rows has been running" in r.getMessage()
               for r in caplog.records)


def test_the_watchdog_thread_goes_away():
    from daft_flow.execution.watchdog import watchdog

    doc = dflow.Flow("x", str)
    doc["y"] = doc["x"].run_python(str.upper, return_type=str, timeout=5)
    doc.collect_batch(["a", "b"])
    for _ in range(100):
        if watchdog._thread is None:
            break
        threading.Event().wait(0.02)
    assert watchdog._thread is None
