"""The daft_flow type system and its Arrow mapping.

Every field has a :class:`DataType`. Users name types with Python builtins (``str``, ``int``, ``float``,
``bytes``, ``bool``, ``list[str]``) or with the markers exported here (``JSON``, ``File``, ``Image``,
``Video``, ``Audio``, ``PDF``, ``HTML``, ``Embedding``). Each maps to one canonical Arrow type:

=============  ===========================================  ==============================
daft_flow      Arrow                                        Python value
=============  ===========================================  ==============================
str            large_string                                 str
int            int64                                        int
float          float64                                      float
bool           bool                                         bool
bytes          large_binary                                 bytes
JSON           large_string (JSON text)                     dict / list / str / number
File           struct<url: large_string>                    dflow.File
Image/PDF/     large_binary (the encoded file)              bytes
Video/Audio
HTML           large_string                                 str
Embedding      fixed_size_list<float32>[dim] (or list)      list[float]
list[T]        large_list<T>                                list
=============  ===========================================  ==============================
"""
from __future__ import annotations

import numbers
import types
import typing
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

__all__ = ["DataType", "JSON", "Image", "Video", "Audio", "PDF", "HTML", "Embedding", "dtype_of"]


class _Marker:
    """A type marker usable in annotations and ``Flow(name, type)``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"dflow.{self._name}"


JSON: Any = _Marker("JSON")
Image: Any = _Marker("Image")
Video: Any = _Marker("Video")
Audio: Any = _Marker("Audio")
PDF: Any = _Marker("PDF")
HTML: Any = _Marker("HTML")


class _EmbeddingMarker(_Marker):
    def __getitem__(self, dim: int) -> "DataType":
        return DataType.embedding(dim)

    def __call__(self, dim: int | None = None) -> "DataType":
        return DataType.embedding(dim)


Embedding: Any = _EmbeddingMarker("Embedding")


@dataclass(frozen=True)
class DataType:
    """A field's type. ``kind`` is one of the names in the table above; lists carry ``element``.

    ``optional`` is set by ``T | None`` / ``Optional[T]``: a flow's input may then be ``None``
    (other inputs of ``None`` fail their row). Results may be ``None`` whatever the type.
    """

    kind: str
    element: "DataType | None" = None
    dimension: int = 0  # Embedding only; 0 means "any length"
    optional: bool = False

    # -- constructors --------------------------------------------------------------------------
    @staticmethod
    def embedding(dim: int | None = None) -> "DataType":
        if dim is not None and (not isinstance(dim, int) or dim <= 0):
            raise ValueError(f"Embedding dimension must be a positive int, got {dim!r}")
        return DataType("Embedding", dimension=dim or 0)

    @staticmethod
    def list_of(element: "DataType") -> "DataType":
        return DataType("list", element=element)

    # -- Arrow mapping -------------------------------------------------------------------------
    def to_arrow(self) -> pa.DataType:
        k = self.kind
        if k in ("str", "JSON", "HTML"):
            return pa.large_string()
        if k == "int":
            return pa.int64()
        if k == "float":
            return pa.float64()
        if k == "bool":
            return pa.bool_()
        if k in ("bytes", "Image", "Video", "Audio", "PDF"):
            return pa.large_binary()
        if k == "File":
            return pa.struct([pa.field("url", pa.large_string())])
        if k == "Embedding":
            if self.dimension:
                return pa.list_(pa.float32(), self.dimension)
            return pa.large_list(pa.float32())
        if k == "list":
            assert self.element is not None
            return pa.large_list(self.element.to_arrow())
        if k == "any":
            return pa.large_binary()  # pickled Python objects
        raise AssertionError(f"unknown kind {k}")

    @property
    def arrow_format(self) -> str:
        """The Arrow C format string the native runtime reads for this type ("" if no fast path)."""
        return _FAST_FORMATS.get(self.kind, "")

    @property
    def is_list(self) -> bool:
        return self.kind == "list"

    def __str__(self) -> str:
        if self.kind == "list":
            name = f"list[{self.element}]"
        elif self.kind == "Embedding":
            name = f"Embedding[{self.dimension}]" if self.dimension else "Embedding"
        else:
            name = self.kind
        return f"{name} | None" if self.optional else name

    def required(self) -> "DataType":
        """This type without ``| None``."""
        return replace(self, optional=False) if self.optional else self

    def __repr__(self) -> str:  # as users write types: flow.fields shows {'document': str, 'size': int}
        return str(self)

    # -- value checks --------------------------------------------------------------------------
    def accepts(self, other: "DataType") -> bool:
        """Whether a value of type ``other`` may flow into a parameter declared as ``self``."""
        if self.optional or other.optional:
            return self.required().accepts(other.required())
        if self.kind == "any" or other.kind == "any":
            return True
        if self == other:
            return True
        if self.kind == "float" and other.kind == "int":
            return True
        if self.kind == "str" and other.kind in ("HTML",):
            return True
        if self.kind == "bytes" and other.kind in ("Image", "Video", "Audio", "PDF"):
            return True
        if self.kind == "list" and other.kind == "list":
            assert self.element is not None and other.element is not None
            return self.element.accepts(other.element)
        if self.kind == "Embedding" and other.kind == "Embedding":
            return not self.dimension or not other.dimension or self.dimension == other.dimension
        if self.kind == "list" and other.kind == "Embedding":
            return self.element is not None and self.element.kind in ("float", "any")
        return False

    def check_value(self, value: Any) -> str | None:
        """Returns None if ``value`` is valid for this type, else what is wrong with it."""
        if value is None:
            return None
        if isinstance(value, types.CoroutineType):
            return mismatch(value, str(self))
        k = self.kind
        ok: bool
        if k in ("str", "HTML"):
            ok = isinstance(value, str)
        elif k == "int":
            ok = _is_int(value)
        elif k == "float":
            ok = _is_float(value)
        elif k == "bool":
            ok = _is_bool(value)
        elif k in ("bytes", "Image", "Video", "Audio", "PDF"):
            ok = isinstance(value, (bytes, bytearray, memoryview))
        elif k == "JSON":
            ok = isinstance(value, (dict, list, str, int, float, bool))
        elif k == "File":
            from daft_flow.files import File as FileValue

            ok = isinstance(value, (FileValue, str))
        elif k == "Embedding":
            if not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
                return f"returned {type(value).__name__}, expected a sequence of floats (Embedding)"
            if self.dimension and len(value) != self.dimension:
                return f"returned an embedding of length {len(value)}, expected {self.dimension}"
            ok = True
        elif k == "list":
            if _is_numpy_array(value):
                value = value.tolist()
            if not isinstance(value, (list, tuple)):
                return f"returned {type(value).__name__}, expected {self}"
            assert self.element is not None
            for i, v in enumerate(value):
                problem = self.element.check_value(v)
                if problem:
                    return f"{problem} (element {i} of the list)"
            return None
        else:
            ok = True
        if ok:
            return None
        return mismatch(value, str(self))


_FAST_FORMATS = {"str": "U", "HTML": "U", "int": "l", "float": "g", "bool": "b", "bytes": "Z"}


# Scalars of a field's type in other clothes. numpy integers are ints and numpy floats (and ints)
# are floats; a bool is not an int (True is not 1 in an int field), on input and on results alike.
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _is_numpy_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def mismatch(value: Any, expected: str) -> str:
    """What is wrong with a result of the wrong type (the native row loop asks here too)."""
    if isinstance(value, types.CoroutineType):
        value.close()  # never to be awaited: closed now, so Python does not warn about it later
        return (f"returned a coroutine, expected {expected} (a function called an async function without "
                "awaiting it: make it `async def` and `await` the call)")
    return f"returned {type(value).__name__}, expected {expected}"


def coerce_scalar(value: Any, arrow_format: str) -> Any:
    """A value for a fast Arrow format (``l`` int, ``g`` float, ``b`` bool, ``Z`` bytes) given in
    another form (a numpy scalar, a memoryview) as the plain Python value, or None if it is not a
    value of that type. Never raises: the native row loop calls it for values it does not know."""
    try:
        if arrow_format == "l" and _is_int(value):
            return int(value)
        if arrow_format == "g" and _is_float(value):
            return float(value)
        if arrow_format == "b" and _is_bool(value):
            return bool(value)
        if arrow_format == "Z" and isinstance(value, memoryview):
            return value.tobytes()
    except Exception:
        return None
    return None

ANY = DataType("any")

_BUILTINS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes"}
_MARKERS: dict[int, str] = {id(JSON): "JSON", id(Image): "Image", id(Video): "Video", id(Audio): "Audio",
                            id(PDF): "PDF", id(HTML): "HTML"}


def dtype_of(annotation: Any, *, where: str = "type") -> DataType:
    """Converts a user's type (``str``, ``dflow.JSON``, ``list[str]``, ...) to a :class:`DataType`."""
    if isinstance(annotation, DataType):
        return annotation
    if annotation in _BUILTINS:
        return DataType(_BUILTINS[annotation])
    if id(annotation) in _MARKERS:
        return DataType(_MARKERS[id(annotation)])
    if annotation is Embedding:
        return DataType.embedding(None)
    if annotation is typing.Any:
        return ANY
    from daft_flow.files import File as FileValue

    if annotation is FileValue:
        return DataType("File")
    origin = typing.get_origin(annotation)
    if origin in (list, typing.List):
        args = typing.get_args(annotation)
        return DataType.list_of(dtype_of(args[0], where=where) if args else ANY)
    if origin in (dict, typing.Dict):
        return DataType("JSON")
    if annotation in (list,):
        return DataType.list_of(ANY)
    if annotation in (dict,):
        return DataType("JSON")
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:  # Optional[T], T | None
            return replace(dtype_of(args[0], where=where), optional=True)
    raise TypeError(
        f"unsupported {where} {annotation!r}; use str, int, float, bool, bytes, list[T], dict, T | None, or one of "
        "dflow.JSON, dflow.File, dflow.Image, dflow.Video, dflow.Audio, dflow.PDF, dflow.HTML, dflow.Embedding"
    )
