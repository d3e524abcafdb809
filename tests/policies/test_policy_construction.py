"""Failure policies as built: bad input fails at construction, policies travel with plans, and
they are part of the plan's policy fingerprint, not of node fingerprints."""
import pickle

import pytest

import daft_flow as dflow


def upper(s: str) -> str:
    return s.upper()


def chunk_flow():
    doc = dflow.Flow("doc", str)
    chunks = doc.chunk_text(max_chars=50, overlap=0)
    chunks["up"] = chunks["chunk"].run_python(upper)
    return doc, chunks


def test_unknown_failure_names_are_refused():
    doc, chunks = chunk_flow()
    with pytest.raises(ValueError, match=r"failure must be one of 'isolate', 'fail_parent', got 'fail_the_parent'"):
        chunks.with_policy("fail_the_parent")
    with pytest.raises(ValueError, match="failure must be one of"):
        chunks.with_policy(failure=None)


def test_retry_needs_at_least_one_attempt_and_sane_timing():
    with pytest.raises(ValueError, match=r"max_attempts must be an int >= 1 \(1: no retry\), got 0"):
        dflow.Retry(max_attempts=0)
    with pytest.raises(ValueError, match="max_attempts"):
        dflow.Retry(max_attempts=2.5)
    with pytest.raises(ValueError, match="max_attempts"):
        dflow.Retry(max_attempts=True)
    with pytest.raises(ValueError, match="initial_delay must be a finite number >= 0"):
        dflow.Retry(initial_delay=-1)
    with pytest.raises(ValueError, match="max_delay"):
        dflow.Retry(max_delay=float("inf"))
    with pytest.raises(ValueError, match="multiplier must be a finite number >= 1"):
        dflow.Retry(multiplier=0.5)
    with pytest.raises(TypeError, match="on must be an exception class"):
        dflow.Retry(on=(ValueError, "KeyError"))
    with pytest.raises(TypeError, match="on must be an exception class"):
        dflow.Retry(on=())
    assert dflow.Retry(on=KeyError).on == (KeyError,)


def test_retry_must_be_a_retry_and_dead_letters_a_sink():
    doc, chunks = chunk_flow()
    with pytest.raises(TypeError, match=r"retry must be a dflow.Retry\(...\) \(or None\), got int"):
        chunks.with_policy(retry=3)
    with pytest.raises(TypeError, match=r"with_policy\(\) on flow 'doc.chunks': dead_letter must be a sink "
                                        r"\(dflow.JSONFileSink, .*got str"):
        chunks.with_policy(dead_letter="dead/")
    with pytest.raises(TypeError, match="dead_letter must be a sink"):
        chunks.with_policy(dead_letter=chunks.write_sink(dflow.ArrowSink(), chunks["up"]))


def test_fail_parent_needs_a_parent_and_leaves_retries_to_it(tmp_path):
    doc, chunks = chunk_flow()
    with pytest.raises(ValueError, match="'doc' is a root flow"):
        doc.with_policy("fail_parent")
    with pytest.raises(ValueError, match="set retry= on the parent flow instead"):
        chunks.with_policy("fail_parent", retry=dflow.Retry())
    with pytest.raises(ValueError, match="set dead_letter= on the parent flow"):
        chunks.with_policy("fail_parent", dead_letter=dflow.JSONFileSink(str(tmp_path)))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "5", True])
def test_timeouts_must_be_positive_seconds(bad):
    doc, chunks = chunk_flow()
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        chunks.with_policy(timeout=bad)
    with pytest.raises(ValueError, match=r"run_python\(upper\).*timeout must be a positive number"):
        doc["doc"].run_python(upper, timeout=bad)
    with pytest.raises(ValueError, match=r"prompt\(\): timeout must be a positive number"):
        doc["doc"].prompt("x", timeout=bad)


def test_on_batch_error_is_for_batch_functions():
    doc = dflow.Flow("doc", str)
    with pytest.raises(ValueError, match=r"on_batch_error must be one of 'fail', 'split', got 'bisect'"):
        doc["doc"].run_python(lambda xs: xs, batch=True, on_batch_error="bisect")
    with pytest.raises(ValueError, match=r"on_batch_error applies to batch functions \(batch=True\)"):
        doc["doc"].run_python(upper, on_batch_error="split")


def test_a_policy_leaves_the_original_flow_alone():
    doc, chunks = chunk_flow()
    strict = chunks.with_policy("fail_parent")
    assert "on failure" in strict.explain() and "fail the parent row" in strict.explain()
    assert "on failure" not in chunks.explain()
    assert strict.fields == chunks.fields


def test_two_policies_for_one_flow_in_one_run_are_refused():
    doc, chunks = chunk_flow()
    a = chunks.with_policy(retry=dflow.Retry(max_attempts=2))
    b = chunks.with_policy(retry=dflow.Retry(max_attempts=3))
    multi = dflow.Multisink([a.write_sink(dflow.ArrowSink(), a["up"]), b.write_sink(dflow.ArrowSink(), b["chunk"])])
    with pytest.raises(ValueError, match="two different failure policies in one run"):
        multi.collect("some text")


def test_policies_travel_with_plans(tmp_path):
    doc = dflow.Flow("doc", str).with_policy(retry=dflow.Retry(max_attempts=4, initial_delay=0.5, on=(KeyError,)),
                                             dead_letter=dflow.JSONFileSink(str(tmp_path)), timeout=7)
    chunks = doc.chunk_text(max_chars=50, overlap=0).with_policy("fail_parent")
    chunks["up"] = chunks["chunk"].run_python(upper, timeout=2)
    again = dflow.Flow.from_bytes(chunks.to_bytes())
    assert again.to_ir() == chunks.to_ir()
    assert again.explain() == chunks.explain()
    text = again.explain()
    assert "retry up to 4 attempts (0.5 s x2, at most 30 s, jitter) on KeyError" in text
    assert "dead letters to JSONFileSink" in text and "timeout 7 s per call" in text and "timeout=2s" in text
    assert pickle.loads(pickle.dumps(chunks)).to_ir().policy_fingerprint == chunks.to_ir().policy_fingerprint


def test_policies_are_not_part_of_node_fingerprints_but_of_the_policy_fingerprint(tmp_path):
    doc, chunks = chunk_flow()
    retried = chunks.with_policy(retry=dflow.Retry(max_attempts=5), dead_letter=dflow.JSONFileSink(str(tmp_path)))
    plain, policied = chunks.to_ir(), retried.to_ir()
    assert [n.fingerprint for n in plain.nodes] == [n.fingerprint for n in policied.nodes]
    assert [lvl.fingerprint for lvl in plain.levels] == [lvl.fingerprint for lvl in policied.levels]
    # Retries and dead letters do not change which rows come out, nor any row's value...
    assert plain.fingerprint == policied.fingerprint
    # ... but they are what a run does with failures.
    assert plain.policy_fingerprint != policied.policy_fingerprint
    other = chunks.with_policy(retry=dflow.Retry(max_attempts=6), dead_letter=dflow.JSONFileSink(str(tmp_path)))
    assert other.to_ir().policy_fingerprint != policied.policy_fingerprint
    # fail_parent changes which rows come out (a parent fails with its child): the plan's identity.
    assert chunks.with_policy("fail_parent").fingerprint() != chunks.fingerprint()
    # An op's timeout is a policy too.
    doc2 = dflow.Flow("doc", str)
    doc2["up"] = doc2["doc"].run_python(upper)
    doc3 = dflow.Flow("doc", str)
    doc3["up"] = doc3["doc"].run_python(upper, timeout=3)
    assert doc2.fingerprint() == doc3.fingerprint()
    assert doc2.to_ir().policy_fingerprint != doc3.to_ir().policy_fingerprint


def test_a_dead_letter_sink_must_take_typed_records(tmp_path):
    # ParquetSink refuses untyped columns; dead-letter records are typed, so it is accepted.
    doc, chunks = chunk_flow()
    chunks.with_policy(dead_letter=dflow.ParquetSink(str(tmp_path)))
