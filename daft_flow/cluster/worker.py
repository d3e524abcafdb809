"""``dflow-worker``: a long-running Arrow Flight server that runs morsels of plans for clients.

    dflow-worker --listen 127.0.0.1:7711 [--threads N] [--gpus 0,1] [--memory-budget 8GB]
                 [--token-file PATH] [--tls-cert CERT --tls-key KEY]

Protocol (Arrow Flight over gRPC):
- ``do_action("info")``: JSON with the daft_flow and IR versions, capacity (``slots``: morsels run
  at once), load, limits and whether it is draining;
- ``do_action("has_plan", key)`` / ``do_action("plan", plan bytes)``: plans are kept by key
  (fingerprint + digest) so functions, providers and models stay loaded across calls;
- ``do_exchange(command=JSON {plan, first_input})``: the client streams one morsel's inputs, the
  worker streams back the rows of every output per runtime batch (see ``cluster/wire.py``).

Security: every call carries ``authorization: Bearer <token>`` when the worker has a token
(``DFLOW_WORKER_TOKEN`` or ``--token-file``), compared in constant time; without a token the
worker listens on loopback only. A plan carries pickled Python code: whoever may send one may run
code as the worker's user. The token is never logged or echoed.

SIGTERM drains: new morsels are refused (clients send them elsewhere), running ones get
``--grace`` seconds to finish, then they are stopped and handed back (the client re-sends them).
"""
from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import pickle
import signal
import socket
import sys
import threading
import time
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.flight as flight

from daft_flow.cluster.morsel import MorselCancelled, PlanCache, run_morsel
from daft_flow.cluster.wire import decode_inputs

_log = logging.getLogger("daft_flow")

APP_ERROR = b"dflow:app-error:"  # extra_info of errors of the run itself (not of the transport)
UNKNOWN_PLAN = b"dflow:unknown-plan"
TOO_LARGE = b"dflow:too-large"
DEFAULT_PORT = 7711
DEFAULT_MAX_MORSEL_BYTES = 512 * 2**20


class _TokenCheck(flight.ServerMiddlewareFactory):
    """Refuses every call whose bearer token is not the worker's (constant-time comparison)."""

    def __init__(self, token: bytes) -> None:
        self._expected = b"Bearer " + token

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> None:
        given = headers.get("authorization") or [""]
        value = given[0].encode() if isinstance(given[0], str) else bytes(given[0])
        if not hmac.compare_digest(value, self._expected):
            raise flight.FlightUnauthenticatedError(
                "dflow-worker refused the call: wrong or missing token (set the worker's DFLOW_WORKER_TOKEN and "
                "pass the same to dflow.Cluster(token=...))")
        return None

    def __repr__(self) -> str:
        return "_TokenCheck(token=***)"


class Worker(flight.FlightServerBase):
    """The Flight service of ``dflow-worker`` (also started in process by tests and benchmarks)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None, slots: int | None = None,
                 memory_budget: int = 2 * 2**30, max_morsel_bytes: int = DEFAULT_MAX_MORSEL_BYTES,
                 tls: tuple[bytes, bytes] | None = None, gpus: list[int] | None = None) -> None:
        check_listen(host, check_token(token, "dflow-worker"))
        scheme = "grpc+tls" if tls else "grpc"
        middleware = {"token": _TokenCheck(token.encode())} if token else {}
        certs = [flight.CertKeyPair(cert=tls[0], key=tls[1])] if tls else []
        super().__init__(f"{scheme}://{_host_for_url(host)}:{port}", tls_certificates=certs, middleware=middleware)
        self.address = f"{scheme}://{_host_for_url(host)}:{self.port}"
        self.slots = slots or os.cpu_count() or 1
        self.memory_budget = memory_budget
        self.max_morsel_bytes = max_morsel_bytes
        self.gpus = list(gpus or [])
        self.plans = PlanCache()
        self._gate = threading.Semaphore(self.slots)
        self._lock = threading.Lock()
        self._in_flight = 0  # morsels received, running or waiting for a slot
        self._morsels_done = 0
        self._draining = threading.Event()
        self._stop_runs = threading.Event()
        self.authenticated = bool(token)

    def __repr__(self) -> str:
        return f"dflow.Worker({self.address}, slots={self.slots}, token={'***' if self.authenticated else None})"

    # -- actions ------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        from daft_flow import __version__
        from daft_flow.plan.trace import IR_VERSION

        return {"daft_flow": __version__, "ir_version": IR_VERSION, "slots": self.slots, "in_flight": self._in_flight,
                "morsels_done": self._morsels_done, "plans": len(self.plans), "max_morsel_bytes": self.max_morsel_bytes,
                "memory_budget": self.memory_budget, "gpus": self.gpus, "draining": self._draining.is_set(),
                "pid": os.getpid(), "threads": _thread_count(), "rss_bytes": _rss()}

    def do_action(self, context: Any, action: flight.Action) -> Iterator[flight.Result]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        if kind == "info":
            return iter([flight.Result(json.dumps(self.info()).encode())])
        if kind == "has_plan":
            return iter([flight.Result(b"1" if self.plans.get(body.decode()) is not None else b"0")])
        if kind == "plan":
            try:
                key = self.plans.put(body)
            except Exception as e:  # another IR version, damaged bytes, a package missing here
                raise _app_error(e) from None
            _log.info("dflow-worker: plan %s received (%d bytes)", key, len(body))
            return iter([flight.Result(key.encode())])
        raise flight.FlightServerError(f"dflow-worker has no action {kind!r}; it knows info, has_plan, plan")

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("info", "versions, capacity and load (JSON)"), ("has_plan", "whether a plan key is cached"),
                ("plan", "send plan bytes; returns its key")]

    # -- morsels ------------------------------------------------------------------------------------
    def do_exchange(self, context: Any, descriptor: flight.FlightDescriptor, reader: Any, writer: Any) -> None:
        if self._draining.is_set():
            raise flight.FlightUnavailableError(f"dflow-worker {self.address} is shutting down")
        request = json.loads(descriptor.command)
        entry = self.plans.get(str(request.get("plan", "")))
        if entry is None:
            raise flight.FlightServerError("dflow-worker does not hold this plan (send it first)", extra_info=UNKNOWN_PLAN)
        with self._lock:
            self._in_flight += 1
        try:
            values = self._read_morsel(reader)
            options = pickle.loads(bytes.fromhex(request.get("options", ""))) if request.get("options") else {}
            with self._gate:
                self._run(context, entry, values, int(request["first_input"]), options, writer)
            with self._lock:
                self._morsels_done += 1
        finally:
            with self._lock:
                self._in_flight -= 1

    def _read_morsel(self, reader: Any) -> list[Any]:
        batches, size = [], 0
        for chunk in reader:
            if chunk.data is None:
                continue
            size += chunk.data.nbytes
            if size > self.max_morsel_bytes:
                raise flight.FlightServerError(
                    f"dflow-worker {self.address}: a morsel over {self.max_morsel_bytes} bytes was refused (the "
                    f"worker's --max-morsel-bytes); send smaller morsels (dflow.Cluster(morsel_bytes=...))",
                    extra_info=TOO_LARGE)
            batches.append(chunk.data)
        if not batches:
            return []
        return decode_inputs(pa.Table.from_batches(batches))

    def _run(self, context: Any, entry: Any, values: list[Any], first_input: int, options: dict[str, Any],
             writer: Any) -> None:
        state = {"begun": False}

        def emit(schema: pa.Schema, batch: pa.RecordBatch, meta: bytes) -> None:
            if not state["begun"]:
                writer.begin(schema)
                state["begun"] = True
            writer.write_with_metadata(batch, meta)

        def cancelled() -> bool:
            return context.is_cancelled() or self._stop_runs.is_set()

        budget = max(1, self.memory_budget // self.slots)
        try:
            end = run_morsel(entry, values, first_input, options, emit, budget, cancelled)
        except MorselCancelled:
            if self._stop_runs.is_set():
                raise flight.FlightUnavailableError(f"dflow-worker {self.address} is shutting down; the morsel was "
                                                    "handed back") from None
            return  # the client is gone: nobody to answer
        except flight.FlightError:
            raise
        except BaseException as e:  # noqa: B036 - the run's own error (SystemExit from user code included)
            if context.is_cancelled():
                return
            raise _app_error(e) from None
        if not state["begun"]:  # no inputs: an empty stream still needs a schema
            writer.begin(pa.schema([]))
        writer.write_metadata(pickle.dumps(end, protocol=pickle.HIGHEST_PROTOCOL))

    # -- shutdown -----------------------------------------------------------------------------------
    def drain(self, grace: float) -> None:
        """Refuses new morsels, waits up to ``grace`` seconds for running ones, stops the rest
        (they are handed back to their clients) and shuts the server down."""
        self._draining.set()
        deadline = time.monotonic() + grace
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._in_flight:
            _log.warning("dflow-worker: %d morsel(s) still running after %.0f s: handing them back", self._in_flight,
                         grace)
            self._stop_runs.set()
        self.shutdown()
        self.plans.close()  # class functions' instances (models) closed once nothing runs


def _app_error(e: BaseException) -> flight.FlightServerError:
    from daft_flow.cluster.wire import encode_failure
    from daft_flow.errors import RowFailure

    detail = encode_failure(RowFailure(-1, "", "", "", "", e))
    return flight.FlightServerError(f"{detail['type']}: {detail['message']}",
                                    extra_info=APP_ERROR + pickle.dumps(detail, protocol=pickle.HIGHEST_PROTOCOL))


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _rss() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_listen(host: str, token: str | None) -> None:
    """Refuses to listen beyond loopback without a token: a plan carries pickled code."""
    if not token and not is_loopback(host):
        raise PermissionError(
            f"dflow-worker refuses to listen on {host} without a token: anyone who can reach that address could "
            "send it a plan, and a plan carries pickled Python code that runs as this user. Set DFLOW_WORKER_TOKEN "
            "or pass --token-file, or listen on 127.0.0.1")


# -- command line ---------------------------------------------------------------------------------------

def check_token(token: str | None, where: str) -> str | None:
    """A token is printable ASCII without spaces (it travels in a gRPC header); never echoed."""
    if token is None:
        return None
    if not isinstance(token, str) or not token or not all(33 <= ord(c) < 127 for c in token):
        raise ValueError(f"{where}: the token must be a non-empty string of printable ASCII characters without "
                         "spaces (it is sent as a gRPC header)")
    return token


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, DEFAULT_PORT
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen needs HOST:PORT, got {value!r}") from None


def _read_token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise ValueError(f"--token-file {args.token_file} is empty")
        return check_token(token, f"--token-file {args.token_file}")
    return check_token(os.environ.get("DFLOW_WORKER_TOKEN") or None, "DFLOW_WORKER_TOKEN")


def main(argv: list[str] | None = None) -> int:
    from daft_flow.units import parse_bytes

    p = argparse.ArgumentParser(prog="dflow-worker", description="Runs morsels of daft_flow plans for dflow.Cluster "
                                "clients (Arrow Flight over gRPC).")
    p.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}", help="HOST:PORT to listen on (port 0: any free "
                   "port; default 127.0.0.1:7711)")
    p.add_argument("--threads", type=int, default=None, help="morsels run at once (default: the number of CPUs)")
    p.add_argument("--gpus", default=None, help="GPU ids this worker may use (sets CUDA_VISIBLE_DEVICES), e.g. 0,1")
    p.add_argument("--memory-budget", default="2GB", help="bytes of batches in flight, shared by running morsels")
    p.add_argument("--max-morsel-bytes", default=str(DEFAULT_MAX_MORSEL_BYTES), help="largest morsel accepted")
    p.add_argument("--token-file", default=None, help="file holding the token (else DFLOW_WORKER_TOKEN)")
    p.add_argument("--tls-cert", default=None, help="PEM certificate (with --tls-key): serve gRPC over TLS")
    p.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    p.add_argument("--grace", type=float, default=30.0, help="seconds running morsels get to finish on SIGTERM")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    def fail(message: str) -> int:
        _log.error("dflow-worker: %s", message)
        return 2

    try:
        host, port = _parse_listen(args.listen)
        token = _read_token(args)
        check_listen(host, token)
        if bool(args.tls_cert) != bool(args.tls_key):
            return fail("--tls-cert and --tls-key go together")
        tls = None
        if args.tls_cert:
            with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
                tls = (c.read(), k.read())
        gpus = [int(g) for g in args.gpus.split(",") if g.strip()] if args.gpus else None
        if gpus is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        if args.threads is not None and args.threads < 1:
            return fail(f"--threads must be at least 1, got {args.threads}")
        worker = Worker(host, port, token=token, slots=args.threads, memory_budget=parse_bytes(args.memory_budget),
                        max_morsel_bytes=parse_bytes(args.max_morsel_bytes, "--max-morsel-bytes"), tls=tls, gpus=gpus)
    except (PermissionError, ValueError, OSError, argparse.ArgumentTypeError) as e:
        return fail(str(e))
    except flight.FlightError as e:
        return fail(f"cannot listen on {args.listen}: {e}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _log.info("dflow-worker listening on %s (slots=%d, memory budget %s, token %s, pid %d)", worker.address,
              worker.slots, args.memory_budget, "required" if token else "off (loopback only)", os.getpid())
    while not stop.wait(0.5):
        pass
    _log.info("dflow-worker: stopping (up to %.0f s for running morsels)", args.grace)
    worker.drain(args.grace)
    _log.info("dflow-worker: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
