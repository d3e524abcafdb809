"""Test helpers that are real components (servers on loopback), shipped so users can test their flows too."""
from daft_flow.testing.fault_server import FaultServer

__all__ = ["FaultServer"]
