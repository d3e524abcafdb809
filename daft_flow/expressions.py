"""Fields: the values a flow's rows have, and the ops users build on them. Pure builders, no
execution. Each op's expression class lives in its module of ``daft_flow/ops`` (see
``daft_flow/ops/registry.py``); they are re-exported here, where they have always been imported from."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from daft_flow.ops.as_list import AsList
from daft_flow.ops.chunk_text import check_text
from daft_flow.ops.expr_methods import FieldOperators
from daft_flow.ops.levels import LevelAttribute, LevelDef, LevelInput, Mapped
from daft_flow.ops.llm_ops import LlmCall
from daft_flow.ops.python_udf import PythonCall, check_arguments, make_udf
from daft_flow.ops.registry import Expr
from daft_flow.ops.render_template import RenderTemplate
from daft_flow.ops.tokenize import Tokenize, resolve_tokenizer
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.flow import Flow

__all__ = ["Field", "Expr", "LevelDef", "LevelInput", "LevelAttribute", "Mapped", "PythonCall", "AsList", "Tokenize",
           "RenderTemplate", "LlmCall", "deepest_flow"]


class Field(FieldOperators):
    """A field of a flow, or a value computed from fields, usable in other fields' definitions.

    ``flow["x"]`` returns a Field; ops on it (``run_python``, operators, ``.str`` methods, ...)
    return new Fields to assign with ``flow["y"] = ...``.
    """

    def __init__(self, expr: Expr, flow: "Flow", name: str) -> None:
        self._expr = expr
        self._flow = flow
        self._name = name

    @property
    def name(self) -> str:
        """The field's name, or the op that computes it for unnamed values."""
        return self._name

    @property
    def dtype(self) -> DataType:
        return self._expr.dtype

    @property
    def flow(self) -> "Flow":
        return self._flow

    def __repr__(self) -> str:
        return f"Field({self._name!r} of flow {self._flow.name!r}: {self.dtype})"

    def __format__(self, spec: str) -> str:
        """Formatting a field into a string (``TEMPLATE.format(chunk=flow["chunk"])``, f-strings) writes a
        placeholder that ``prompt()`` / ``embed_text()`` fill with the field's value per row."""
        if spec:
            raise TypeError(f"field {self._name!r} of flow {self._flow.name!r} cannot take a format spec "
                            f"({spec!r}) in a template")
        from daft_flow.ops.llm_ops import placeholder

        return placeholder(self)

    def __bool__(self) -> bool:
        raise TypeError(f"field {self._name!r} of flow {self._flow.name!r} has no truth value when the flow is "
                        "built; combine conditions with & | ~ (not and/or/not), use dflow.if_else, or run_python")

    def run_python(self, fn: Callable[..., Any], *others: "Field", return_type: Any = None, batch: bool = False,
                   max_in_flight: int | None = None, batch_size: int | None = None,
                   version: str | int | None = None, timeout: float | None = None,
                   on_batch_error: str | None = None, concurrency: int | None = None,
                   gpus: float = 0, cache: Any = None) -> "Field":
        """Applies ``fn`` to this field's value (and to ``others``) for every row.

        - Row-wise (default): ``fn(value) -> result`` per row.
        - ``batch=True``: ``fn(values) -> results`` per batch; ``values`` is a ``list`` (or a
          ``pyarrow.Array`` if the parameter is annotated so) and ``results`` must have equal length.
        - ``async def fn``: coroutines run concurrently on the runtime's event loop, at most
          ``max_in_flight`` at once (default 100).

        The result type comes from ``return_type=`` or ``fn``'s return annotation (else any Python
        value). Annotated parameters are checked against the fields' types now: a mismatch is a
        ``TypeError`` naming the flow, field and op.

        ``version=`` is part of the op's fingerprint: change it to mark new results when what ``fn``
        computes changed in a way its fingerprint does not follow (see the user guide).

        ``timeout=`` (seconds per call): an async function that does not finish in time fails its
        row with ``TimeoutError``; a sync function cannot be interrupted, so a warning naming the op
        and the row is logged at the timeout and its result is kept when it returns.
        ``on_batch_error="split"`` (batch functions): a call that raises is split in halves, and so
        on, so only the rows that make it raise fail (each with a ``dflow.BatchError`` naming its
        index in the batch); by default (``"fail"``) every row of the call fails with a ``BatchError``.

        A class (or ``functools.partial`` of one) is a class function: ``concurrency`` instances,
        each made once (``__init__``) with ``gpus`` GPUs of its own (0: CPU, 0.5: half of one, shared
        with another instance), called per batch or row, closed (``close()``) when the run ends.
        Asking for more GPUs than are visible fails before any work starts.

        ``cache=True`` (the process's default cache, see ``dflow.set_cache``) or a cache object
        (``dflow.MemoryCache()``, ``dflow.DiskCache(path)``, ``dflow.RedisCache(url)``) keeps each
        row's result under the op's fingerprint and the row's input values: a row seen before
        is not computed again. Failed rows are never cached.
        """
        fields = (self, *others)
        for f in others:
            if not isinstance(f, Field):
                raise TypeError(f"run_python() extra arguments must be fields, got {type(f).__name__}")
        where = f"field {self._name!r} of flow {self._flow.name!r}"
        udf = make_udf(fn, return_type=return_type, batch=batch, max_in_flight=max_in_flight,
                       batch_size=batch_size, where=where, version=version, timeout=timeout,
                       on_batch_error=on_batch_error, concurrency=concurrency, gpus=gpus)
        check_arguments(udf, [(f._flow.name, f._name, f.dtype) for f in fields], where)
        target = deepest_flow(fields)
        return _with_cache(Field(PythonCall(udf, tuple(f._expr for f in fields)), target, udf.name), cache,
                           f"run_python({udf.name})")

    def open_file(self) -> "Field":
        """A ``dflow.File`` for each path or URL (str) in this field: local paths, ``file://``,
        ``http(s)://``, ``s3://``, ``gs://``, ``hf://`` and any other fsspec protocol installed. The
        URL's form and scheme (and a local file's existence) are checked per row; bytes are read
        lazily (by ``read()`` or by a function that takes the ``File`` as a binary file object)."""
        from daft_flow.ops.file_ops import check_input, open_file_udf

        check_input(self.dtype, "str", "open_file()", self._name, self._flow.name)
        return Field(PythonCall(open_file_udf(), (self._expr,)), self._flow, "open_file")

    def read(self, *, max_in_flight: int | None = None, as_bytes: bool = False, timeout: Any = None,
             max_bytes: "int | str | None" = None, cache: Any = None) -> "Field":
        """The contents of each ``File`` in this field as text (``as_bytes=True``: raw bytes).

        Reads run concurrently on the runtime's event loop (``max_in_flight`` at once, default 384)
        through one connection pool per protocol. Text is decoded as UTF-8, else in the encoding
        detected; HTML becomes its visible text, PDF its extracted text; CSV, JSON and other text
        formats stay as they are. A missing file, an HTTP error, an unsupported scheme or bytes that
        are not text fail that row with an error naming the URL.

        Every read is bounded: ``timeout`` (seconds for the whole read of a row, or a
        ``dflow.Timeout(connect=, read=, total=)``; default 10 s to connect, 30 s without bytes,
        300 s in all) and ``max_bytes`` (the largest document, an int or ``"2GB"``; default 1 GiB).
        A row past a limit fails with ``TimeoutError`` / ``ValueError`` naming the URL. Defaults
        for every read: ``dflow.set_options(read_timeout=..., read_max_bytes=...)``.

        ``cache=`` (True or a cache object) keeps each document under its URL: a URL read before
        is not fetched again (while its entry lives: give the cache a ``ttl`` for changing files).
        """
        from daft_flow.ops.file_ops import check_input, read_udf

        check_input(self.dtype, "File", "read()", self._name, self._flow.name)
        udf = read_udf(max_in_flight, as_bytes, timeout, max_bytes)
        return _with_cache(Field(PythonCall(udf, (self._expr,)), self._flow, udf.builtin), cache, "read()")

    def prompt(self, instruction: str = "", *, provider: Any = None, model: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None, response_format: Any = None,
               options: dict[str, Any] | None = None, include_finish_reason: bool = False,
               timeout: float | None = None, cache: Any = None) -> "Field":
        """Asks the LLM ``instruction`` followed by this field's value, for every row (``str``; ``JSON``
        with ``response_format=`` a pydantic model or JSON schema). ``instruction`` may itself be a
        template with fields (see ``Flow.prompt``). ``include_finish_reason=True`` makes the field
        ``JSON``: ``{"answer": ..., "finish_reason": "stop" | "length" | ...}``. ``cache=`` as for
        ``Flow.prompt``."""
        from daft_flow.ops.llm_ops import PROMPT, check_reserved, has_placeholders, llm_field, make_llm_spec, parse_template

        spec = make_llm_spec(PROMPT, provider=provider, model=model, max_tokens=max_tokens, temperature=temperature,
                             response_format=response_format, options=options,
                             include_finish_reason=include_finish_reason, timeout=timeout)
        if not isinstance(instruction, str):
            raise TypeError(f"prompt() needs a str instruction, got {type(instruction).__name__}")
        check_reserved(instruction, "prompt()")
        # The instruction is literal text (braces included) unless fields were formatted into it.
        literals, fields = (parse_template(instruction, None, "prompt()") if has_placeholders(instruction)
                            else ([instruction], []))
        if instruction:
            literals[-1] += "\n\n"
        literals.append("")
        fields.append(self)
        return _with_cache(llm_field(spec, literals, fields, None, "prompt()"), cache, "prompt()")

    def embed_text(self, *, provider: Any = None, model: str | None = None, timeout: float | None = None,
                   cache: Any = None) -> "Field":
        """The embedding of this text field (``dflow.Embedding``). ``cache=`` as for ``Flow.prompt``."""
        from daft_flow.ops.llm_ops import EMBED, llm_field, make_llm_spec

        spec = make_llm_spec(EMBED, provider=provider, model=model, timeout=timeout)
        return _with_cache(llm_field(spec, ["", ""], [self], None, "embed_text()"), cache, "embed_text()")

    def chunk_text(self, max_chars: int | None = None, overlap: int | None = None, *, max_tokens: int | None = None,
                   overlap_tokens: int | None = None, tokenizer: Any = None) -> "Flow":
        """A child flow with one row per chunk of this text field. See ``Flow.chunk_text``."""
        return self._flow._with_current(self).chunk_text(max_chars, overlap, max_tokens=max_tokens,
                                                         overlap_tokens=overlap_tokens, tokenizer=tokenizer)

    def tokenize(self, tokenizer: Any = None, *, add_special_tokens: bool = True) -> "Field":
        """Token ids (``list[int]``) of this text field with a WordPiece tokenizer (a
        ``dflow.Tokenizer`` or a path to tokenizer.json/vocab.txt; default: all-MiniLM-L6-v2's)."""
        check_text(self.dtype, "tokenize()", self._name, self._flow.name)
        return Field(Tokenize(self._expr, resolve_tokenizer(tokenizer), bool(add_special_tokens)), self._flow,
                     "tokenize")

    def flat_map(self, fn_or_flow: "Callable[..., Any] | Flow", **kwargs: Any) -> "Flow":
        """A child flow with one row per element of ``fn(value)`` (a list), or, given a flow,
        one run of that flow per element of this field's (list) value. See ``Flow.flat_map``."""
        return self._flow._with_current(self).flat_map(fn_or_flow, **kwargs)

    def chain(self, flow: "Flow") -> "Flow":
        """Runs ``flow`` on this field's value: ``flow``'s initial field is bound to it."""
        return self._flow._with_current(self).chain(flow)


def _with_cache(field: Field, cache: Any, op: str) -> Field:
    """``field`` whose op caches its rows in ``cache`` (see ``daft_flow/cache``)."""
    from daft_flow.cache import check_cache_arg

    field._expr.cache = check_cache_arg(cache, op)
    return field


def deepest_flow(fields: tuple[Field, ...]) -> "Flow":
    """The flow (level) an expression over ``fields`` belongs to: the deepest of their levels."""
    best = fields[0]._flow
    for f in fields[1:]:
        if len(f._flow._level.ancestors()) > len(best._level.ancestors()):
            best = f._flow
    return best
