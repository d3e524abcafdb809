"""Stable digests of Python objects: what a function computes, and plain data.

A fingerprint must be the same in every process and on every machine that builds the same flow,
and change when what the flow computes changes. So nothing here uses ``hash()``, ``id()``,
addresses, file paths or line numbers; dicts and sets are digested independently of their order
(set iteration order depends on ``PYTHONHASHSEED``).

What a function's digest follows (documented for users in docs/user-guide.md, "Fingerprints"):

- its code: bytecode, constants (nested code objects recursively), names, argument counts and
  flags, the exception table; not its name, file, line numbers or docstring;
- its default and keyword-only default values, and the values of its closure cells;
- the globals its code (and the code of functions nested in it) names: a function or class of the
  *same module* is followed recursively (its logic); a function or class of another module counts
  by its module and qualified name; a module by its name; other values by their content;
- bound methods (function and the instance's state), ``functools.partial`` (function, arguments),
  callable instances (their class's logic and their state), classes (their methods and attributes).

Values count by content: numbers, strings, bytes, tuples, lists, dicts, sets, numpy arrays, regex
patterns, enums, and objects' attributes (``__dict__``/``__slots__``; attributes whose name looks
like a credential are skipped). An object that defines ``__dflow_fingerprint__()`` counts by what
that returns (providers: their non-secret configuration; tokenizers: their content's hash). Other
objects (open files, locks, C extension objects) count by their type only, and data beyond
``MAX_VALUES`` values in total is cut off: ``run_python(..., version=)`` is the way to mark a
change these rules cannot see.
"""
from __future__ import annotations

import dis
import enum
import functools
import hashlib
import struct
import sys
import types
from typing import Any

MAX_VALUES = 1_000_000  # values digested per object before the rest is cut off
MAX_DEPTH = 64

_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"  # bytecode differs between Python versions
# Attributes whose (normalized) name ends so hold credentials: they never shape an identity.
_SECRET_SUFFIXES = ("apikey", "secret", "secretkey", "password", "passwd", "token", "credential", "credentials",
                    "privatekey", "accesskey", "authorization", "cookie")
# Class attributes that say where or how a class was made, not what it computes.
_CLASS_METADATA = frozenset({"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
                             "__firstlineno__", "__static_attributes__", "__abstractmethods__", "_abc_impl",
                             "__parameters__", "__orig_bases__", "__slotnames__"})


def digest(obj: Any) -> str:
    """The hex digest of ``obj``: its logic for functions, classes and callable objects, its
    content for data (see the module docstring)."""
    return _Digest(_module_of(obj)).run(obj)


def data_digest(data: Any) -> str:
    """The hex digest of plain data (str, numbers, None, lists, tuples, dicts)."""
    return _Digest("").run(data)


def _module_of(obj: Any) -> str:
    if isinstance(obj, (types.FunctionType, type)):
        return str(getattr(obj, "__module__", "") or "")
    if isinstance(obj, types.MethodType):
        return _module_of(obj.__func__)
    if isinstance(obj, functools.partial):
        return _module_of(obj.func)
    return str(type(obj).__module__ or "")


class _Digest:
    def __init__(self, module: str) -> None:
        self.module = module  # functions and classes of this module are followed by their logic
        self.budget = MAX_VALUES
        self.active: dict[int, int] = {}  # objects being digested (cycles), to their depth

    def run(self, obj: Any) -> str:
        h = hashlib.blake2b(digest_size=16, person=b"daft_flow.v1")
        self.walk(h, obj, 0, follow=True)
        return h.hexdigest()

    # -- writing ---------------------------------------------------------------------------------
    @staticmethod
    def put(h: Any, tag: bytes, data: bytes = b"") -> None:
        h.update(tag + struct.pack("<Q", len(data)) + data)

    def sub(self, obj: Any, depth: int, follow: bool = False) -> bytes:
        """The digest of ``obj`` on its own (for order-independent containers)."""
        h = hashlib.blake2b(digest_size=16)
        self.walk(h, obj, depth, follow)
        return h.digest()

    def ref(self, h: Any, tag: bytes, obj: Any) -> None:
        module = str(getattr(obj, "__module__", "") or "")
        name = str(getattr(obj, "__qualname__", "") or getattr(obj, "__name__", "") or type(obj).__qualname__)
        self.put(h, tag, f"{module}:{name}".encode())

    # -- walking ---------------------------------------------------------------------------------
    def walk(self, h: Any, obj: Any, depth: int, follow: bool = False) -> None:
        """Digests ``obj``. ``follow``: digest a function/class by its logic even if it belongs to
        another module (the object the digest is of, not what it references)."""
        self.budget -= 1
        if self.budget < 0:
            self.put(h, b"cut")
            return
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, bytearray)):
            self.scalar(h, obj)
            return
        if depth > MAX_DEPTH:
            self.put(h, b"deep")
            return
        key = id(obj)
        if key in self.active:  # a cycle: name the position it closes on, never an address
            self.put(h, b"cycle", struct.pack("<Q", depth - self.active[key]))
            return
        self.active[key] = depth
        try:
            self.compound(h, obj, depth + 1, follow)
        finally:
            del self.active[key]

    def scalar(self, h: Any, obj: Any) -> None:
        if obj is None:
            self.put(h, b"none")
        elif isinstance(obj, bool):
            self.put(h, b"bool", b"1" if obj else b"0")
        elif isinstance(obj, int):
            self.put(h, b"int", str(obj).encode())
        elif isinstance(obj, float):
            self.put(h, b"float", obj.hex().encode())
        elif isinstance(obj, complex):
            self.put(h, b"complex", f"{obj.real.hex()},{obj.imag.hex()}".encode())
        elif isinstance(obj, str):
            self.put(h, b"str", obj.encode("utf-8", "surrogatepass"))
        else:
            self.put(h, b"bytes", bytes(obj))

    def compound(self, h: Any, obj: Any, depth: int, follow: bool) -> None:
        hook = getattr(type(obj), "__dflow_fingerprint__", None)
        if hook is not None and not isinstance(obj, type):
            self.ref(h, b"custom", type(obj))
            self.walk(h, hook(obj), depth)
        elif isinstance(obj, (tuple, list)):
            self.put(h, b"tuple" if isinstance(obj, tuple) else b"list", struct.pack("<Q", len(obj)))
            for item in obj:
                self.walk(h, item, depth)
        elif isinstance(obj, dict):
            self.put(h, b"dict", b"".join(sorted(self.sub(k, depth) + self.sub(v, depth) for k, v in obj.items())))
        elif isinstance(obj, (set, frozenset)):
            self.put(h, b"set", b"".join(sorted(self.sub(x, depth) for x in obj)))
        elif isinstance(obj, types.CodeType):
            self.code(h, obj, depth)
        elif isinstance(obj, types.FunctionType):
            if follow or obj.__module__ == self.module:
                self.function(h, obj, depth)
            else:
                self.ref(h, b"fnref", obj)
        elif isinstance(obj, type):
            if follow or obj.__module__ == self.module:
                self.cls(h, obj, depth)
            else:
                self.ref(h, b"clsref", obj)
        elif isinstance(obj, types.ModuleType):
            self.put(h, b"module", obj.__name__.encode())
        elif isinstance(obj, types.MethodType):
            self.put(h, b"method")
            self.walk(h, obj.__func__, depth, follow)
            self.walk(h, obj.__self__, depth)
        elif isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType, types.WrapperDescriptorType,
                              types.MethodDescriptorType, types.MethodWrapperType, types.ClassMethodDescriptorType)):
            self.ref(h, b"builtin", obj)
            owner = getattr(obj, "__self__", None)
            if owner is not None and not isinstance(owner, (types.ModuleType, type)):
                self.walk(h, owner, depth)
        elif isinstance(obj, functools.partial):
            self.put(h, b"partial")
            self.walk(h, obj.func, depth, follow)
            self.walk(h, obj.args, depth)
            self.walk(h, obj.keywords, depth)
        elif isinstance(obj, (staticmethod, classmethod)):
            self.put(h, b"static" if isinstance(obj, staticmethod) else b"classmethod")
            self.walk(h, obj.__func__, depth, follow=True)
        elif isinstance(obj, property):
            self.put(h, b"property")
            for f in (obj.fget, obj.fset, obj.fdel):
                self.walk(h, f, depth, follow=True)
        elif isinstance(obj, enum.Enum):
            self.ref(h, b"enum", type(obj))
            self.put(h, b"name", obj.name.encode())
        else:
            self.instance(h, obj, depth, follow)

    def code(self, h: Any, co: types.CodeType, depth: int, skip_doc: bool = False) -> None:
        self.put(h, b"code", f"{_PY}:{co.co_argcount}:{co.co_posonlyargcount}:{co.co_kwonlyargcount}:"
                             f"{co.co_flags}".encode())
        self.put(h, b"bytecode", co.co_code)
        self.put(h, b"exceptions", getattr(co, "co_exceptiontable", b""))
        self.walk(h, co.co_names, depth)
        self.walk(h, co.co_varnames, depth)
        consts = co.co_consts[1:] if skip_doc else co.co_consts
        self.put(h, b"consts", struct.pack("<Q", len(consts)))
        for c in consts:
            self.walk(h, c, depth)

    def function(self, h: Any, fn: types.FunctionType, depth: int) -> None:
        co = fn.__code__
        self.put(h, b"function")
        # The docstring's constant slot (None when there is none, up to Python 3.13).
        skip_doc = bool(co.co_consts) and co.co_consts[0] is fn.__doc__ or (
            bool(co.co_consts) and fn.__doc__ is not None and co.co_consts[0] == fn.__doc__)
        self.code(h, co, depth, skip_doc)
        self.walk(h, fn.__defaults__, depth)
        self.walk(h, fn.__kwdefaults__, depth)
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # an empty cell (a name assigned after the function was made)
                cells.append(_EMPTY_CELL)
        self.walk(h, tuple(cells), depth)
        names = _global_names(co)
        ns = fn.__globals__
        builtins = ns.get("__builtins__")
        for name in sorted(names):
            if name in ns:
                self.put(h, b"global", name.encode())
                self.walk(h, ns[name], depth)
            elif isinstance(builtins, dict) and name in builtins or hasattr(builtins, name):
                continue  # a builtin (len, str): the name in co_names says which
            else:
                self.put(h, b"unbound", name.encode())

    def cls(self, h: Any, cls: type, depth: int) -> None:
        self.put(h, b"class", cls.__qualname__.encode())
        for base in cls.__bases__:
            self.walk(h, base, depth)
        # What the class body defines: methods (their logic, whatever module they came from) and
        # plain-data attributes. Machinery a framework adds (validators compiled by pydantic,
        # caches filled on first use) would make the digest depend on when it is taken.
        members = {k: v for k, v in vars(cls).items() if k not in _CLASS_METADATA and _is_definition(k, v)}
        self.put(h, b"members", struct.pack("<Q", len(members)))
        for name in sorted(members):
            self.put(h, b"member", name.encode())
            value = getattr(members[name], "wrapped", members[name])  # pydantic's decorator proxies
            self.walk(h, value, depth, follow=True)
        schema = getattr(cls, "model_json_schema", None)
        if callable(schema) and "model_fields" in dir(cls):  # a pydantic model: its fields and types
            try:
                import json

                self.put(h, b"schema", json.dumps(schema(), sort_keys=True, default=str).encode())
            except Exception:  # a model whose schema cannot be made: its members still count
                self.put(h, b"noschema")

    def instance(self, h: Any, obj: Any, depth: int, follow: bool) -> None:
        cls = type(obj)
        if cls.__module__ == "numpy" or cls.__module__.startswith("numpy."):
            if hasattr(obj, "tobytes") and hasattr(obj, "dtype"):
                self.put(h, b"ndarray", f"{obj.dtype.str}:{getattr(obj, 'shape', ())}".encode())
                self.put(h, b"data", obj.tobytes())
                return
        pattern = getattr(obj, "pattern", None)
        if cls.__module__ == "re" and pattern is not None:
            self.put(h, b"regex", f"{obj.flags}".encode())
            self.walk(h, pattern, depth)
            return
        self.walk(h, cls, depth, follow=follow or cls.__module__ == self.module)
        state: dict[str, Any] = {}
        if hasattr(obj, "__dict__"):
            try:
                state.update(vars(obj))
            except TypeError:
                pass
        for klass in cls.__mro__:
            for slot in getattr(klass, "__slots__", ()) if not isinstance(getattr(klass, "__slots__", ()), str) else ():
                if slot not in state and hasattr(obj, slot):
                    state[slot] = getattr(obj, slot)
        if not state and not hasattr(obj, "__dict__"):
            self.put(h, b"opaque")  # a C object without visible state: its type is what counts
            return
        self.put(h, b"state", struct.pack("<Q", len(state)))
        for name in sorted(state):
            if is_credential_name(name):
                continue  # never let a credential shape an identity
            self.put(h, b"attr", name.encode())
            self.walk(h, state[name], depth)


class _EmptyCell:
    __slots__ = ()


_EMPTY_CELL = _EmptyCell()


_GLOBAL_OPS = frozenset(dis.opmap[name] for name in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"))


def _global_names(co: types.CodeType) -> set[str]:
    """Names the code (and code nested in it: lambdas, inner functions, comprehensions) reads or
    writes as globals: not attribute names (``s.upper``), which are in ``co_names`` too. The same
    set cloudpickle sends with a function pickled by value, so a restored function digests alike."""
    names = {str(i.argval) for i in dis.get_instructions(co) if i.opcode in _GLOBAL_OPS}
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def is_credential_name(name: str) -> bool:
    """Whether an attribute, option or header called ``name`` holds a credential (``api_key``,
    ``x-api-key``, ``access_token``, ``Authorization``, ``client_secret``; not ``max_tokens``)."""
    n = name.lower().replace("_", "").replace("-", "")
    return n.endswith(_SECRET_SUFFIXES)


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if depth > 8:
        return False
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _is_definition(name: str, value: Any) -> bool:
    """Whether a class attribute is something its body defined: a method, or plain data that is
    not a dunder (dunder data is a framework's bookkeeping: pydantic's namespaces and caches)."""
    value = getattr(value, "wrapped", value)
    if isinstance(value, (types.FunctionType, staticmethod, classmethod, property, type, enum.Enum)):
        return True
    return not (name.startswith("__") and name.endswith("__")) and _is_plain(value)
