"""Dead letters: one record per row that finally failed in a flow with ``dead_letter=sink``.

A record is enough to run the input again (``dflow.replay``): it holds the root input it came
from, encoded by the root field's type, with the row, the op and the error:

====================  ======  ==============================================================
column                type    what
====================  ======  ==============================================================
flow                  str     the flow (level) whose row failed
op                    str     the op that failed it (``run_python(parse)``, ``prompt``, ...)
field                 str     the field it was computing
row_id                str     the row's id (16 hex digits)
input_index           int     which input of the run the row came from
input                 str     that root input, encoded as ``input_encoding`` says (None: null)
input_encoding        str     ``text`` (str, HTML), ``json`` (int, float, bool, JSON, lists,
                              embeddings), ``base64`` (bytes), ``file-url`` (a File: its URL),
                              ``pickle-base64`` (an untyped Python object), ``none``
input_type            str     the root field's declared type (``str``, ``list[int]``, ...)
parent_row_id         str     the parent row's id (None for a root row)
error_type            str     the exception's class name (``ChildFlowError`` under fail_parent)
error_message         str     its message, URL credentials and known secrets redacted
traceback             str     the formatted traceback, redacted the same way
attempts              int     attempts made (1 without retries)
first_failed_at       str     ISO 8601 UTC time of the first failure
last_failed_at        str     ISO 8601 UTC time of the last one
plan_fingerprint      str     the plan's fingerprint (``flow.fingerprint()``)
child_failures        JSON    under fail_parent: the children's failures (flow, op, field,
                              row_id, error_type, error_message), else an empty list
====================  ======  ==============================================================

Records go through the sink like any rows (a file per batch of records, retried writes), with
the batch's retry number in file names so a retry batch's records never replace earlier ones.
``pickle-base64`` inputs run code when decoded: replay only dead letters you trust.
"""
from __future__ import annotations

import base64
import datetime
import json
import os
import pickle
import traceback as tb
from typing import Any, Iterable

from daft_flow.types import DataType

_STR, _INT = DataType("str"), DataType("int")
COLUMNS: dict[str, DataType] = {
    "flow": _STR, "op": _STR, "field": _STR, "row_id": _STR, "input_index": _INT, "input": _STR,
    "input_encoding": _STR, "input_type": _STR, "parent_row_id": _STR, "error_type": _STR, "error_message": _STR,
    "traceback": _STR, "attempts": _INT, "first_failed_at": _STR, "last_failed_at": _STR, "plan_fingerprint": _STR,
    "child_failures": DataType("JSON"),
}

_TEXT_KINDS = ("str", "HTML")
_JSON_KINDS = ("int", "float", "bool", "JSON", "list", "Embedding")


def encode_input(value: Any, dtype: DataType) -> tuple[str | None, str]:
    """``value`` of a root field of type ``dtype`` as (text, encoding); see the module docstring."""
    if value is None:
        return None, "none"
    kind = dtype.kind
    if kind in _TEXT_KINDS and isinstance(value, str):
        return value, "text"
    if kind == "bytes" and isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii"), "base64"
    if kind == "File" and hasattr(value, "url"):
        return str(value.url), "file-url"
    if kind in _JSON_KINDS:
        try:
            return json.dumps(value, allow_nan=True, default=_json_default), "json"
        except (TypeError, ValueError):
            pass
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(value)).decode("ascii"), "pickle-base64"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(type(value).__name__)


def decode_input(text: str | None, encoding: str) -> Any:
    """The input value a record's ``input`` and ``input_encoding`` stand for."""
    if encoding == "none" or text is None:
        return None
    if encoding in ("text", "file-url"):  # a File input is opened again from its URL
        return text
    if encoding == "json":
        return json.loads(text)
    if encoding == "base64":
        return base64.b64decode(text)
    if encoding == "pickle-base64":
        return pickle.loads(base64.b64decode(text))  # noqa: S301 - documented: replay dead letters you trust
    raise ValueError(f"dead letter: unknown input_encoding {encoding!r}")


def timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _known_secrets() -> list[str]:
    """Values of environment variables whose names look like credentials (API keys, tokens)."""
    from daft_flow.secrets import is_secret_param

    return [v for k, v in os.environ.items() if len(v) >= 8 and is_secret_param(k)]


def redact(text: str) -> str:
    from daft_flow.secrets import redact_text

    return redact_text(text, _known_secrets())


def describe_error(error: BaseException) -> tuple[str, str, str]:
    """(type name, message, traceback), redacted, whatever the exception's methods do."""
    from daft_flow.user_errors import safe_str

    kind = type(error).__name__
    message = redact(safe_str(error))
    try:
        text = "".join(tb.format_exception(error))
    except Exception:  # a broken __str__ or __notes__ inside the chain
        text = f"{kind}: {message}\n"
    return kind, message, redact(text)


def child_summary(failures: list[Any]) -> list[dict[str, Any]]:
    """What a record says about a ChildFlowError's children."""
    out = []
    for f in failures:
        kind, message, _ = describe_error(f.error)
        out.append({"flow": f.flow, "op": f.op, "field": f.field, "row_id": f.row_id, "input_index": f.input_index,
                    "error_type": kind, "error_message": message})
    return out


class DeadLetterWriter:
    """One run's writes to one dead-letter sink, through a ``SinkRun`` (the sink's per-run copy,
    its target claimed for the run, failed writes retried)."""

    def __init__(self, sink: Any) -> None:
        from daft_flow.io.write import SinkRun, SinkWriter

        self.sink = sink
        self.run = SinkRun(SinkWriter(sink, list(COLUMNS), list(COLUMNS.values())))
        self.claimed: list[str] = []
        self.begun = False
        self.written = 0
        self.failed = 0

    def open(self, keep_existing: bool = False) -> None:
        from daft_flow.io.write import claim_targets

        if keep_existing and getattr(self.run.sink, "mode", None) == "overwrite":  # the run's own copy
            self.run.sink.mode = "append"

        self.claimed = claim_targets([self.run])
        self.run.sink.prepare(self.run.columns)
        self.run.sink.begin(self.run.columns)
        self.begun = True

    def write(self, records: list[dict[str, Any]], tag: int) -> list[bool]:
        """Writes records (a batch's, of one retry tag); per record, whether it was written."""
        columns = [[r[name] for r in records] for name in COLUMNS]
        where = self.run.write(columns, [r["input_index"] for r in records], tag)
        ok = [self.run.error_of(w) is None for w in where]
        self.written += sum(ok)
        self.failed += len(ok) - sum(ok)
        return ok

    def errors(self) -> list[BaseException]:
        return list(self.run.errors)

    def close(self) -> None:
        from daft_flow.io.write import release_targets

        try:
            if self.begun:
                self.run.sink.close()
        finally:
            release_targets(self.claimed)
            self.claimed = []


def open_writers(writers: Iterable[Any], keep_existing: bool = False) -> None:
    """Opens dead-letter writers; if one cannot open, those opened are closed again."""
    opened = []
    try:
        for w in writers:
            w.open(keep_existing)
            opened.append(w)
    except BaseException:
        for w in opened:
            w.close()
        raise


def close_writers(writers: Iterable[Any]) -> None:
    """Closes every writer, even when one fails to; then raises the first failure."""
    first: BaseException | None = None
    for w in writers:
        try:
            w.close()
        except BaseException as e:  # noqa: B036 - the others must close too; raised below
            first = first or e
    if first is not None:
        raise first


def dead_letter_keys(policies: list[Any]) -> dict[int, int]:
    """Per level with a dead-letter sink, its sink's key: the first level with the same sink object
    (flows may share one). A worker and its client derive the same keys from the same plan."""
    first: dict[int, int] = {}
    keys = {}
    for level, policy in enumerate(policies):
        if policy is not None and policy.dead_letter is not None:
            keys[level] = first.setdefault(id(policy.dead_letter), level)
    return keys


class DeferredDeadLetters:
    """A worker's stand-in for a ``DeadLetterWriter``: it keeps a morsel's records, which go back
    with the morsel's results; the client writes them once it accepts the morsel, so a morsel
    re-sent after a worker died is written once, and one sink is written by one process."""

    def __init__(self, sink: Any, key: int, out: list[tuple[int, int, list[dict[str, Any]]]]) -> None:
        self.sink, self.key, self.out = sink, key, out
        self.written = self.failed = 0

    def open(self, keep_existing: bool = False) -> None:
        pass

    def write(self, records: list[dict[str, Any]], tag: int) -> list[bool]:
        self.out.append((self.key, tag, records))
        self.written += len(records)
        return [True] * len(records)

    def errors(self) -> list[BaseException]:
        return []

    def close(self) -> None:
        pass


class ClientDeadLetters:
    """A cluster run's dead-letter sinks, written by the client with what each accepted morsel
    brought back (``DeferredDeadLetters``). A record the sink could not write leaves its rows
    failed, not dead-lettered, as in a local run."""

    def __init__(self, policies: list[Any]) -> None:
        keys = dead_letter_keys(policies)
        self.writers = {key: DeadLetterWriter(policies[key].dead_letter) for key in set(keys.values())}

    def open(self) -> None:
        open_writers(self.writers.values())

    def write(self, letters: list[tuple[int, int, list[dict[str, Any]]]], failures: list[Any],
              report: dict[str, Any] | None) -> None:
        """Writes a morsel's records; ``failures`` (its rows' ``RowFailure``s) and ``report`` (its
        report as a dict) lose the dead letters that could not be written."""
        import logging

        unwritten: set[str] = set()
        for key, tag, records in letters:
            writer = self.writers[key]
            ok = writer.write(records, tag)
            lost = [r for r, written in zip(records, ok) if not written]
            for r in lost:
                unwritten.update([r["row_id"], *(c["row_id"] for c in r["child_failures"])])
            if lost:
                logging.getLogger("daft_flow").warning(
                    "dead-letter sink %s could not write %d record(s); those rows stay failed (in the results' "
                    "failures): %s", writer.sink.describe(), len(lost), writer.errors()[-1])
        if not unwritten:
            return
        flows = (report or {}).get("flows") or {}
        for f in failures:
            if f.dead_lettered and f.row_id in unwritten:
                f.dead_lettered = False
                counts = flows.get(f.flow)
                if isinstance(counts, dict) and counts.get("dead_lettered"):
                    counts["dead_lettered"] -= 1

    def close(self) -> None:
        close_writers(self.writers.values())
