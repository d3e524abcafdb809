"""The Flow DSL: typed fields, row-wise functions, one-to-many child flows and composition.

A ``Flow`` is a builder. ``flow["x"] = expr`` adds a field to that flow object; every other op
(``run_python``, ``flat_map``, ``chain``) returns a new object and leaves its receiver unchanged.
Nothing runs until ``collect``, ``collect_batch``, ``stream`` or ``collect_arrow``.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from daft_flow.expressions import AsList, Expr, Field, LevelAttribute, LevelDef, LevelInput, Mapped, PythonCall
from daft_flow.ops.chunk_text import check_text, make_chunk_spec
from daft_flow.ops.levels import Explode
from daft_flow.ops.python_udf import callable_name, positional_params
from daft_flow.types import ANY, DataType, dtype_of

if TYPE_CHECKING:
    import pyarrow as pa

    from daft_flow.execution.results import FlowStream
    from daft_flow.sink_flow import SinkFlow

DEFAULT_FIELD = "input"
"""The initial field's name when a flow is created as ``Flow(type)``."""

_MISSING: Any = object()


class Flow:
    """A typed flow of rows.

    ``Flow("document", str)`` makes a root flow whose initial field ``document`` holds each input;
    ``Flow(str)`` names it ``"input"``. The initial field is assumed unique per input: it keys the
    stable row id used by errors, caching and checkpoints.
    """

    def __init__(self, name_or_type: Any, dtype: Any = _MISSING) -> None:
        if dtype is _MISSING:
            if isinstance(name_or_type, str):
                raise TypeError(f"Flow({name_or_type!r}) needs a type. Flow takes a field name and a type, "
                                f"Flow({name_or_type!r}, str) (the initial field is named {name_or_type!r}), or "
                                f"only a type, Flow(str) (the initial field is named {DEFAULT_FIELD!r})")
            name, dtype = DEFAULT_FIELD, name_or_type
        else:
            name = name_or_type
            if not isinstance(name, str) and isinstance(dtype, str):
                raise TypeError(f"Flow({name!r}, {dtype!r}): the field name comes first, then the type: "
                                f"Flow({dtype!r}, {getattr(name, '__name__', name)})")
            if isinstance(dtype, str):
                raise TypeError(f"Flow({name!r}, {dtype!r}): pass the type itself, not its name, "
                                f"e.g. Flow({name!r}, {dtype})")
        _check_field_name(name, "Flow()")
        ftype = dtype_of(dtype, where=f"type of flow {name!r}")
        level = LevelDef(name=name, input_field=name, input_type=ftype)
        self._init(level, {name: LevelInput(level)}, name)

    # -- construction helpers -----------------------------------------------------------------
    def _init(self, level: LevelDef, fields: dict[str, Expr], current: "str | Field") -> None:
        self._level = level
        self._fields = dict(fields)
        self._current = current
        for name, expr in fields.items():
            level.named.setdefault(name, expr)

    @classmethod
    def _make(cls, level: LevelDef, fields: dict[str, Expr], current: "str | Field") -> "Flow":
        flow = cls.__new__(cls)
        flow._init(level, fields, current)
        return flow

    def _derive(self, name: str, expr: Expr) -> "Flow":
        if not getattr(expr, "field_name", ""):
            expr.field_name = name
        fields = dict(self._fields)
        fields[name] = expr
        self._level.named[name] = expr
        return Flow._make(self._level, fields, name)

    def _with_current(self, field: Field) -> "Flow":
        return Flow._make(self._level, self._fields, field)

    def _current_field(self) -> Field:
        if isinstance(self._current, str):
            return self[self._current]
        return Field(self._current._expr, self, self._current.name)

    # -- introspection ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The flow's name: its initial field for a root flow, ``parent.child`` for a child flow."""
        return self._level.name

    @property
    def fields(self) -> dict[str, DataType]:
        """This flow's own fields and their types, in definition order."""
        return {k: v.dtype for k, v in self._fields.items()}

    @property
    def parent(self) -> "str | None":
        """The name of the parent flow, or None for a root flow."""
        return self._level.parent.name if self._level.parent else None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v}" for k, v in self.fields.items())
        return f"Flow({self.name!r}: {fields})"

    # -- fields -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Field:
        if not isinstance(name, str):
            raise TypeError(f"field names are str, got {type(name).__name__}")
        if name not in self._fields:
            known = ", ".join(repr(k) for k in self._fields)
            raise KeyError(f"flow {self.name!r} has no field {name!r}; its fields are: {known}")
        return Field(self._fields[name], self, name)

    def __setitem__(self, name: str, value: Field) -> None:
        _check_field_name(name, f"flow {self.name!r}")
        if not isinstance(value, Field):
            raise TypeError(f"flow[{name!r}] = ... needs a field expression (e.g. flow['x'].run_python(fn)), "
                            f"got {type(value).__name__}")
        if name == self._level.input_field:
            raise ValueError(f"cannot replace {name!r}, the initial field of flow {self.name!r}")
        if not any(value._flow._level.same_rows(lvl) for lvl in self._level.ancestors()):
            raise ValueError(f"field {value.name!r} belongs to flow {value._flow.name!r}, which is neither flow "
                             f"{self.name!r} nor one of its parents")
        self._fields[name] = value._expr
        self._level.named[name] = value._expr
        if not getattr(value._expr, "field_name", ""):
            value._expr.field_name = name  # how plans and errors name it, also when read from a child flow
        self._current = name

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    # -- ops ----------------------------------------------------------------------------------
    def run_python(self, fn: Callable[..., Any], *, return_type: Any = None, batch: bool = False,
                   max_in_flight: int | None = None, batch_size: int | None = None,
                   name: str | None = None, version: str | int | None = None, concurrency: int | None = None,
                   gpus: float = 0, cache: Any = None) -> "Flow":
        """Adds a field computed by ``fn`` and returns the new flow (``fn``'s name names the field).

        ``fn`` receives the current field (the last one added), or, if all its parameter names are
        fields of this flow, those fields by name. See ``Field.run_python`` for the modes.
        """
        params = positional_params(fn) if callable(fn) else []
        names = [p.name for p in params]
        if names and all(n in self._fields for n in names) and (len(names) > 1 or names[0] != "args"):
            args = [self[n] for n in names]
        else:
            args = [self._current_field()]
        value = args[0].run_python(fn, *args[1:], return_type=return_type, batch=batch,
                                   max_in_flight=max_in_flight, batch_size=batch_size, version=version,
                                   concurrency=concurrency, gpus=gpus, cache=cache)
        field_name = name or self._fresh_name(_identifier(callable_name(fn)) or "run_python")
        return self._derive(field_name, value._expr)

    def open_file(self, *, name: str | None = None) -> "Flow":
        """Adds a ``dflow.File`` field (default name ``"file"``) opened from the current field (a
        str path or URL) and returns the new flow. See ``Field.open_file``."""
        value = self._current_field().open_file()
        return self._derive(name or self._fresh_name("file"), value._expr)

    def read(self, *, max_in_flight: int | None = None, as_bytes: bool = False, timeout: Any = None,
             max_bytes: "int | str | None" = None, name: str | None = None, cache: Any = None) -> "Flow":
        """Adds a field (default name ``"text"``) with the contents of the current ``File`` field and
        returns the new flow. See ``Field.read`` (``timeout=`` and ``max_bytes=`` bound each read;
        ``cache=`` keeps documents by URL)."""
        value = self._current_field().read(max_in_flight=max_in_flight, as_bytes=as_bytes, timeout=timeout,
                                           max_bytes=max_bytes, cache=cache)
        return self._derive(name or self._fresh_name("data" if as_bytes else "text"), value._expr)

    def write_sink(self, sink: Any, fields: Any = None) -> "SinkFlow":
        """A flow that writes ``fields`` of every row of this flow to ``sink``.

        ``fields`` is one field (written as a column named after it), a dict of column name ->
        field (fields of this flow or of its parents), or None for the current field. Returns a
        ``dflow.SinkFlow``: its ``collect(x)`` runs the flow and returns a ``dflow.SinkResult``
        (rows written, paths, failed rows). Sinks write in batches and flush when the run ends;
        a failed write is retried, then its rows fail with ``dflow.SinkWriteError``.
        """
        from daft_flow.sink_flow import make_sink_flow

        return make_sink_flow(self, sink, fields)

    def prompt(self, template: "str | Field", *, provider: Any = None, model: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None, response_format: Any = None,
               options: dict[str, Any] | None = None, include_finish_reason: bool = False,
               cache: Any = None) -> Field:
        """Asks the LLM a prompt rendered per row from ``template``, and returns the answer as a field
        of this flow (assign it: ``flow["answer"] = flow.prompt(...)``).

        ``template`` is a string built with ``str.format`` / f-strings from fields of this flow and its
        parents (``PROMPT.format(doc=doc_flow["document"], chunk=chunk_flow["chunk"])``), or a string
        naming this flow's own fields as ``{name}``. Options: ``provider=``, ``model=``,
        ``max_tokens=``, ``temperature=``, ``response_format=`` (a pydantic model or JSON schema: the
        field is then ``JSON``), ``options=`` (other request parameters), ``include_finish_reason=True``
        (the field is then ``JSON``: ``{"answer": ..., "finish_reason": "stop" | "length" | ...}``).
        Answers cut at ``max_tokens`` are counted in the usage report (``truncated``) and logged
        once per op.

        ``cache=True`` (the default cache, ``dflow.set_cache``) or a cache object keeps each answer
        under the op (provider, model, options) and the rendered prompt: a prompt answered before
        is not sent again (usage counts it as a cache hit, at $0). A changed template or model
        makes new keys. Failed rows are never cached.
        """
        from daft_flow.expressions import _with_cache
        from daft_flow.ops.llm_ops import PROMPT, llm_field, make_llm_spec, parse_template

        spec = make_llm_spec(PROMPT, provider=provider, model=model, max_tokens=max_tokens, temperature=temperature,
                             response_format=response_format, options=options,
                             include_finish_reason=include_finish_reason)
        if isinstance(template, Field):
            literals, fields = ["", ""], [template]
        else:
            literals, fields = parse_template(template, self._template_lookup, "prompt()")
        return _with_cache(llm_field(spec, literals, fields, self, "prompt()"), cache, "prompt()")

    def embed_text(self, field_or_template: "str | Field | None" = None, *, provider: Any = None,
                   model: str | None = None, cache: Any = None) -> Field:
        """The embedding (``dflow.Embedding``) of a field or of a template rendered per row (see
        ``prompt``); without an argument, of the current field. Inputs are sent many per request.
        ``cache=`` as for ``prompt``."""
        from daft_flow.expressions import _with_cache
        from daft_flow.ops.llm_ops import EMBED, llm_field, make_llm_spec, parse_template

        spec = make_llm_spec(EMBED, provider=provider, model=model)
        if field_or_template is None:
            field_or_template = self._current_field()
        if isinstance(field_or_template, Field):
            literals, fields = ["", ""], [field_or_template]
        else:
            literals, fields = parse_template(field_or_template, self._template_lookup, "embed_text()")
        return _with_cache(llm_field(spec, literals, fields, self, "embed_text()"), cache, "embed_text()")

    def _template_lookup(self, name: str) -> Field:
        from daft_flow.ops.llm_ops import BRACES_HINT

        if name not in self._fields:
            known = ", ".join(repr(k) for k in self._fields)
            raise KeyError(f"template names field {name!r}, but flow {self.name!r} has no such field; its fields "
                           f"are: {known} (use TEMPLATE.format(name=flow[...]) for fields of parent flows, or "
                           f"{BRACES_HINT})")
        return self[name]

    def last_usage(self) -> Any:
        """Usage (requests, tokens, retries, errors, truncated answers, latency, cost per LLM op) of
        the most recent run of this flow object (empty if that run had no LLM ops), or None if it
        has not run."""
        return getattr(self, "_last_usage", None)

    def last_run(self) -> Any:
        """The ``dflow.RunReport`` of the most recent run of this flow object (per op: time, rows,
        failures, LLM requests, tokens and cost; per flow: rows, succeeded, failed), or None."""
        return getattr(self, "_last_run", None)

    def estimate(self, inputs: Iterable[Any], *, sample: "int | float | None" = None,
                 output_tokens: int | None = None, **options: Any) -> Any:
        """What running this flow on ``inputs`` would cost, without calling any model: per LLM op
        and in total, requests, input tokens, expected output tokens, cost and the duration the
        provider's rate limits allow (a ``dflow.Estimate``). Every op an LLM op depends on runs
        (reads, chunking, templates, Python functions); sinks write nothing. ``sample`` runs only
        that many inputs (an int) or that share of them (a float in (0, 1]) and extrapolates;
        ``output_tokens`` is the expected answer length of prompts (default: their ``max_tokens``,
        else ``dflow.estimate.DEFAULT_OUTPUT_TOKENS``)."""
        from daft_flow.execution.estimate import estimate

        return estimate(self, inputs, sample=sample, output_tokens=output_tokens, **options)

    def chunk_text(self, max_chars: int | None = None, overlap: int | None = None, *, max_tokens: int | None = None,
                   overlap_tokens: int | None = None, tokenizer: Any = None) -> "Flow":
        """Splits the current (str) field into chunks: a child flow with fields ``chunk``,
        ``chunk_index``, ``start_offset`` and ``end_offset`` (``text[start_offset:end_offset] == chunk``),
        whose expressions can read this flow's fields.

        - By characters (default): ``max_chars=1000``, ``overlap=200`` (``overlap`` defaults to a fifth
          of ``max_chars``).
        - By tokens: ``max_tokens=256``, ``overlap_tokens=32``, ``tokenizer=`` a ``dflow.Tokenizer`` or
          a path to tokenizer.json / vocab.txt (default: all-MiniLM-L6-v2's WordPiece).

        Chunks end at the most meaningful boundary that fits: paragraph, line, sentence, word, then
        character; never inside a code point. They cover the text in order; empty text gives no chunks.
        A chunk never exceeds ``max_chars``; by tokens, only a single code point that yields several
        tokens (a Hangul syllable) can push a chunk past ``max_tokens``.
        """
        current = self._current_field()
        check_text(current.dtype, "chunk_text()", current.name, self.name)
        spec = make_chunk_spec(max_chars, overlap, max_tokens, overlap_tokens, tokenizer)
        level = LevelDef(name=f"{self.name}.chunks", input_field="chunk", input_type=DataType("str"),
                         parent=self._level, source=current._expr, origin=spec)
        fields: dict[str, Expr] = {"chunk": LevelInput(level)}
        for attr, dtype in spec.attributes():
            fields[attr] = LevelAttribute(level, attr, dtype)
        return Flow._make(level, fields, "chunk")

    def flat_map(self, fn_or_flow: "Callable[..., Any] | Flow", *, field: str = "item", **kwargs: Any) -> "Flow":
        """One-to-many: a child flow with a row per element.

        - ``flat_map(fn)``: ``fn(current value)`` returns a list; each element becomes a row of the
          child flow in field ``field`` (default ``"item"``).
        - ``flat_map(other_flow)``: the current value is a list (or any iterable); ``other_flow``
          runs once per element, with its initial field bound to the element. Returns ``other_flow``
          as seen from here: collecting it yields its rows.
        """
        current = self._current_field()
        if isinstance(fn_or_flow, Flow):
            other = fn_or_flow
            if kwargs:
                raise TypeError(f"flat_map(flow) takes no options, got {sorted(kwargs)}")
            root = other._level.ancestors()[-1]
            source = _as_list(current._expr, root.input_type, current, f"flat_map({other.name})")
            return self._bind(other, source, one_to_one=False)
        if not callable(fn_or_flow):
            raise TypeError(f"flat_map() needs a function or a Flow, got {type(fn_or_flow).__name__}")
        _check_field_name(field, "flat_map()")
        value = current.run_python(fn_or_flow, **kwargs)
        element = value.dtype.element if value.dtype.is_list else ANY
        assert element is not None
        source = _as_list(value._expr, element, value, f"flat_map({callable_name(fn_or_flow)})")
        level = LevelDef(name=f"{self.name}.{field}", input_field=field, input_type=element, parent=self._level,
                         source=source, origin=Explode(one_to_one=False))
        return Flow._make(level, {field: LevelInput(level)}, field)

    def chain(self, flow: "Flow") -> "Flow":
        """Runs ``flow`` on the current value: its initial field is bound to this flow's current field.

        ``Flow(str).run_python(fetch).chain(chunk_flow)`` runs ``chunk_flow`` (and its parents) on
        each fetched value and returns ``chunk_flow`` as seen from here.
        """
        if not isinstance(flow, Flow):
            raise TypeError(f"chain() needs a Flow, got {type(flow).__name__}")
        current = self._current_field()
        root = flow._level.ancestors()[-1]
        if not root.input_type.accepts(current.dtype):
            raise TypeError(f"chain({flow.name}) needs {root.input_type} for field {root.input_field!r}, but field "
                            f"{current.name!r} of flow {self.name!r} is {current.dtype}")
        source = current._expr
        if current.dtype.kind == "any" and root.input_type.kind != "any":
            # An untyped value (kept pickled) becomes the chained flow's input type, row by row: a
            # value of another type fails its row instead of reaching the flow as pickle bytes.
            from daft_flow.ops.python_udf import as_type_udf

            source = PythonCall(as_type_udf(root.input_type), (source,))
        return self._bind(flow, source, one_to_one=True)

    def _bind(self, other: "Flow", source: Expr, one_to_one: bool) -> "Flow":
        """A copy of ``other`` (and its parents) whose root rows are made from ``source`` here."""
        path = other._level.ancestors()[::-1]
        mapping: dict[LevelDef, LevelDef] = {}
        parent, src = self._level, source
        for lvl in path:
            copy = LevelDef(name=lvl.name, input_field=lvl.input_field, input_type=lvl.input_type, parent=parent,
                            source=src, origin=lvl.origin.copy_for_chain(one_to_one))
            copy.copied_from = (lvl, mapping)
            mapping[lvl.base] = copy
            # A filtered/limited view copies as the same view of the copy (its predicates mapped below).
            mapping[lvl] = copy
            for kind, arg in lvl.view_ops:
                mapping[lvl] = mapping[lvl].with_view_op(kind, arg)
            parent = mapping[lvl]
        # Sources of non-root levels are expressions in the original graph: view them through the mapping.
        for lvl in path[1:]:
            assert lvl.source is not None
            for level in {mapping[lvl.base], mapping[lvl]}:
                level.source = Mapped(lvl.source, mapping)
        for lvl in path:
            view = mapping[lvl]
            view.view_ops = tuple((k, Mapped(a, mapping) if k == "filter" else a) for k, a in view.view_ops)
        fields = {k: Mapped(v, mapping) for k, v in other._fields.items()}
        flow = Flow._make(mapping[other._level], fields, "")
        current = other._current
        flow._current = current if isinstance(current, str) else Field(Mapped(current._expr, mapping), flow,
                                                                        current.name)
        return flow

    # -- rows and fields -----------------------------------------------------------------------
    def filter(self, predicate: Field) -> "Flow":
        """This flow without the rows where ``predicate`` (a bool expression of its fields) is not
        true (false or null). Dropped rows are counted as filtered, never as failures; ops added to
        the returned flow, and child flows made from it, never run for them.

        ``collect_batch`` on a filtered root flow returns the rows that passed (filtered inputs are
        absent); ``collect`` returns None for a filtered input.
        """
        from daft_flow.ops.row_ops import filter_flow

        return filter_flow(self, predicate)

    where = filter

    def limit(self, n: int) -> "Flow":
        """At most ``n`` rows of this flow, in input order. Reading stops once they are done: on a
        root flow before any filter, only ``n`` inputs are read (``limit(10)`` of an endless
        generator returns 10 rows); after a filter, or on a child flow, the run stops as soon as
        ``n`` rows came out (then it must be the flow you collect)."""
        from daft_flow.ops.row_ops import limit_flow

        return limit_flow(self, n)

    def select(self, *fields: "str | Field", **named: Field) -> "Flow":
        """A flow with only these fields (names or fields of this flow and its parents; ``name=expr``
        adds a computed field), in this order."""
        from daft_flow.ops.row_ops import select_fields

        return select_fields(self, fields, named, "select()")

    def exclude(self, *names: str) -> "Flow":
        """A flow without the named fields."""
        from daft_flow.ops.row_ops import exclude_fields

        return exclude_fields(self, names)

    def show(self, values: Iterable[Any], n: int = 10, **options: Any) -> None:
        """Prints the first ``n`` rows of this flow for ``values`` as a table (a display helper: it
        runs ``limit(n)`` and prints to stdout)."""
        import sys

        from daft_flow.ops.row_ops import format_table

        rows = list(self.limit(n).stream(values, on_error="skip", **options))
        sys.stdout.write(format_table(list(self._fields), rows) + "\n")

    def _fresh_name(self, base: str) -> str:
        name, i = base, 1
        while name in self._fields:
            name, i = f"{base}_{i}", i + 1
        return name

    # -- plans ----------------------------------------------------------------------------------
    def to_ir(self) -> Any:
        """The traced plan as a protobuf ``daft_flow.ir.Plan`` (see proto/flow.proto), with the
        fingerprint of every node, level and object."""
        from daft_flow.plan.fingerprint import fingerprint_plan
        from daft_flow.plan.trace import trace

        return fingerprint_plan(trace(self))

    def fingerprint(self) -> str:
        """The flow's identity (hex): the same in every process and on every machine that builds
        the same flow, different when anything that changes its results changes (a function's
        logic, an op's parameters, a template, a model, a tokenizer's content). Never derived
        from a secret. See the user guide's "Fingerprints" for what is followed."""
        return str(self.to_ir().fingerprint)

    def explain(self) -> str:
        """A readable description of the plan that would run."""
        from daft_flow.plan.explain import explain

        return explain(self.to_ir())

    def to_bytes(self) -> bytes:
        """The flow as bytes another process turns back into it with ``dflow.Flow.from_bytes``.

        They carry everything the flow needs except secrets: the plan, its Python functions
        (cloudpickle: functions of installed packages by reference, your own code by value),
        tokenizers by content, providers as configuration (the receiving side reads the API key
        from the environment variable named by the provider's ``api_key_env``), sinks with their
        settings. ``pickle.dumps(flow)`` is the same bytes. Load only plans you trust: loading
        runs pickles.
        """
        from daft_flow.plan.serialize import plan_to_bytes
        from daft_flow.plan.trace import trace

        return plan_to_bytes(trace(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Flow":
        """The flow ``flow.to_bytes()`` made ``data`` of: it runs, explains and fingerprints like the
        original (its fingerprint is the original's). Raises ``ValueError`` for bytes that are not a
        plan or a plan of another IR version."""
        from daft_flow.plan import flow_pb2 as ir
        from daft_flow.plan.serialize import restore

        flow: Flow = restore(data, ir.Plan.FLOW)
        return flow

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its travelling plan: no secrets, no run state, restorable in a fresh process.
        return (_flow_from_bytes, (self.to_bytes(),))

    # -- execution ------------------------------------------------------------------------------
    def _with_parents(self, include_parents: "Iterable[str | Field] | None") -> "Flow":
        """This flow with chosen fields of its parent flows added to its rows (``include_parents``:
        names, resolved on the nearest parent flow that has them, or the parent fields themselves)."""
        if include_parents is None:
            return self
        if isinstance(include_parents, (str, Field)):
            include_parents = [include_parents]
        fields = dict(self._fields)
        parents = self._level.ancestors()[1:]
        for item in include_parents:
            if isinstance(item, Field):
                if item._flow._level not in parents:
                    raise ValueError(f"include_parents: field {item.name!r} belongs to flow {item._flow.name!r}, "
                                     f"which is not a parent of flow {self.name!r}")
                name, expr = item.name, item._expr
            elif isinstance(item, str):
                name, found = item, None
                for level in parents:
                    found = level.lookup(item)
                    if found is not None:
                        break
                if found is None:
                    known = ", ".join(repr(n) for level in parents for n in level.field_names()) or "none"
                    raise KeyError(f"include_parents: no parent flow of flow {self.name!r} has a field {item!r}; "
                                   f"parent fields: {known}")
                expr = found
            else:
                raise TypeError(f"include_parents takes field names or parent fields, got {type(item).__name__}")
            if name in fields and fields[name] is not expr:
                raise ValueError(f"include_parents: flow {self.name!r} already has a field {name!r}; add the "
                                 f"parent field under another name instead (flow[{name + '_parent'!r}] = parent[{name!r}])")
            fields[name] = expr
        return Flow._make(self._level, fields, self._current)

    def collect(self, value: Any, *, include_parents: "Iterable[str | Field] | None" = None, **options: Any) -> Any:
        """Runs the flow on one input. Returns a dict for a root flow, a list of dicts for a child flow.

        ``include_parents=["url"]`` adds fields of parent flows to a child flow's rows (by name, or
        the parent fields themselves). If a row fails, its original exception is raised, with notes
        naming the row id, op and field.
        """
        from daft_flow.execution.runner import collect_one

        return collect_one(self._with_parents(include_parents), value, usage_owner=self, **options)

    def collect_batch(self, values: Iterable[Any], *, on_error: str = "raise",
                      include_parents: "Iterable[str | Field] | None" = None, **options: Any) -> list[Any]:
        """Runs the flow on many inputs; one result per input. Inputs may be any iterable
        (generators included), a pyarrow Table / RecordBatch / RecordBatchReader / Array (the
        column named like the initial field, else the first) or a daft DataFrame.

        With ``on_error="raise"`` (default), failures raise ``dflow.FlowRunError`` after every input
        has run: it carries ``results`` (``None`` for failed inputs), ``failures`` and
        ``failed_inputs``. With ``on_error="return"``, failed inputs hold a ``dflow.RowFailure``.

        ``checkpoint="dir"`` (or ``"s3://bucket/run"``) keeps finished inputs' rows there: called
        again with the same inputs (in the same order) after a crash, only the inputs that were not
        done run, and every result comes back. ``resume="force"`` accepts a checkpoint of a changed
        flow, ``resume=False`` starts over (see the user guide's "Checkpoints").
        """
        from daft_flow.execution.runner import collect_batch

        return collect_batch(self._with_parents(include_parents), values, on_error=on_error, usage_owner=self,
                             **options)

    def stream(self, values: Iterable[Any], *, ordered: bool = True, on_error: str = "raise", lineage: bool = False,
               include_parents: "Iterable[str | Field] | None" = None, **options: Any) -> "FlowStream":
        """Yields this flow's rows as they finish (input order by default; ``ordered=False`` for
        completion order). Breaking out of the loop stops the run and frees its memory.

        ``on_error="raise"`` raises the first failure; ``"skip"`` records failures on the stream's
        ``failures`` list and goes on. ``lineage=True`` adds ``_input_index`` and ``_row_id`` to each
        row (as ``collect_arrow(lineage=True)``); ``include_parents`` as for ``collect``;
        ``checkpoint=`` as for ``collect_batch`` (a resumed stream yields earlier attempts' rows too).
        """
        from daft_flow.execution.runner import stream

        return stream(self._with_parents(include_parents), values, ordered=ordered, on_error=on_error, lineage=lineage,
                      usage_owner=self, **options)

    def collect_arrow(self, values: Iterable[Any], *, on_error: str = "raise", lineage: bool = False,
                      include_parents: "Iterable[str | Field] | None" = None, **options: Any) -> "pa.Table":
        """Runs the flow on many inputs and returns its rows as one ``pyarrow.Table`` (bulk form).

        ``lineage=True`` adds ``_input_index`` and ``_row_id`` columns; ``include_parents`` as for
        ``collect``; ``checkpoint=`` as for ``collect_batch``.
        """
        from daft_flow.execution.runner import collect_arrow

        return collect_arrow(self._with_parents(include_parents), values, on_error=on_error, lineage=lineage,
                             usage_owner=self, **options)

    def collect_daft(self, values: Any, *, on_error: str = "raise", lineage: bool = False,
                     include_parents: "Iterable[str | Field] | None" = None, **options: Any) -> Any:
        """Runs the flow on ``values`` (a daft DataFrame: the column named like the initial field,
        else the first; or any input ``collect_arrow`` takes) and returns a daft DataFrame,
        exchanged as Arrow."""
        import daft

        return daft.from_arrow(self.collect_arrow(values, on_error=on_error, lineage=lineage,
                                                  include_parents=include_parents, **options))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"flow {self.name!r} is a builder and cannot be iterated; use flow.stream(inputs)")


def _flow_from_bytes(data: bytes) -> Flow:
    return Flow.from_bytes(data)


def _as_list(expr: Expr, element: DataType, field: Field, op: str) -> Expr:
    """A list-typed expression for flat_map, checking element types where they are known."""
    if expr.dtype.is_list:
        assert expr.dtype.element is not None
        if not element.accepts(expr.dtype.element):
            raise TypeError(f"{op} needs elements of type {element}, but field {field.name!r} of flow "
                            f"{field.flow.name!r} is {expr.dtype}")
        if expr.dtype.element.kind != "any" or element.kind == "any":
            return expr
    elif expr.dtype.kind not in ("any", "JSON"):
        raise TypeError(f"{op} needs a list, but field {field.name!r} of flow {field.flow.name!r} is {expr.dtype}")
    return AsList(expr, element)


def _identifier(name: str) -> str:
    name = name.split(".")[-1]
    return re.sub(r"\W", "_", name).strip("_") if name != "<lambda>" else ""


def _check_field_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}: field names must be non-empty str, got {name!r}")
    if name.startswith("_"):
        raise ValueError(f"{where}: field names starting with '_' are reserved, got {name!r}")
