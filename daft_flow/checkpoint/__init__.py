"""Checkpoint / resume: ``collect_batch``, ``collect_arrow``, ``stream`` and sink flows take
``checkpoint="dir"`` (or ``"s3://bucket/run"``). A killed run called again with the same
checkpoint skips the inputs it finished, redoes the ones in flight, and its sinks end with every
row exactly once.

Layout of a checkpoint: ``manifest.json`` (JSON: the plan's fingerprint, done inputs, the commit
count), ``commits/<seq>.json`` (what each committed batch wrote), ``results/<seq>.arrow`` (a
flow's rows, Arrow IPC) and, for a local checkpoint, ``journal/`` (an LMDB store of LLM answers
saved as they arrived, so answers of rows that were not committed are not asked again).
"""
from daft_flow.checkpoint.manifest import CheckpointError
from daft_flow.checkpoint.run import Checkpoint, DoneInputs, check_resume

__all__ = ["CheckpointError", "Checkpoint", "DoneInputs", "check_resume"]
