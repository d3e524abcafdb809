"""``dflow.Cluster``: dflow-workers as the ``cluster=`` of a run, and ``cluster.submit`` for jobs."""
from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.flight as flight

from daft_flow.cluster.dispatch import ClusterError, Executor, Morsel, WorkerLost
from daft_flow.cluster.wire import MorselResult, decode_failure, decode_output

_log = logging.getLogger("daft_flow")

_SEND_CHUNK_BYTES = 8 * 2**20  # one gRPC message per slice of a morsel


class Backend:
    """What runs morsels for a run: connects, checks versions, sends the plan once per executor."""

    morsel_rows: int = 1024
    morsel_bytes: int = 8 * 2**20
    max_attempts: int = 3
    heartbeat: float = 10.0

    def executors(self, plan: bytes, key: str, names: list[list[str]], options: dict[str, Any]) -> list[Executor]:
        """Ready executors for a plan (bytes, cache key, output field names, the run's options)."""
        raise NotImplementedError

    def max_morsel_bytes(self, executors: list[Executor]) -> int:
        return min((getattr(e, "max_morsel_bytes", 0) or 2**62) for e in executors)

    def submit(self, target: Any, inputs: Iterable[Any], *, checkpoint: Any = None, on_error: str = "raise",
               **options: Any) -> "Any":
        """Starts ``target.collect_batch(inputs, cluster=self, ...)`` in the background and returns a
        ``dflow.Job`` (``status()``, ``progress()``, ``result()``, ``cancel()``). ``target`` is a
        Flow, SinkFlow or Multisink; ``checkpoint`` is passed on to the run when given."""
        from daft_flow.cluster.job import Job

        return Job(self, target, inputs, checkpoint=checkpoint, on_error=on_error, options=options)


def _location(address: str, tls: bool) -> str:
    if "://" in address:
        return address
    return f"{'grpc+tls' if tls else 'grpc'}://{address}"


class Cluster(Backend):
    """dflow-workers that runs spread morsels over: ``flow.collect_batch(xs, cluster=dflow.Cluster([...]))``.

    ``addresses``: ``"host:port"`` (or ``grpc://`` / ``grpc+tls://`` URLs). ``token``: the workers'
    token (default: ``DFLOW_WORKER_TOKEN`` of this process). ``tls_root_certs``: PEM bytes or a
    path, to verify workers serving TLS (addresses without a scheme then use TLS). Inputs are cut
    into morsels of at most ``morsel_rows`` rows and ``morsel_bytes`` bytes; each worker holds one
    more than it runs at once (its reported slots), so it never waits for the next one's inputs
    (``max_in_flight`` caps morsels in flight per worker). A worker that cannot
    be reached is retried ``connect_attempts`` times (``connect_timeout`` seconds each) before it is
    left out with a warning; none reachable is an error naming each address. A worker holding
    morsels is asked every ``heartbeat`` seconds whether it still answers; after two missed
    answers its morsels go elsewhere (a frozen host keeps its connections open).
    """

    def __init__(self, addresses: Iterable[str], token: str | None = None, *, tls_root_certs: bytes | str | None = None,
                 morsel_rows: int = 1024, morsel_bytes: int | str = "8MB", max_in_flight: int | None = None,
                 connect_timeout: float = 5.0, connect_attempts: int = 3, max_attempts: int = 3,
                 heartbeat: float = 10.0) -> None:
        import os

        from daft_flow.units import parse_bytes

        if isinstance(addresses, str):
            addresses = [addresses]
        self.addresses = list(addresses)
        if not self.addresses or not all(isinstance(a, str) and a for a in self.addresses):
            raise ValueError(f"Cluster() needs worker addresses like '127.0.0.1:7711', got {self.addresses!r}")
        if len(set(self.addresses)) != len(self.addresses):
            raise ValueError("Cluster(): a worker address is listed twice")
        for name, value in (("morsel_rows", morsel_rows), ("connect_attempts", connect_attempts),
                            ("max_attempts", max_attempts)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Cluster(): {name} must be a positive int, got {value!r}")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"Cluster(): max_in_flight must be a positive int or None, got {max_in_flight!r}")
        from daft_flow.cluster.worker import check_token

        token = check_token(token if token is not None else os.environ.get("DFLOW_WORKER_TOKEN") or None, "Cluster()")
        self._headers = [(b"authorization", b"Bearer " + token.encode())] if token else []
        if isinstance(tls_root_certs, str):
            with open(tls_root_certs, "rb") as f:
                tls_root_certs = f.read()
        self._tls_root_certs = tls_root_certs
        self.morsel_rows = morsel_rows
        self.morsel_bytes = parse_bytes(morsel_bytes, "morsel_bytes")
        self.max_in_flight = max_in_flight
        self.connect_timeout = float(connect_timeout)
        self.connect_attempts = connect_attempts
        self.max_attempts = max_attempts
        if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or not heartbeat > 0:
            raise ValueError(f"Cluster(): heartbeat must be a positive number of seconds, got {heartbeat!r}")
        self.heartbeat = float(heartbeat)
        self._clients: dict[str, flight.FlightClient] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        token = "***" if self._headers else None
        return f"dflow.Cluster({self.addresses!r}, token={token})"

    def __reduce__(self) -> Any:
        raise TypeError("a dflow.Cluster holds connections and a token: create it where it is used")

    # -- connections --------------------------------------------------------------------------------
    def _client(self, address: str) -> flight.FlightClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                kwargs: dict[str, Any] = {}
                if self._tls_root_certs:
                    kwargs["tls_root_certs"] = self._tls_root_certs
                client = flight.FlightClient(_location(address, bool(self._tls_root_certs)), **kwargs)
                self._clients[address] = client
            return client

    def _options(self, timeout: float | None = None) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(headers=self._headers, timeout=timeout)

    def _action(self, address: str, kind: str, body: bytes = b"", timeout: float | None = None) -> bytes:
        results = list(self._client(address).do_action(flight.Action(kind, body), self._options(timeout)))
        return results[0].body.to_pybytes() if results else b""

    def info(self, address: str) -> dict[str, Any]:
        """The worker's versions, capacity and load, after up to ``connect_attempts`` tries."""
        from daft_flow.retry import Backoff

        backoff = Backoff(initial=0.2, maximum=2.0)
        start = time.monotonic()
        last: BaseException | None = None
        for attempt in range(self.connect_attempts):
            try:
                return dict(json.loads(self._action(address, "info", timeout=self.connect_timeout)))
            except flight.FlightUnauthenticatedError:
                raise ClusterError(f"worker {address} refused the token (wrong or missing token: pass the workers' "
                                   "token as dflow.Cluster(token=...) or DFLOW_WORKER_TOKEN)") from None
            except (flight.FlightUnavailableError, flight.FlightTimedOutError, flight.FlightInternalError,
                    flight.FlightCancelledError, OSError) as e:
                last = e
                if attempt + 1 < self.connect_attempts:
                    time.sleep(backoff.delay(attempt))
        raise ClusterError(f"worker {address} is unreachable: {self.connect_attempts} attempt(s) in "
                           f"{time.monotonic() - start:.1f} s failed; last error: {_short(last)}")

    def workers(self) -> dict[str, dict[str, Any] | str]:
        """Each worker's ``info`` (or why it cannot be reached)."""
        out: dict[str, dict[str, Any] | str] = {}
        for address in self.addresses:
            try:
                out[address] = self.info(address)
            except ClusterError as e:
                out[address] = str(e)
        return out

    def close(self) -> None:
        """Closes the connections (they are opened again when needed)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------------
    def executors(self, plan: bytes, key: str, names: list[list[str]], options: dict[str, Any]) -> list[Executor]:
        from daft_flow import __version__
        from daft_flow.plan.trace import IR_VERSION

        def prepare(address: str) -> Executor:
            info = self.info(address)
            if info.get("ir_version") != IR_VERSION:
                raise _Refused(f"worker {address} runs IR version {info.get('ir_version')} (daft_flow "
                               f"{info.get('daft_flow')}); this client runs IR version {IR_VERSION} (daft_flow "
                               f"{__version__}): install the same daft_flow on both")
            if info.get("draining"):
                raise ClusterError(f"worker {address} is shutting down")
            if self._action(address, "has_plan", key.encode(), self.connect_timeout) != b"1":
                try:
                    self._action(address, "plan", plan)
                except flight.FlightServerError as e:
                    raise _Refused(f"worker {address} could not load the plan: {_remote_message(e)}") from None
            # One morsel more than the worker runs at once waits at its gate: it never idles for the
            # next morsel's round trip.
            slots = int(info.get("slots") or 1) + 1
            if self.max_in_flight:
                slots = min(slots, self.max_in_flight)
            return FlightExecutor(self, address, key, plan, names, slots, int(info.get("max_morsel_bytes") or 0),
                                  options_hex)

        options_hex = pickle.dumps(options, protocol=pickle.HIGHEST_PROTOCOL).hex()

        with ThreadPoolExecutor(max_workers=min(32, len(self.addresses)), thread_name_prefix="dflow-connect") as pool:
            futures = [pool.submit(prepare, a) for a in self.addresses]
        ready, problems = [], []
        for future in futures:
            try:
                ready.append(future.result())
            except _Refused as e:
                raise ClusterError(str(e)) from None
            except ClusterError as e:
                if "refused the token" in str(e):
                    raise
                problems.append(str(e))
        if not ready:
            raise ClusterError("no worker can run this: " + "; ".join(problems))
        for problem in problems:
            _log.warning("daft_flow: %s; running without it", problem)
        return ready


class _Refused(Exception):
    """A worker that answered but cannot run this plan: the run must not go on without telling."""


def _short(e: BaseException | None) -> str:
    """gRPC's message without its debug context (which repeats it at length)."""
    text = str(e) if e is not None else "no answer"
    for cut in (". gRPC client debug context", ". Detail:"):
        text = text.split(cut)[0]
    return text[:300]


def _remote_message(e: flight.FlightServerError) -> str:
    from daft_flow.cluster.worker import APP_ERROR

    extra = e.extra_info or b""
    if extra.startswith(APP_ERROR):
        detail = pickle.loads(extra[len(APP_ERROR):])
        return f"{detail['type']}: {detail['message']}"
    return _short(e)


_LOST_ERRORS = (flight.FlightUnavailableError, flight.FlightInternalError, flight.FlightCancelledError,
                flight.FlightTimedOutError, OSError, pa.ArrowIOError)


class FlightExecutor(Executor):
    """One dflow-worker as seen by one run: its slots, its plan key, its exchanges in flight."""

    def __init__(self, cluster: Cluster, address: str, key: str, plan: bytes, names: list[list[str]], slots: int,
                 max_morsel_bytes: int, options_hex: str) -> None:
        self.cluster, self.name, self.key, self.plan, self.names = cluster, address, key, plan, names
        self.slots, self.max_morsel_bytes = slots, max_morsel_bytes
        self._calls: set[Any] = set()
        self._lock = threading.Lock()
        self._cancelled = False
        self.options_hex = options_hex

    def alive(self, timeout: float) -> bool:
        try:
            self.cluster._action(self.name, "info", timeout=timeout)
            return True
        except flight.FlightUnauthenticatedError:
            return True  # it answered
        except Exception:
            return False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            calls = list(self._calls)
        for reader in calls:
            try:
                reader.cancel()
            except Exception:  # already finished
                pass

    def run(self, morsel: Morsel) -> MorselResult:
        from daft_flow.cluster.worker import APP_ERROR, UNKNOWN_PLAN

        for attempt in range(2):
            try:
                return self._exchange(morsel)
            except flight.FlightUnauthenticatedError:
                raise ClusterError(f"worker {self.name} refused the token") from None
            except flight.FlightServerError as e:
                extra = e.extra_info or b""
                if extra == UNKNOWN_PLAN and attempt == 0:  # evicted from the worker's cache: send it again
                    self.cluster._action(self.name, "plan", self.plan)
                    continue
                if extra.startswith(APP_ERROR):
                    detail = pickle.loads(extra[len(APP_ERROR):])
                    raise decode_failure(detail, f"dflow-worker {self.name}").error from None
                raise ClusterError(f"worker {self.name}: {_short(e)}") from None
            except _LOST_ERRORS as e:
                if self._cancelled:
                    raise WorkerLost("cancelled") from None
                raise WorkerLost(_short(e)) from None
        raise ClusterError(f"worker {self.name} keeps losing the plan")

    def _exchange(self, morsel: Morsel) -> MorselResult:
        assert morsel.batch is not None
        command = json.dumps({"plan": self.key, "first_input": morsel.first_input, "options": self.options_hex})
        writer, reader = self.cluster._client(self.name).do_exchange(flight.FlightDescriptor.for_command(command),
                                                                     self.cluster._options())
        with self._lock:
            if self._cancelled:
                raise flight.FlightCancelledError("cancelled")
            self._calls.add(reader)
        try:
            writer.begin(morsel.batch.schema)
            batch = morsel.batch
            step = max(1, int(batch.num_rows * _SEND_CHUNK_BYTES / max(1, batch.nbytes)))
            for start in range(0, batch.num_rows, step):
                writer.write_batch(batch.slice(start, step))
            writer.done_writing()
            where = f"dflow-worker {self.name}"
            batches: list[list[Any]] = []
            end = None
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                meta = pickle.loads(chunk.app_metadata) if chunk.app_metadata is not None else {}
                if meta.get("done"):
                    end = meta
                    continue
                if meta.get("output") == 0:
                    batches.append([])
                batches[-1].append(decode_output(chunk.data, meta, self.names, where))
            if end is None:
                raise flight.FlightUnavailableError(f"the stream from {self.name} ended before the morsel did")
            return MorselResult(batches, end["usage"], end.get("report"), end.get("dead_letters", []))
        finally:
            with self._lock:
                self._calls.discard(reader)
            try:
                writer.close()
            except Exception:  # the call already failed; its error is the one being raised
                pass
