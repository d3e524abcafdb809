"""File I/O: locations (local, file://, fsspec protocols), text extraction, the file ops and sinks."""
