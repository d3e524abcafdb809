"""Sinks: where ``flow.write_sink(sink, fields)`` writes rows.

A sink receives whole batches (``write``) and must make each call all-or-nothing, so a failed call
can be retried without writing any row twice; ``close`` flushes at the end of a run. Every run
writes through its own copy of the sink (``begin`` sets up that copy's state: open files,
counters), so a sink object can be reused and runs never share state.

File sinks take ``mode=``:

- ``"overwrite"`` (default): the run replaces what earlier runs of this sink wrote there (the
  files matching its naming pattern; other files are left alone), so rerunning a script never
  adds a second copy of every row;
- ``"append"``: the run adds files next to earlier ones (names carry a run tag);
- ``"error_if_exists"``: the run stops with ``FileExistsError`` before writing anything if earlier
  output is there.

Names are deterministic per row range: a file is named by the first input its rows came from
(``part-00000064-000.jsonl``), an object per row by its input and position
(``part-00000064-000003.txt``), so a rerun over the same inputs writes the same names and a retried
write replaces what it wrote before. Rows that a failure policy retried are written by their retry
batch, whose number is part of the name (``part-00000064-retry000003-000.jsonl``).

- ``JSONFileSink(dir)``: JSON lines, a file per write (split at ``rows_per_file``), written to a
  temporary name and renamed.
- ``ParquetSink(dir)``: a Parquet file per write (temporary name, then renamed).
- ``S3FileSink(url)``: one object per row (a single str/bytes field: the object's body), or one
  JSON lines object per write for several fields; uploads are concurrent (s3fs) and idempotent.
- ``LanceDBSink(uri, table)``: rows added to an embedded LanceDB table.
- ``ArrowSink()`` / ``DaftSink()``: rows kept in memory.

JSON encoding: NaN and infinities become ``null`` (JSON has no such numbers); ``bytes`` become
base64 text, ``dflow.File`` its URL, dates and times ISO 8601 text; other objects that JSON cannot
represent fail the write with a ``TypeError`` naming the column (give the field a type). Sinks
with a schema (Parquet, LanceDB, Arrow, daft) refuse untyped fields when the flow is built.
"""
from __future__ import annotations

import abc
import datetime
import json
import math
import os
import re
import time
import uuid
from typing import Any

import pyarrow as pa

from daft_flow.types import DataType

Rows = list[dict[str, Any]]

MODES = ("overwrite", "append", "error_if_exists")
DEFAULT_MODE = "overwrite"


def check_mode(mode: Any, sink: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{sink}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return str(mode)


# -- JSON -------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    from daft_flow.files import File

    if isinstance(value, File):
        return value.url
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON; give the field a type "
                    "(run_python(..., return_type=...)) or convert it to str, numbers, lists or dicts")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, through lists and dicts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist) and not isinstance(value, (str, bytes)):
        return _finite(value.tolist())
    return value


def _dumps(row: dict[str, Any]) -> str:
    """One JSON text: valid JSON always (no NaN), or a TypeError naming the column that is not."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:  # NaN or infinity somewhere (or a cycle, which fails again below)
        return json.dumps(_finite(row), ensure_ascii=False, allow_nan=False, default=_json_default)
    except TypeError as e:
        for name, value in row.items():
            try:
                json.dumps(_finite(value), allow_nan=False, default=_json_default)
            except TypeError:
                raise TypeError(f"column {name!r}: {e}") from None
        raise


# -- names ------------------------------------------------------------------------------------
def _run_tag() -> str:
    """Part of every name an append-mode run writes: unique per run, sorting by start time."""
    return "r" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + uuid.uuid4().hex[:6]


def _name_pattern(prefix: str, suffix: str) -> "re.Pattern[str]":
    """Names this sink writes: {prefix}-[{run tag}-]{8+ digits}[-retry{digits}][-{digits}][-a{attempt}]{suffix}."""
    return re.compile(re.escape(prefix) + r"-(r\d{14}[0-9a-f]{6}-)?\d{8,}(-retry\d+)?(-\d+)?(-a\d+)?"
                      + re.escape(suffix) + r"\Z")


def _retry_part(sink: "Sink") -> str:
    """The part of a name that keeps a retry batch's writes apart from the first ones."""
    return f"-retry{sink._retry_tag:06d}" if sink._retry_tag else ""


def _attempt_mark(sink: "Sink") -> str:
    """In a resumed checkpoint's later attempts, names carry the attempt (``-a2``): an input run
    again may have some rows committed under the name its new rows would otherwise get."""
    attempt = getattr(sink, "_attempt", 1)
    return f"-a{attempt}" if attempt > 1 else ""


def _temp_pattern(prefix: str) -> "re.Pattern[str]":
    return re.compile(r"\." + re.escape(prefix) + r"-.*\.tmp\Z")


_STAGED = ".staged"


def _staged_name(path: str) -> str:
    """Where a checkpointed run writes ``path`` until its batch is committed: a hidden file beside
    it (``.part-00000064-000.jsonl.staged``), which readers of ``*.jsonl`` / ``*.parquet`` skip."""
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}{_STAGED}")


def _refuse_existing(sink: "Sink", where: str, existing: list[str]) -> None:
    """mode="error_if_exists": stop before writing anything if an earlier run's output is there."""
    if existing:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(f"{sink.describe()}: {where} already holds {len(existing)} file(s) of an earlier run "
                              f"({shown}); pass mode='overwrite' to replace them or mode='append' to add to them")


def _first(inputs: "list[int] | None", fallback: int) -> int:
    return min(inputs) if inputs else fallback


class Sink(abc.ABC):
    """Base class of sinks. Subclasses implement ``write`` (all-or-nothing per call).

    Optional hooks: ``begin(columns)`` when a run starts, ``close()`` when it ends, ``result()``
    for what the run produced besides files. A run works on its own shallow copy of the sink.
    """

    # Per-run state (open files, clients) that is not part of the sink's definition: left out when
    # a plan is pickled to cross processes or a run copies the sink, and rebuilt by ``begin``.
    _TRANSIENT: tuple[str, ...] = ("_file", "_fs", "_db", "_table", "_tables")
    accepts_untyped = True  # whether untyped fields (Python objects) can be written
    mode = "append"  # sinks without modes add what they are given
    # Set by the run before each write: 0 for rows of a first attempt, else the number of the retry
    # batch they come from. Sinks that name output by row range put it in the names.
    _retry_tag = 0

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for k in self._TRANSIENT:
            # (ArrowSink's _table is a method: an attribute of that name would hide it.)
            if k in ("_file", "_table") and not callable(getattr(type(self), k, None)):
                setattr(self, k, None)

    def target(self) -> str | None:
        """Where the sink writes (a directory, a URL prefix, a table), or None for nothing shared.
        One run at a time may write to a target in a process."""
        return None

    def check_columns(self, columns: dict[str, DataType]) -> None:
        """Called when the flow is built: raise if these columns cannot be written."""
        if not self.accepts_untyped:
            for name, t in columns.items():
                if t.kind == "any":
                    raise TypeError(f"{self.describe()}: column {name!r} has no type (a function without a return "
                                    "annotation or return_type=); give it one, e.g. run_python(fn, return_type=str), "
                                    "so it is written as a typed column rather than pickled Python objects")

    def prepare(self, columns: dict[str, DataType]) -> None:  # noqa: B027 - optional hook
        """A run is about to start: raise now (before anything is written) if it cannot."""

    def begin(self, columns: dict[str, DataType]) -> None:
        """A run starts; ``columns`` are the names and types of the values written."""
        self.columns = columns

    # -- staging (checkpointed runs) -------------------------------------------------------------
    # A checkpointed run writes every batch under staged names and makes them final only once the
    # checkpoint has committed the batch, so a reader never sees rows of a batch that a crash will
    # make a resumed run write again. Sinks that support it set ``supports_staging``.
    supports_staging = False

    def resume(self, columns: dict[str, DataType], tag: str) -> None:
        """Like ``begin`` for a run resuming a checkpoint: nothing earlier attempts wrote is removed;
        ``tag`` is the first attempt's run tag (append mode), so names stay the same."""
        raise NotImplementedError(f"{self.describe()} cannot be resumed from a checkpoint")

    def run_tag(self) -> str:
        """The tag this run puts in its names ("" unless mode="append")."""
        return ""

    def stage(self, attempt: int = 1) -> None:
        """From now on, writes go to staged names (see ``drain_staged``, ``promote``); ``attempt``:
        the checkpoint's attempt number (names of later attempts carry it)."""
        raise NotImplementedError(f"{self.describe()} cannot stage its writes")

    def drain_staged(self) -> list[list[str]]:
        """[final, staged] names written since the last call."""
        return []

    def promote(self, pairs: list[list[str]]) -> None:  # noqa: B027 - only sinks that stage override it
        """Makes staged files final (a staged file already promoted is skipped)."""

    def outputs(self) -> tuple[list[str], list[str]]:
        """This run's final names (its pattern and tag) and staged (or temporary) names present now."""
        return [], []

    def discard(self, names: list[str]) -> None:  # noqa: B027 - only sinks that stage override it
        """Removes files (orphans of a crashed attempt)."""

    @abc.abstractmethod
    def write(self, rows: Rows) -> list[str]:
        """Writes ``rows``; returns, per row, where it went (a path, URL or table)."""

    def write_batch(self, rows: Rows, inputs: list[int]) -> list[str]:
        """Writes ``rows``, which came from inputs ``inputs`` (one index per row). Sinks that name
        their output by row range override this; the default calls ``write``."""
        return self.write(rows)

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


class _StagingFiles(Sink):
    """What every sink writing named files shares in a checkpointed run (see ``Sink.stage``): the
    run tag its names carry (kept by a resumed run), and the [final, staged] names written since
    the consumer last took them. Subclasses write, promote, list and discard the files."""

    supports_staging = True
    _tag = ""
    _fallback = 0

    def resume(self, columns: dict[str, DataType], tag: str) -> None:
        Sink.begin(self, columns)
        self._tag, self._fallback = tag, 0

    def run_tag(self) -> str:
        return self._tag

    def stage(self, attempt: int = 1) -> None:
        self._staging, self._staged, self._attempt = True, [], attempt

    def drain_staged(self) -> list[list[str]]:
        out, self._staged = self._staged, []
        return out


class _DirectorySink(_StagingFiles):
    """A sink writing files named by row range into a local directory."""

    suffix = ""

    def __init__(self, directory: str, *, prefix: str, mode: str) -> None:
        name = type(self).__name__
        if not isinstance(directory, str) or not directory:
            raise TypeError(f"{name} needs a directory path, got {directory!r}")
        if not isinstance(prefix, str) or not prefix or os.sep in prefix:
            raise ValueError(f"{name}: prefix must be a non-empty file name prefix, got {prefix!r}")
        self.directory, self.prefix, self.mode = directory, prefix, check_mode(mode, name)
        self._tag = ""
        self._fallback = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.directory!r})"

    def target(self) -> str:
        return f"file:{os.path.abspath(self.directory)}/{self.prefix}-*{self.suffix}"

    def _existing(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        pattern = _name_pattern(self.prefix, self.suffix)
        return sorted(n for n in names if pattern.match(n))

    def prepare(self, columns: dict[str, DataType]) -> None:
        if self.mode == "error_if_exists":
            _refuse_existing(self, self.directory, self._existing())

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._tag = _run_tag() + "-" if self.mode == "append" else ""
        self._fallback = 0
        if self.mode == "overwrite":
            temps = _temp_pattern(self.prefix)
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            for n in [*self._existing(), *(n for n in names if temps.match(n))]:
                try:
                    os.unlink(os.path.join(self.directory, n))
                except FileNotFoundError:
                    pass

    def _path(self, first: int, part: int | None = None) -> str:
        tail = ("" if part is None else f"-{part:03d}") + _attempt_mark(self)
        return os.path.join(self.directory,
                            f"{self.prefix}-{self._tag}{first:08d}{_retry_part(self)}{tail}{self.suffix}")

    def _replace(self, path: str, write: Any) -> str:
        """Writes a file atomically: ``write(tmp_path)``, then renames it to ``path`` (or, while
        staging, to its staged name). Returns the name written."""
        os.makedirs(self.directory, exist_ok=True)
        tmp = os.path.join(self.directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        target = _staged_name(path) if getattr(self, "_staging", False) else path
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if target != path:
            self._staged.append([path, target])
        return target

    # -- staging (the bookkeeping in _StagingFiles; the files themselves here) -------------------------
    def promote(self, pairs: list[list[str]]) -> None:
        for final, staged in pairs:
            try:
                os.replace(staged, final)
            except FileNotFoundError:
                if not os.path.exists(final):
                    raise

    def outputs(self) -> tuple[list[str], list[str]]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return [], []
        pattern = _name_pattern(self.prefix, self.suffix)
        own = f"{self.prefix}-{self._tag}"
        finals = [os.path.join(self.directory, n) for n in names if pattern.match(n) and n.startswith(own)]
        temps = _temp_pattern(self.prefix)
        # Staged files, and temporary files a killed write left (never committed: both go on resume).
        staged = [os.path.join(self.directory, n) for n in names
                  if n.startswith(".") and n.endswith(_STAGED) and pattern.match(n[1:-len(_STAGED)])
                  and n[1:].startswith(own) or temps.match(n)]
        return sorted(finals), sorted(staged)

    def discard(self, names: list[str]) -> None:
        for n in names:
            try:
                os.unlink(n)
            except FileNotFoundError:
                pass

    def write(self, rows: Rows) -> list[str]:
        # Without input indices (a custom caller): number writes in call order.
        self._fallback += 1
        return self.write_batch(rows, [])

    def _fallback_first(self) -> int:
        return 10**9 + self._fallback


class JSONFileSink(_DirectorySink):
    """JSON lines files in ``directory``: a file per write, split at ``rows_per_file`` rows."""

    suffix = ".jsonl"

    def __init__(self, directory: str, *, mode: str = DEFAULT_MODE, rows_per_file: int = 100_000,
                 prefix: str = "part") -> None:
        super().__init__(directory, prefix=prefix, mode=mode)
        if not isinstance(rows_per_file, int) or isinstance(rows_per_file, bool) or rows_per_file <= 0:
            raise ValueError(f"JSONFileSink: rows_per_file must be a positive int, got {rows_per_file!r}")
        self.rows_per_file = rows_per_file

    def _write_lines(self, path: str, lines: list[str]) -> str:
        def write(tmp: str) -> None:
            with open(tmp, "x", encoding="utf-8") as f:
                f.write("".join(lines))

        return self._replace(path, write)

    def write_batch(self, rows: Rows, inputs: list[int]) -> list[str]:
        first = _first(inputs, self._fallback_first())
        lines = [_dumps(r) + "\n" for r in rows]  # encode everything before touching the disk
        out: list[str] = []
        written: list[str] = []
        try:
            for part, start in enumerate(range(0, len(lines), self.rows_per_file)):
                path = self._path(first, part)
                chunk = lines[start:start + self.rows_per_file]
                written.append(self._write_lines(path, chunk) or path)  # (the name written: staged or final)
                out.extend([path] * len(chunk))
        except BaseException:
            for path in written:  # all-or-nothing: a write that fails halfway leaves no file
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if getattr(self, "_staging", False):
                self._staged = [p for p in self._staged if p[1] not in written]
            raise
        return out


def _arrow_table(rows: Rows, columns: dict[str, DataType]) -> pa.Table:
    from daft_flow.convert import values_to_arrow

    arrays = []
    for name, t in columns.items():
        array, problems = values_to_arrow([r[name] for r in rows], t)
        if problems:
            raise TypeError(f"column {name!r}: {problems[0][1]}")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(columns))


class ParquetSink(_DirectorySink):
    """Parquet files in ``directory``: one per write."""

    suffix = ".parquet"
    accepts_untyped = False

    def __init__(self, directory: str, *, mode: str = DEFAULT_MODE, prefix: str = "part",
                 compression: str = "zstd") -> None:
        super().__init__(directory, prefix=prefix, mode=mode)
        self.compression = compression

    def write_batch(self, rows: Rows, inputs: list[int]) -> list[str]:
        import pyarrow.parquet as pq

        table = _arrow_table(rows, self.columns)
        path = self._path(_first(inputs, self._fallback_first()))
        self._replace(path, lambda tmp: pq.write_table(table, tmp, compression=self.compression))
        return [path] * len(rows)


class S3FileSink(_StagingFiles):
    """Writes to ``url`` (``s3://bucket/prefix``, or any fsspec URL). With one str/bytes column,
    each row is an object ``{url}/{prefix}-{input:08d}-{n:06d}{suffix}`` holding that value (n: the
    row's position among its input's rows in the write); otherwise each write is one JSON lines
    object ``{url}/{prefix}-{first input:08d}.jsonl``. Credentials and endpoint come from the
    environment (``AWS_ENDPOINT_URL`` for MinIO, R2, moto)."""

    def __init__(self, url: str, *, mode: str = DEFAULT_MODE, suffix: str = ".txt", prefix: str = "part") -> None:
        if not isinstance(url, str) or "://" not in url:
            raise TypeError(f"S3FileSink needs a URL such as 's3://bucket/prefix', got {url!r}")
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(f"S3FileSink: prefix must be a non-empty name prefix without '/', got {prefix!r}")
        self.url, self.suffix, self.prefix = url.rstrip("/"), suffix, prefix
        self.mode = check_mode(mode, "S3FileSink")
        self._tag = ""
        self._fallback = 0

    def __repr__(self) -> str:
        return f"S3FileSink({self.url!r})"

    def target(self) -> str:
        return f"{self.url}/{self.prefix}-*"

    def _filesystem(self) -> Any:
        from daft_flow.io.locations import check_protocol, split_url

        protocol, _ = split_url(self.url)
        check_protocol(protocol, self.url)
        import fsspec

        return fsspec.get_filesystem_class(protocol)(skip_instance_cache=True)

    def _single(self) -> bool:
        names = list(self.columns)
        return len(names) == 1 and self.columns[names[0]].kind in ("str", "bytes", "HTML", "JSON")

    def _existing(self, fs: Any) -> list[str]:
        try:
            listed = fs.ls(self.url, detail=False)
        except FileNotFoundError:
            return []
        patterns = [_name_pattern(self.prefix, s) for s in {self.suffix, ".jsonl"}]
        return sorted(p for p in listed if any(pat.match(p.rstrip("/").rsplit("/", 1)[-1]) for pat in patterns))

    def prepare(self, columns: dict[str, DataType]) -> None:
        fs = self._filesystem()
        if self.mode == "error_if_exists":
            _refuse_existing(self, self.url, self._existing(fs))

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._tag = _run_tag() + "-" if self.mode == "append" else ""
        self._fallback = 0
        self._fs = self._filesystem()
        if self.mode == "overwrite":
            existing = self._existing(self._fs)
            if existing:
                self._fs.rm(existing)

    def write(self, rows: Rows) -> list[str]:
        self._fallback += 1
        return self.write_batch(rows, [])

    # -- staging: objects go under {url}/_dflow_staging/ until committed, then are copied over --------
    STAGING_DIR = "_dflow_staging"

    def resume(self, columns: dict[str, DataType], tag: str) -> None:
        super().resume(columns, tag)
        self._fs = self._filesystem()

    def _staged_key(self, key: str) -> str:
        return f"{self.url}/{self.STAGING_DIR}/{key.rsplit('/', 1)[-1]}"

    def _pipe(self, bodies: dict[str, bytes]) -> None:
        if getattr(self, "_staging", False):
            staged = {self._staged_key(k): v for k, v in bodies.items()}
            self._fs.pipe(staged)
            self._staged.extend([k, self._staged_key(k)] for k in bodies)
        else:
            self._fs.pipe(bodies)

    def promote(self, pairs: list[list[str]]) -> None:
        if not pairs:
            return
        present = set(self.outputs()[1])  # one listing, not a request per object
        todo = [(f, s) for f, s in pairs if s in present]
        if todo:
            self._fs.copy([s for _, s in todo], [f for f, _ in todo])
            self._fs.rm([s for _, s in todo])

    def outputs(self) -> tuple[list[str], list[str]]:
        from daft_flow.io.locations import split_url

        protocol, _ = split_url(self.url)
        fs = self._fs
        own = f"{self.prefix}-{self._tag}"
        finals = [f"{protocol}://{p}" if "://" not in p else p for p in self._existing(fs)
                  if p.rstrip("/").rsplit("/", 1)[-1].startswith(own)]
        try:
            staged = fs.ls(f"{self.url}/{self.STAGING_DIR}", detail=False)
        except FileNotFoundError:
            staged = []
        staged = [f"{protocol}://{p}" if "://" not in p else p for p in staged]
        return sorted(finals), sorted(staged)

    def discard(self, names: list[str]) -> None:
        if names:
            try:
                self._fs.rm(list(names))
            except FileNotFoundError:
                pass

    def write_batch(self, rows: Rows, inputs: list[int]) -> list[str]:
        # Keys depend only on the rows' inputs, so a retried upload overwrites, never duplicates.
        if not inputs:
            inputs = [10**9 + self._fallback] * len(rows)
        base = f"{self.url}/{self.prefix}-{self._tag}"
        if self._single():
            name = next(iter(self.columns))
            keys, seen = [], {}
            for i in inputs:
                n = seen.get(i, 0)
                seen[i] = n + 1
                keys.append(f"{base}{i:08d}{_retry_part(self)}-{n:06d}{_attempt_mark(self)}{self.suffix}")
            bodies = {}
            for key, row in zip(keys, rows):
                v = row[name]
                bodies[key] = v if isinstance(v, bytes) else (v if isinstance(v, str) else _dumps(v)).encode()
            self._pipe(bodies)
            return keys
        key = f"{base}{min(inputs):08d}{_retry_part(self)}{_attempt_mark(self)}.jsonl"
        self._pipe({key: "".join(_dumps(r) + "\n" for r in rows).encode()})
        return [key] * len(rows)


class LanceDBSink(Sink):
    """Rows into table ``table`` of the embedded LanceDB database at ``uri``: ``mode="overwrite"``
    (default) replaces the table, ``"append"`` adds to it, ``"error_if_exists"`` refuses an
    existing table. Embedding columns become fixed-size float32 vectors."""

    accepts_untyped = False

    def __init__(self, uri: str, table: str, *, mode: str = DEFAULT_MODE) -> None:
        if not isinstance(uri, str) or not uri or not isinstance(table, str) or not table:
            raise TypeError("LanceDBSink needs a database uri and a table name")
        self.uri, self.table_name = uri, table
        self.mode = check_mode(mode, "LanceDBSink")
        self._table: Any = None

    def __repr__(self) -> str:
        return f"LanceDBSink({self.uri!r}, {self.table_name!r})"

    def target(self) -> str:
        return f"lancedb:{os.path.abspath(self.uri) if '://' not in self.uri else self.uri}#{self.table_name}"

    def _connect(self) -> Any:
        try:
            import lancedb
        except ImportError:
            raise ImportError("LanceDBSink needs lancedb: pip install lancedb") from None
        return lancedb.connect(self.uri)

    def _exists(self, db: Any) -> bool:
        try:
            db.open_table(self.table_name)
            return True
        except (FileNotFoundError, ValueError):
            return False

    def prepare(self, columns: dict[str, DataType]) -> None:
        db = self._connect()  # a missing lancedb or a bad uri stops the run before any sink starts
        if self.mode == "error_if_exists" and self._exists(db):
            raise FileExistsError(f"{self.describe()}: table {self.table_name!r} already exists; pass "
                                  "mode='overwrite' to replace it or mode='append' to add to it")

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._db = self._connect()
        self._table = None
        if self.mode == "overwrite" and self._exists(self._db):
            self._db.drop_table(self.table_name)

    def write(self, rows: Rows) -> list[str]:
        table = _arrow_table(rows, self.columns)
        where = [f"{self.uri}#{self.table_name}"] * len(rows)
        if self._table is None:
            try:
                self._table = self._db.open_table(self.table_name)
            except (FileNotFoundError, ValueError):
                self._table = self._db.create_table(self.table_name, data=table)
                return where
        self._table.add(table)
        return where

    def close(self) -> None:
        self._table = None


class ArrowSink(Sink):
    """Keeps the rows in memory as Arrow: ``SinkResult.data`` is a ``pyarrow.Table`` (per run)."""

    accepts_untyped = False

    def __repr__(self) -> str:
        return "ArrowSink()"

    def begin(self, columns: dict[str, DataType]) -> None:
        super().begin(columns)
        self._tables: list[pa.Table] = []

    def write(self, rows: Rows) -> list[str]:
        self._tables.append(_arrow_table(rows, self.columns))
        return ["memory"] * len(rows)

    def _concat(self) -> pa.Table:
        if not self._tables:
            return pa.schema([pa.field(n, t.to_arrow()) for n, t in self.columns.items()]).empty_table()
        return pa.concat_tables(self._tables)

    def result(self) -> Any:
        return self._concat()


class DaftSink(ArrowSink):
    """Collects the rows into a daft DataFrame (exchanged as Arrow): ``SinkResult.data``."""

    def __repr__(self) -> str:
        return "DaftSink()"

    def result(self) -> Any:
        import daft

        return daft.from_arrow(self._concat())
