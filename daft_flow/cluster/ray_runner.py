"""``dflow.RayCluster``: Ray schedules the morsels (``pip install 'daft-flow[ray]'``).

Each Ray actor holds the plans it was sent (so functions, providers and models stay loaded) and
runs a morsel the way a dflow-worker does (``cluster/morsel.py``: our native runtime, the same
results code); the plan's bytes go into Ray's object store once per run and morsels and their
Arrow results travel through it. Actors ask Ray for ``actor_cpus`` CPUs and ``actor_gpus`` GPUs
each, so GPU work lands on GPU nodes. An actor that dies (its node lost, its process killed) has
its morsels re-sent to the others, exactly as with dflow-workers.
"""
from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import pyarrow as pa

from daft_flow.cluster.client import Backend
from daft_flow.cluster.dispatch import ClusterError, Executor, Morsel, WorkerLost
from daft_flow.cluster.wire import MorselResult, decode_output


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("dflow.RayCluster needs Ray: pip install 'daft-flow[ray]'") from None
    return ray


class MorselActor:
    """The body of each Ray actor (made a Ray actor class by ``RayCluster``)."""

    def __init__(self, memory_budget: int) -> None:
        from daft_flow.cluster.morsel import PlanCache

        self.plans = PlanCache()
        self.memory_budget = memory_budget

    def info(self) -> dict[str, Any]:
        from daft_flow import __version__
        from daft_flow.plan.trace import IR_VERSION

        return {"daft_flow": __version__, "ir_version": IR_VERSION, "pid": os.getpid()}

    def run(self, key: str, plan: bytes, batch: pa.RecordBatch, first_input: int,
            options: dict[str, Any]) -> tuple[list[pa.RecordBatch], list[bytes], bytes]:
        from daft_flow.cluster.morsel import run_morsel
        from daft_flow.cluster.wire import decode_inputs

        entry = self.plans.get(key)
        if entry is None:
            self.plans.put(plan)
            entry = self.plans.get(key)
        assert entry is not None
        batches: list[pa.RecordBatch] = []
        metas: list[bytes] = []

        def emit(schema: pa.Schema, out: pa.RecordBatch, meta: bytes) -> None:
            batches.append(out)
            metas.append(meta)

        end = run_morsel(entry, decode_inputs(batch), first_input, options, emit, self.memory_budget)
        return batches, metas, pickle.dumps(end, protocol=pickle.HIGHEST_PROTOCOL)


class RayCluster(Backend):
    """Ray as the ``cluster=`` of a run: ``flow.collect_batch(xs, cluster=dflow.RayCluster())``.

    ``address``: None (a Ray already initialised in this process, else a new local one),
    ``"auto"`` (the cluster this machine belongs to) or ``"ray://head:10001"``; other keyword
    arguments go to ``ray.init`` (``num_cpus=2``, ``runtime_env=...``). ``num_actors`` actors (default:
    the cluster's CPUs / ``actor_cpus``) each ask for ``actor_cpus`` CPUs and ``actor_gpus`` GPUs and
    run ``in_flight`` morsels at a time (one runs, the next one's inputs arrive meanwhile).
    """

    def __init__(self, address: str | None = None, *, num_actors: int | None = None, actor_cpus: float = 1,
                 actor_gpus: float = 0, in_flight: int = 2, memory_budget: int | str = "1GB", morsel_rows: int = 1024,
                 morsel_bytes: int | str = "8MB", max_attempts: int = 3, **ray_init_args: Any) -> None:
        from daft_flow.units import parse_bytes

        if num_actors is not None and (not isinstance(num_actors, int) or num_actors < 1):
            raise ValueError(f"RayCluster(): num_actors must be a positive int, got {num_actors!r}")
        for name, value in (("actor_cpus", actor_cpus), ("actor_gpus", actor_gpus)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"RayCluster(): {name} must be a number >= 0, got {value!r}")
        for name, value in (("in_flight", in_flight), ("morsel_rows", morsel_rows), ("max_attempts", max_attempts)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RayCluster(): {name} must be a positive int, got {value!r}")
        self.address = address
        self.ray_init_args = ray_init_args
        self.num_actors, self.actor_cpus, self.actor_gpus = num_actors, actor_cpus, actor_gpus
        self.in_flight = in_flight
        self.memory_budget = parse_bytes(memory_budget)
        self.morsel_rows = morsel_rows
        self.morsel_bytes = parse_bytes(morsel_bytes, "morsel_bytes")
        self.max_attempts = max_attempts
        self._actors: list[Any] = []
        self._started_ray = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"dflow.RayCluster(address={self.address!r}, actors={len(self._actors) or self.num_actors})"

    def _init(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            args = dict(self.ray_init_args)
            if self.address is None and "runtime_env" not in args:
                # A local Ray's workers import the daft_flow this process runs (a source checkout too).
                import daft_flow

                root = os.path.dirname(os.path.dirname(os.path.abspath(daft_flow.__file__)))
                path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
                args["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            args.setdefault("logging_level", "warning")
            args.setdefault("log_to_driver", False)
            ray.init(address=self.address, **args)
            self._started_ray = True
        return ray

    def _ensure_actors(self, ray: Any) -> list[Any]:
        from daft_flow import __version__
        from daft_flow.plan.trace import IR_VERSION

        with self._lock:
            if not self._actors:
                n = self.num_actors
                if n is None:
                    cpus = float(ray.cluster_resources().get("CPU", 1))
                    n = max(1, int(cpus // self.actor_cpus)) if self.actor_cpus else max(1, int(cpus))
                remote = ray.remote(num_cpus=self.actor_cpus, num_gpus=self.actor_gpus)(MorselActor)
                self._actors = [remote.remote(self.memory_budget) for _ in range(n)]
            infos = ray.get([a.info.remote() for a in self._actors])
            for info in infos:
                if info["ir_version"] != IR_VERSION:
                    raise ClusterError(f"a Ray actor runs IR version {info['ir_version']} (daft_flow {info['daft_flow']}); "
                                       f"this client runs IR version {IR_VERSION} (daft_flow {__version__}): install "
                                       "the same daft_flow on the Ray cluster")
            return list(self._actors)

    def executors(self, plan: bytes, key: str, names: list[list[str]], options: dict[str, Any]) -> list[Executor]:
        ray = self._init()
        actors = self._ensure_actors(ray)
        plan_ref = ray.put(plan)
        return [RayExecutor(ray, actor, f"ray actor {i}", key, plan_ref, names, options, self.in_flight)
                for i, actor in enumerate(actors)]

    def shutdown(self) -> None:
        """Ends the actors, and Ray itself if this object started it."""
        ray = _ray()
        with self._lock:
            actors, self._actors = self._actors, []
        if ray.is_initialized():
            for actor in actors:
                ray.kill(actor)
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False

    def __enter__(self) -> "RayCluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __reduce__(self) -> Any:
        raise TypeError("a dflow.RayCluster holds Ray actors: create it where it is used")


class RayExecutor(Executor):
    """One Ray actor as seen by one run."""

    def __init__(self, ray: Any, actor: Any, name: str, key: str, plan_ref: Any, names: list[list[str]],
                 options: dict[str, Any], slots: int) -> None:
        self.ray, self.actor, self.name, self.key, self.plan_ref = ray, actor, name, key, plan_ref
        self.names, self.options, self.slots = names, options, slots
        self._refs: set[Any] = set()
        self._lock = threading.Lock()

    def run(self, morsel: Morsel) -> MorselResult:
        ray = self.ray
        ref = self.actor.run.remote(self.key, self.plan_ref, morsel.batch, morsel.first_input, self.options)
        with self._lock:
            self._refs.add(ref)
        try:
            batches, metas, end = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError, ray.exceptions.TaskCancelledError) as e:
            raise WorkerLost(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None
        finally:
            with self._lock:
                self._refs.discard(ref)
        where = f"Ray {self.name}"
        grouped: list[list[Any]] = []
        for batch, meta in zip(batches, metas):
            m = pickle.loads(meta)
            if m["output"] == 0:
                grouped.append([])
            grouped[-1].append(decode_output(batch, m, self.names, where))
        done = pickle.loads(end)
        return MorselResult(grouped, done["usage"], done.get("report"), done.get("dead_letters", []))

    def cancel(self) -> None:
        with self._lock:
            refs = list(self._refs)
        for ref in refs:
            try:
                self.ray.cancel(ref)
            except Exception:  # finished already
                pass
