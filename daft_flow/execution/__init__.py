"""Execution: lowering a traced plan onto the native runtime and turning batches into results."""
