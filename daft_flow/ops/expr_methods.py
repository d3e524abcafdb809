"""The expression DSL on fields: Python operators and the ``.str``, ``.json``, ``.list`` and
``.embedding`` namespaces. Every method builds a typed native expression (``expr_ops.call``);
nothing runs until the flow does, where consecutive expressions run as one fused native stage.

``Field`` is used as a dict key and formatted into templates, so defining ``==`` keeps identity
hashing, and ``bool(field)`` still raises: ``if field:`` and ``a < b < c`` are mistakes when a
flow is built (use ``&``, ``|``, ``~`` and ``dflow.if_else``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daft_flow.expressions import Field


def _ops() -> Any:
    from daft_flow.ops import expr_ops

    return expr_ops


class FieldOperators:
    """Operators of ``Field`` (mixed in): arithmetic, comparisons, logic, nulls, casts."""

    __slots__ = ()

    def __add__(self, other: Any) -> "Field":
        return _ops().binary("+", self, other)

    def __radd__(self, other: Any) -> "Field":
        return _ops().binary("+", other, self)

    def __sub__(self, other: Any) -> "Field":
        return _ops().binary("-", self, other)

    def __rsub__(self, other: Any) -> "Field":
        return _ops().binary("-", other, self)

    def __mul__(self, other: Any) -> "Field":
        return _ops().binary("*", self, other)

    def __rmul__(self, other: Any) -> "Field":
        return _ops().binary("*", other, self)

    def __truediv__(self, other: Any) -> "Field":
        return _ops().binary("/", self, other)

    def __rtruediv__(self, other: Any) -> "Field":
        return _ops().binary("/", other, self)

    def __floordiv__(self, other: Any) -> "Field":
        return _ops().binary("//", self, other)

    def __rfloordiv__(self, other: Any) -> "Field":
        return _ops().binary("//", other, self)

    def __mod__(self, other: Any) -> "Field":
        return _ops().binary("%", self, other)

    def __rmod__(self, other: Any) -> "Field":
        return _ops().binary("%", other, self)

    def __neg__(self) -> "Field":
        return _ops().unary("-", self)  # type: ignore[arg-type]

    def __eq__(self, other: Any) -> "Field":  # type: ignore[override]
        return _ops().binary("==", self, other)

    def __ne__(self, other: Any) -> "Field":  # type: ignore[override]
        return _ops().binary("!=", self, other)

    def __lt__(self, other: Any) -> "Field":
        return _ops().binary("<", self, other)

    def __le__(self, other: Any) -> "Field":
        return _ops().binary("<=", self, other)

    def __gt__(self, other: Any) -> "Field":
        return _ops().binary(">", self, other)

    def __ge__(self, other: Any) -> "Field":
        return _ops().binary(">=", self, other)

    def __and__(self, other: Any) -> "Field":
        return _ops().binary("&", self, other)

    def __rand__(self, other: Any) -> "Field":
        return _ops().binary("&", other, self)

    def __or__(self, other: Any) -> "Field":
        return _ops().binary("|", self, other)

    def __ror__(self, other: Any) -> "Field":
        return _ops().binary("|", other, self)

    def __invert__(self) -> "Field":
        return _ops().unary("~", self)  # type: ignore[arg-type]

    # A field stays usable as a dict key (fields of a flow, template placeholders): by identity.
    __hash__ = object.__hash__

    def is_null(self) -> "Field":
        """True where the value is null (missing), as a bool field."""
        return _ops().is_null(self)

    def is_not_null(self) -> "Field":
        """True where the value is not null."""
        return _ops().is_null(self, negate=True)

    def fill_null(self, value: Any) -> "Field":
        """The value, or ``value`` (a literal or a field of the same type) where it is null."""
        return _ops().fill_null(self, value)

    def cast(self, dtype: Any) -> "Field":
        """The value converted to ``dtype`` (``int``, ``float``, ``str``, ``bool``) with Python's rules:
        ``int(" 12 ")``, ``str(0.1) == "0.1"``, ``int(2.7) == 2``. A value that does not convert fails
        its row (``ValueError``/``OverflowError``)."""
        return _ops().cast(self, dtype)

    def if_else(self, then: Any, otherwise: Any) -> "Field":
        """``then`` where this bool field is true, ``otherwise`` where it is false (null where null)."""
        return _ops().if_else(self, then, otherwise)

    @property
    def str(self) -> "StrMethods":
        """String methods: ``len, lower, upper, strip, contains, starts_with, ends_with, replace,
        split, slice, count_matches, extract``."""
        return StrMethods(self)  # type: ignore[arg-type]

    @property
    def json(self) -> "JsonMethods":
        """JSON methods: ``get(path, dtype)``."""
        return JsonMethods(self)  # type: ignore[arg-type]

    @property
    def list(self) -> "ListMethods":
        """List methods: ``len, get, slice, join``."""
        return ListMethods(self)  # type: ignore[arg-type]

    @property
    def embedding(self) -> "EmbeddingMethods":
        """Embedding methods: ``dot, cosine, norm``."""
        return EmbeddingMethods(self)  # type: ignore[arg-type]


class _Namespace:
    __slots__ = ("_field",)
    _prefix = ""

    def __init__(self, field: "Field") -> None:
        self._field = field

    def _check(self, op: str) -> "Field":
        raise NotImplementedError

    def _call(self, function: str, op: str, options: tuple[Any, ...] = (), **kwargs: Any) -> "Field":
        return _ops().call(function, [self._check(op)], op=f"{self._prefix}.{op}", options=options, **kwargs)


class StrMethods(_Namespace):
    """``field.str``: methods of text fields (``str``, ``HTML``), with Python's str semantics:
    lengths and slices count code points, ``lower``/``upper`` use Python's full Unicode case
    mappings. Regexes use RE2's syntax (Python's ``re`` without backreferences and lookaround)."""

    __slots__ = ()
    _prefix = "str"

    def _check(self, op: str) -> "Field":
        f = self._field
        _ops().require(f, f"str.{op}()", "a str", f.dtype.kind in ("str", "HTML"))
        return f

    def len(self) -> "Field":
        """Length in code points (``len(s)``)."""
        return self._call("str.len", "len")

    def lower(self) -> "Field":
        """``s.lower()``."""
        return self._call("str.lower", "lower")

    def upper(self) -> "Field":
        """``s.upper()``."""
        return self._call("str.upper", "upper")

    def strip(self) -> "Field":
        """``s.strip()``: leading and trailing whitespace removed."""
        return self._call("str.strip", "strip")

    def contains(self, pattern: str, *, regex: bool = False) -> "Field":
        """``pattern in s``; with ``regex=True``, whether the regex matches anywhere (``re.search``)."""
        _check_str(pattern, "str.contains()")
        return self._call("str.contains_regex" if regex else "str.contains", "contains", (pattern,))

    def starts_with(self, prefix: str) -> "Field":
        """``s.startswith(prefix)``."""
        _check_str(prefix, "str.starts_with()")
        return self._call("str.starts_with", "starts_with", (prefix,))

    def ends_with(self, suffix: str) -> "Field":
        """``s.endswith(suffix)``."""
        _check_str(suffix, "str.ends_with()")
        return self._call("str.ends_with", "ends_with", (suffix,))

    def replace(self, pattern: str, replacement: str, *, regex: bool = False) -> "Field":
        """``s.replace(pattern, replacement)`` (every occurrence); with ``regex=True``,
        ``re.sub(pattern, replacement, s)`` (``\\1`` in ``replacement`` is group 1)."""
        _check_str(pattern, "str.replace()")
        _check_str(replacement, "str.replace()")
        return self._call("str.replace_regex" if regex else "str.replace", "replace", (pattern, replacement))

    def split(self, sep: str | None = None) -> "Field":
        """``s.split(sep)`` as a ``list[str]`` (``sep=None``: runs of whitespace)."""
        if sep is not None:
            _check_str(sep, "str.split()")
            if not sep:
                raise ValueError("str.split(): empty separator")
        return self._call("str.split", "split", (sep,))

    def slice(self, start: int | None = None, stop: int | None = None) -> "Field":
        """``s[start:stop]`` in code points (negative indexes count from the end)."""
        for v in (start, stop):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise TypeError(f"str.slice() takes int or None bounds, got {v!r}")
        return self._call("str.slice", "slice", (start, stop))

    def count_matches(self, pattern: str) -> "Field":
        """How many times the regex matches (``len(re.findall(pattern, s))``)."""
        _check_str(pattern, "str.count_matches()")
        return self._call("str.count_matches", "count_matches", (pattern,))

    def extract(self, pattern: str, group: int = 1) -> "Field":
        """Group ``group`` of the regex's first match (``re.search(pattern, s).group(group)``); null
        where it does not match. ``group=0`` is the whole match."""
        _check_str(pattern, "str.extract()")
        if not isinstance(group, int) or isinstance(group, bool):
            raise TypeError(f"str.extract() takes an int group, got {group!r}")
        return self._call("str.extract", "extract", (pattern, group))


class JsonMethods(_Namespace):
    """``field.json``: reading JSON text (``JSON`` or ``str`` fields)."""

    __slots__ = ()
    _prefix = "json"

    def _check(self, op: str) -> "Field":
        f = self._field
        _ops().require(f, f"json.{op}()", "JSON text (a JSON or str field)", f.dtype.kind in ("JSON", "str"))
        return f

    def get(self, path: str, dtype: Any) -> "Field":
        """The value at ``path`` (``"a.b[0]"``, ``'["key.with.dots"][-1]'``) as ``dtype`` (``str``,
        ``int``, ``float``, ``bool`` or ``dflow.JSON`` for the JSON text of any value). A missing
        key or index gives null; a document that is not JSON, or a value of another type than
        ``dtype``, fails its row."""
        from daft_flow.types import dtype_of

        _check_str(path, "json.get()")
        target = dtype_of(dtype, where="json.get() type")
        if target.kind not in ("str", "int", "float", "bool", "JSON"):
            raise TypeError(f"json.get() returns str, int, float, bool or dflow.JSON, not {target}")
        return self._call("json.get", "get", (path, target.kind), dtype=target)


class ListMethods(_Namespace):
    """``field.list``: methods of ``list[T]`` fields."""

    __slots__ = ()
    _prefix = "list"

    def _check(self, op: str) -> "Field":
        f = self._field
        _ops().require(f, f"list.{op}()", "a list", f.dtype.kind == "list")
        return f

    def len(self) -> "Field":
        """Number of elements."""
        return self._call("list.len", "len")

    def get(self, index: int) -> "Field":
        """Element ``index`` (negative: from the end); null where the list is shorter."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"list.get() takes an int index, got {index!r}")
        return self._call("list.get", "get", (index,))

    def slice(self, start: int | None = None, stop: int | None = None) -> "Field":
        """``lst[start:stop]``."""
        for v in (start, stop):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise TypeError(f"list.slice() takes int or None bounds, got {v!r}")
        return self._call("list.slice", "slice", (start, stop))

    def join(self, sep: str) -> "Field":
        """``sep.join(lst)`` of a ``list[str]``."""
        _check_str(sep, "list.join()")
        f = self._check("join")
        _ops().require(f, "list.join()", "a list[str]", f.dtype.element is not None and f.dtype.element.kind == "str")
        return self._call("list.join", "join", (sep,))


class EmbeddingMethods(_Namespace):
    """``field.embedding``: vector math on ``Embedding`` fields; ``other`` is another embedding
    field or a constant vector (a list or numpy array)."""

    __slots__ = ()
    _prefix = "embedding"

    def _check(self, op: str) -> "Field":
        f = self._field
        ok = f.dtype.kind == "Embedding" or (f.dtype.kind == "list" and f.dtype.element is not None
                                             and f.dtype.element.kind == "float")
        _ops().require(f, f"embedding.{op}()", "an Embedding", ok)
        return f

    def _pair(self, function: str, op: str, other: Any) -> "Field":
        ops = _ops()
        me = self._check(op)
        o = ops.to_operand(other, None, f"embedding.{op}()")
        return ops.call(function, [me, o], op=f"embedding.{op}")

    def dot(self, other: Any) -> "Field":
        """The dot product (float)."""
        return self._pair("embedding.dot", "dot", other)

    def cosine(self, other: Any) -> "Field":
        """The cosine similarity (float; NaN when either vector is zero)."""
        return self._pair("embedding.cosine", "cosine", other)

    def norm(self) -> "Field":
        """The Euclidean norm (float)."""
        return self._call("embedding.norm", "norm")


def _check_str(value: Any, op: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{op} takes a str here, got {type(value).__name__}")
