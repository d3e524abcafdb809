"""daft_flow: a Python-first data engine for non-tabular, LLM-centric data.

>>> import daft_flow as dflow
>>> doc = dflow.Flow("document", str)
>>> doc["words"] = doc["document"].run_python(lambda s: len(s.split()), return_type=int)
>>> doc.collect("the quick brown fox")
{'document': 'the quick brown fox', 'words': 4}
"""
from daft_flow._logging import install_default_handler as _install_default_log_handler
from daft_flow.cache import (Cache, CacheError, CacheStats, DiskCache, MemoryCache, RedisCache, clear_cache,
                             get_cache, set_cache)
from daft_flow.checkpoint import CheckpointError
from daft_flow.cluster import Cluster, ClusterError, Job, JobCancelled, RayCluster, RemoteError
from daft_flow.errors import BatchError, BudgetExceeded, ChildFlowError, FlowError, FlowRunError, RowFailure
from daft_flow.execution.estimate import Estimate
from daft_flow.execution.options import ExecutionOptions, set_options
from daft_flow.execution.report import RunReport, last_run
from daft_flow.expressions import Field
from daft_flow.files import File
from daft_flow.flow import DEFAULT_FIELD, Flow
from daft_flow.gpu import ClassInitError, GpuOutOfMemoryError, GpuUnavailableError, current_device, current_stream
from daft_flow.io.limits import Timeout
from daft_flow.io.sources import from_glob
from daft_flow.io.sinks import ArrowSink, DaftSink, JSONFileSink, LanceDBSink, ParquetSink, S3FileSink, Sink
from daft_flow.io.write import SinkResult, SinkWriteError
from daft_flow.sink_flow import Multisink, SinkFlow, collect
from daft_flow.llm import (Completion, OpenAIProvider, OpUsage, Provider, ProviderConfigError, ProviderError,
                           UsageReport, default_provider, set_price, set_provider)
from daft_flow.llm import last_usage as usage
from daft_flow.llm.defaults import warmup
from daft_flow.llm.local import LocalProvider
from daft_flow.ops.expr_ops import if_else
from daft_flow.text import Tokenizer, UnsupportedTokenizer
from daft_flow.types import HTML, JSON, PDF, Audio, DataType, Embedding, Image, Video

__version__ = "0.1.0"

__all__ = [
    "Flow", "Field", "DEFAULT_FIELD", "if_else",
    "DataType", "JSON", "File", "Image", "Video", "Audio", "PDF", "HTML", "Embedding",
    "FlowError", "FlowRunError", "RowFailure", "ChildFlowError", "BatchError",
    "ExecutionOptions", "set_options",
    "Tokenizer", "UnsupportedTokenizer",
    "Sink", "ArrowSink", "DaftSink", "JSONFileSink", "ParquetSink", "S3FileSink", "LanceDBSink",
    "SinkFlow", "SinkResult", "SinkWriteError", "Multisink", "collect", "from_glob", "Timeout",
    "OpenAIProvider", "LocalProvider", "Provider", "Completion", "ProviderError", "ProviderConfigError",
    "set_provider", "default_provider", "warmup",
    "current_stream", "current_device", "GpuUnavailableError", "GpuOutOfMemoryError", "ClassInitError",
    "usage", "UsageReport", "OpUsage", "set_price",
    "RunReport", "last_run", "Estimate", "BudgetExceeded",
    "Cache", "MemoryCache", "DiskCache", "RedisCache", "CacheError", "CacheStats", "set_cache", "get_cache",
    "clear_cache", "CheckpointError",
    "Cluster", "RayCluster", "Job", "ClusterError", "JobCancelled", "RemoteError",
]

_install_default_log_handler()
