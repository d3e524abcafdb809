"""The embedded chat model: it follows instructions, its cold start is visible, dflow.warmup()
starts it ahead of time, and its server is spawned without forking the parent."""
import logging
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

import daft_flow as dflow
from daft_flow.llm.local import LOCAL_CHAT_MODELS, LlamaServer, LocalProvider

PARAGRAPHS = [
    "Python's asyncio module provides infrastructure for writing single-threaded concurrent code using "
    "coroutines, multiplexing I/O access over sockets and other resources, running network clients and "
    "servers, and other related primitives.",
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to synthesize "
    "foods from carbon dioxide and water. It generally involves the green pigment chlorophyll and generates "
    "oxygen as a byproduct.",
    "The Great Wall of China is a series of fortifications that were built across the historical northern "
    "borders of ancient Chinese states and Imperial China as protection against various nomadic groups from "
    "the Eurasian Steppe.",
]
_STOP = {"the", "a", "an", "of", "and", "or", "to", "in", "is", "are", "as", "for", "from", "by", "that", "it",
         "this", "with", "on", "some", "other", "which", "were", "was", "be", "its"}


def _words(text):
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP and len(w) > 2}


@pytest.fixture
def fresh_provider():
    """A LocalProvider with servers of its own (so this test sees their cold start), stopped after."""
    provider = LocalProvider()
    yield provider
    for server in provider._servers.values():
        server.stop()


def test_embedded_model_follows_instructions_with_a_visible_cold_start(fresh_provider, caplog):
    with caplog.at_level(logging.INFO, logger="daft_flow"):
        dflow.warmup(fresh_provider, embeddings=False)
    started = [r.getMessage() for r in caplog.records if r.name == "daft_flow"]
    assert re.fullmatch(r"starting the embedded model SmolLM2-135M-Instruct on 127\.0\.0\.1:\d+ .*", started[0])
    assert re.fullmatch(r"embedded model SmolLM2-135M-Instruct ready in \d+\.\d s", started[1])
    assert f":{fresh_provider.server.port} " in started[0] and fresh_provider.server.running()

    caplog.clear()
    doc = dflow.Flow("paragraph", str)
    doc["summary"] = doc["paragraph"].prompt("Summarize this text in one sentence.", provider=fresh_provider,
                                             include_finish_reason=True)
    with caplog.at_level(logging.INFO, logger="daft_flow"):
        rows = doc.collect_batch(PARAGRAPHS)
    assert not caplog.records  # warmed up: no second start, and no answer was cut
    for paragraph, row in zip(PARAGRAPHS, rows):
        answer, reason = row["summary"]["answer"], row["summary"]["finish_reason"]
        assert answer.strip(), row
        assert reason == "stop", row  # the model ended its answer itself
        assert len(_words(answer) & _words(paragraph)) >= 2, (answer, paragraph)
    usage = doc.last_usage()["summary"]
    assert usage.requests == 3 and usage.rows == 3 and usage.truncated == 0 and usage.output_tokens > 0

    # Answers cut at max_tokens are flagged: counted, kept, and logged once for the op.
    doc["short"] = doc["paragraph"].prompt("Describe this text in detail.", provider=fresh_provider, max_tokens=3)
    with caplog.at_level(logging.INFO, logger="daft_flow"):
        doc.collect_batch(PARAGRAPHS)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 of 3 answer(s) were cut at max_tokens=3" in warnings[0].getMessage()
    assert doc.last_usage()["short"].truncated == 3


def test_gemma_stays_selectable_and_unknown_models_are_one_clear_error():
    assert LocalProvider().model == "smollm2-135m-instruct"
    gemma = LocalProvider(chat_model="gemma-3-270m")
    assert gemma.model == "gemma-3-270m" and gemma.server.chat_format == "gemma"
    assert LlamaServer().chat_format is None  # SmolLM2: the chat template the gguf carries
    assert set(LOCAL_CHAT_MODELS) == {"smollm2-135m-instruct", "gemma-3-270m"}
    with pytest.raises(ValueError, match="unknown chat_model 'gpt-5'"):
        LocalProvider(chat_model="gpt-5")
    flow = dflow.Flow("x", str)
    flow["y"] = flow["x"].prompt("hi", provider=LocalProvider(), model="gpt-5")
    with pytest.raises(dflow.ProviderConfigError, match="the embedded chat models are gemma-3-270m, smollm2"):
        flow.collect_batch(["a", "b"])


def test_server_spawns_without_fork_and_dies_with_its_parent():
    # A threaded parent under -W error (Python 3.12+ warns about fork() with threads running): the
    # server must start without a preexec_fn (which forces a fork) and still die with its parent.
    script = textwrap.dedent("""
        import subprocess, threading, time
        seen = []
        real = subprocess.Popen
        class Recording(real):
            def __init__(self, *args, **kwargs):
                seen.append(kwargs.get("preexec_fn"))
                super().__init__(*args, **kwargs)
        subprocess.Popen = Recording
        stop = threading.Event()
        for _ in range(3):
            threading.Thread(target=stop.wait, daemon=True).start()
        from daft_flow.llm.local import LlamaServer
        server = LlamaServer().start()
        print(server.process.pid, seen, flush=True)
        time.sleep(600)
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
    parent = subprocess.Popen([sys.executable, "-W", "error", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = parent.stdout.readline()
        assert line, parent.stderr.read()
        pid_text, seen = line.split(" ", 1)
        assert seen.strip() == "[None]"
        server_pid = int(pid_text)
        assert _alive(server_pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        parent.stderr.close()
    deadline = time.monotonic() + 60
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server_pid), "the llama.cpp server outlived the process that started it"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def test_library_logs_reach_a_new_user_once():
    code = "import logging, daft_flow; from daft_flow._logging import logger; {setup}; logger.info('hello %s', 1)"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(dflow.__file__)))
    plain = subprocess.run([sys.executable, "-c", code.format(setup="pass")], capture_output=True, text=True,
                           env=env, timeout=120)
    assert plain.stderr.strip() == "daft_flow: hello 1"
    configured = subprocess.run([sys.executable, "-c", code.format(setup="logging.basicConfig(format='%(name)s %(message)s')")],
                                capture_output=True, text=True, env=env, timeout=120)
    assert configured.stderr.strip() == "daft_flow hello 1"  # the application's handler only: no duplicate


@pytest.mark.slow
@pytest.mark.llama_server
def test_gemma_answers_through_model_name():
    provider = LocalProvider()
    try:
        flow = dflow.Flow("x", str)
        flow["y"] = flow["x"].prompt("The capital of France is", provider=provider, model="gemma-3-270m",
                                     max_tokens=8, include_finish_reason=True)
        row = flow.collect("Paris.")
        assert row["y"]["finish_reason"] in ("stop", "length") and isinstance(row["y"]["answer"], str)
        assert provider._servers["gemma-3-270m"].running() and "smollm2-135m-instruct" not in provider._servers
    finally:
        for server in provider._servers.values():
            server.stop()
