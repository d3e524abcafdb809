"""Scale-out: ``dflow-worker`` daemons (Arrow Flight), ``dflow.Cluster`` / ``dflow.Job``, and Ray.

See docs/scaling.md. ``cluster=`` on ``collect_batch``, ``stream``, ``collect_arrow`` and
``dflow.collect`` runs the same plan on workers, with the same results as a local run.
"""
from daft_flow.cluster.client import Cluster
from daft_flow.cluster.dispatch import ClusterError, JobCancelled
from daft_flow.cluster.job import Job
from daft_flow.cluster.ray_runner import RayCluster
from daft_flow.cluster.wire import RemoteError

__all__ = ["Cluster", "RayCluster", "ClusterError", "Job", "JobCancelled", "RemoteError"]
