"""Sinks: where ``flow.write_sink(sink, fields)`` writes rows.

A sink receives whole batches (``write``) and must make each call all-or-nothing, so a failed call
can be retried without writing any row twice; ``close`` flushes at the end of a run. ``begin``
starts a run (sinks keep per-run state: open files, counters).

- ``JSONFileSink(dir)``: JSON lines, appended to ``part-00000.jsonl``, rolled to the next part once
  a file holds ``rows_per_file`` rows; a failed write cuts every file it touched back.
- ``ParquetSink(dir)``: one Parquet file per batch (written to a temporary name, then renamed).
- ``S3FileSink(url)``: one object per row (a single str/bytes field: the object's body), or one
  JSON lines object per batch for several fields; uploads are concurrent (s3fs) and idempotent.
- ``LanceDBSink(uri, table)``: rows appended to an embedded LanceDB table.
"""
from __future__ import annotations

import abc
import itertools
import json
import os
import uuid
from typing import Any

import pyarrow as pa

from daft_flow.types import DataType

Rows = list[dict[str, Any]]


def _json_default(value: Any) -> Any:
    from daft_flow.files import File

    if isinstance(value, File):
        return value.url
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=_json_default)


class Sink(abc.ABC):
    """Base class of sinks. Subclasses implement ``write`` (all-or-nothing per call)."""

    # Per-run state (open files, clients) that is not part of the sink's definition: left out when
    # a plan is pickled to cross processes, and rebuilt by ``begin`` there.
    _TRANSIENT: tuple[str, ...] = ("_file", "_fs", "_db", "_table", "_tables")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for k in self._TRANSIENT:
            # (ArrowSink's _table is a method: an attribute of that name would hide it.)
            if k in ("_file", "_table") and not callable(getattr(type(self), k, None)):
                setattr(self, k, None)

    def begin(self, columns: dict[str, DataType]) -> None:
        """A run starts; ``columns`` are the names and types of the values written."""
        self.columns = columns

    @abc.abstractmethod
    def write(self, rows: Rows) -> list[str]:
        """Writes ``rows``; returns, per row, where it went (a path, URL or table)."""

    def close(self) -> None:  # noqa: B027 - optional hook: sinks that buffer override it
        """A run ended: flush and release what ``write`` opened."""

    def result(self) -> Any:
        """What a run produced besides files, if anything (``SinkResult.data``); called after ``close``."""
        return None

    def describe(self) -> str:
        return repr(self)

    def __dflow_fingerprint__(self) -> dict[str, Any]:
        """A sink's identity in plan fingerprints: its settings (public attributes, URLs without
        credentials); per-run state (open files, counters, ``columns``) does not count."""
        from daft_flow.secrets import redact_url

        return {k: redact_url(v) if isinstance(v, str) else v for k, v in vars(self).items()
                if not k.startswith("_") and k != "columns"}


class JSONFileSink(Sink):
    def __init__(self, directory: str, *, rows_per_file: int = 100_000, prefix: str = "part") -> None:
        if not isinstance(directory, str) or not directory:
            raise TypeError(f"JSONFileSink needs a directory path, got {directory!r}")
        if not isinstance(rows_per_file, int) or rows_per_file <= 0:
            raise ValueError(f"JSONFileSink: rows_per_file must be a positive int, got {rows_per_file!r}")
        self.directory, self.rows_per_file, self.prefix = directory, rows_per_file, prefix
        self._file: Any = None
        self._path = ""
        self._rows_in_file = 0
        self._parts = itertools.count()

    def __repr__(self) -> str:
        return f"JSONFileSink({self.directory!r})"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self.close()
        self._parts = itertools.count(_next_part(self.directory, self.prefix, ".jsonl"))

    def _next_file(self) -> None:
        self.close()
        os.makedirs(self.directory, exist_ok=True)
        while True:
            path = os.path.join(self.directory, f"{self.prefix}-{next(self._parts):05d}.jsonl")
            try:
                self._file = open(path, "x", encoding="utf-8")
                break
            except FileExistsError:
                continue
        self._path, self._rows_in_file = path, 0

    def write(self, rows: Rows) -> list[str]:
        out: list[str] = []
        segments: list[tuple[str, int]] = []  # (path, offset before this call) per file touched
        try:
            i = 0
            while i < len(rows):
                if self._file is None or self._rows_in_file >= self.rows_per_file:
                    self._next_file()
                take = min(len(rows) - i, self.rows_per_file - self._rows_in_file)
                f = self._file
                segments.append((self._path, f.tell()))
                f.write("".join(_dumps(r) + "\n" for r in rows[i:i + take]))
                f.flush()
                self._rows_in_file += take
                out.extend([self._path] * take)
                i += take
        except BaseException:
            # All-or-nothing: cut every file this call touched back to where it was.
            try:
                self.close()
            except OSError:
                pass
            self._file = None
            for path, offset in segments:
                try:
                    if offset == 0:
                        os.unlink(path)
                    else:
                        os.truncate(path, offset)
                except OSError:
                    pass
            raise
        return out

    def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            f.close()


def _next_part(directory: str, prefix: str, suffix: str) -> int:
    """The first part number after the files already in ``directory`` (a run never overwrites)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    numbers = [int(n[len(prefix) + 1:-len(suffix)]) for n in names
               if n.startswith(prefix + "-") and n.endswith(suffix) and n[len(prefix) + 1:-len(suffix)].isdigit()]
    return max(numbers, default=-1) + 1


def _arrow_table(rows: Rows, columns: dict[str, DataType]) -> pa.Table:
    from daft_flow.convert import values_to_arrow

    arrays = []
    for name, t in columns.items():
        array, problems = values_to_arrow([r[name] for r in rows], t)
        if problems:
            raise TypeError(f"column {name!r}: {problems[0][1]}")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(columns))


class ParquetSink(Sink):
    def __init__(self, directory: str, *, prefix: str = "part", compression: str = "zstd") -> None:
        if not isinstance(directory, str) or not directory:
            raise TypeError(f"ParquetSink needs a directory path, got {directory!r}")
        self.directory, self.prefix, self.compression = directory, prefix, compression
        self._parts = itertools.count()

    def __repr__(self) -> str:
        return f"ParquetSink({self.directory!r})"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._parts = itertools.count(_next_part(self.directory, self.prefix, ".parquet"))

    def write(self, rows: Rows) -> list[str]:
        import pyarrow.parquet as pq

        table = _arrow_table(rows, self.columns)
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{self.prefix}-{next(self._parts):05d}.parquet")
        tmp = os.path.join(self.directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp, compression=self.compression)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return [path] * len(rows)


class S3FileSink(Sink):
    """Writes to ``url`` (``s3://bucket/prefix``, or any fsspec URL). With one str/bytes column,
    each row is an object ``{prefix}/{run}-{n:08d}{suffix}`` holding that value; otherwise each
    batch is one JSON lines object. Credentials and endpoint come from the environment
    (``AWS_ENDPOINT_URL`` for MinIO, R2, moto)."""

    def __init__(self, url: str, *, suffix: str = ".txt") -> None:
        if not isinstance(url, str) or "://" not in url:
            raise TypeError(f"S3FileSink needs a URL such as 's3://bucket/prefix', got {url!r}")
        self.url, self.suffix = url.rstrip("/"), suffix
        self._batch = 0
        self._run = ""

    def __repr__(self) -> str:
        return f"S3FileSink({self.url!r})"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._run = uuid.uuid4().hex[:12]
        self._batch = 0
        from daft_flow.io.locations import check_protocol, split_url

        protocol, _ = split_url(self.url)
        check_protocol(protocol, self.url)
        import fsspec

        self._fs = fsspec.get_filesystem_class(protocol)(skip_instance_cache=True)

    def write(self, rows: Rows) -> list[str]:
        # Keys are fixed before the first attempt, so a retried upload overwrites, never duplicates.
        names = list(self.columns)
        single = len(names) == 1 and self.columns[names[0]].kind in ("str", "bytes", "HTML", "JSON")
        base = self._batch  # advanced only once a batch is written: a retry reuses the same keys
        if single:
            keys = [f"{self.url}/{self._run}-{base:06d}-{i:06d}{self.suffix}" for i in range(len(rows))]
            bodies = {}
            for key, row in zip(keys, rows):
                v = row[names[0]]
                bodies[key] = v if isinstance(v, bytes) else (v if isinstance(v, str) else _dumps(v)).encode()
            self._fs.pipe(bodies)
            self._batch += 1
            return keys
        key = f"{self.url}/{self._run}-{base:06d}.jsonl"
        self._fs.pipe({key: "".join(_dumps(r) + "\n" for r in rows).encode()})
        self._batch += 1
        return [key] * len(rows)


class LanceDBSink(Sink):
    """Appends rows to table ``table`` of the embedded LanceDB database at ``uri`` (created on the
    first write). Embedding columns become fixed-size float32 vectors."""

    def __init__(self, uri: str, table: str) -> None:
        if not isinstance(uri, str) or not uri or not isinstance(table, str) or not table:
            raise TypeError("LanceDBSink needs a database uri and a table name")
        self.uri, self.table_name = uri, table
        self._table: Any = None

    def __repr__(self) -> str:
        return f"LanceDBSink({self.uri!r}, {self.table_name!r})"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        try:
            import lancedb
        except ImportError:
            raise ImportError("LanceDBSink needs lancedb: pip install lancedb") from None
        self._db = lancedb.connect(self.uri)
        self._table = None

    def write(self, rows: Rows) -> list[str]:
        table = _arrow_table(rows, self.columns)
        if self._table is None:
            try:
                self._table = self._db.open_table(self.table_name)
            except (FileNotFoundError, ValueError):
                self._table = self._db.create_table(self.table_name, data=table)
                return [f"{self.uri}#{self.table_name}"] * len(rows)
        self._table.add(table)
        return [f"{self.uri}#{self.table_name}"] * len(rows)

    def close(self) -> None:
        self._table = None


class ArrowSink(Sink):
    """Keeps the rows in memory as Arrow: ``SinkResult.data`` is a ``pyarrow.Table``."""

    def __repr__(self) -> str:
        return "ArrowSink()"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._tables: list[pa.Table] = []

    def write(self, rows: Rows) -> list[str]:
        self._tables.append(_arrow_table(rows, self.columns))
        return ["memory"] * len(rows)

    def _table(self) -> pa.Table:
        if not self._tables:
            return pa.schema([pa.field(n, t.to_arrow()) for n, t in self.columns.items()]).empty_table()
        return pa.concat_tables(self._tables)

    def result(self) -> Any:
        return self._table()


class DaftSink(ArrowSink):
    """Collects the rows into a daft DataFrame (exchanged as Arrow): ``SinkResult.data``."""

    def __repr__(self) -> str:
        return "DaftSink()"

    def result(self) -> Any:
        import daft

        return daft.from_arrow(self._table())
