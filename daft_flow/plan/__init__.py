"""The traced plan (IR): tracing flows into protobuf, reading it back, and explaining it."""
