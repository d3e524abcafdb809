"""Every expression against Python itself, on random values, nulls and Unicode (hypothesis).

Each example runs one flow over a column of generated values; the native result of each row must
equal what Python computes for it (the same exception type where Python raises)."""
from __future__ import annotations

import json
import math
import operator
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import daft_flow as dflow

from expr_helpers import check, evaluate, reference

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SMALL_INTS = st.integers(min_value=-1000, max_value=1000)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=20)
# Scripts whose Unicode data agree between this Python and RE2's tables (regex classes).
SCRIPTS = st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "Cc"), max_codepoint=0x2FFF) | st.sampled_from(
    list("ΣσςİßﬁǅДж日本🙂\u0301 \t\n"))
SCRIPT_TEXT = st.text(SCRIPTS, max_size=20)


def nullable(s):
    return st.lists(st.none() | s, min_size=1, max_size=25)


def pairs(a, b):
    return st.lists(st.tuples(st.none() | a, st.none() | b), min_size=1, max_size=25)


def int64_or_overflow(fn):
    def run(*args):
        r = fn(*args)
        if isinstance(r, int) and not -(2**63) <= r < 2**63:
            raise OverflowError
        return r
    return run


# -- arithmetic and comparisons ----------------------------------------------------------------------

ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
         "%": operator.mod}
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}


@pytest.mark.parametrize("op", list(ARITH))
@SETTINGS
@given(rows=pairs(INT64, INT64 | SMALL_INTS))
def test_int_arithmetic(op, rows):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"a": (int, a), "b": (int, b)}, lambda f: ARITH[op](f["a"], f["b"]))
    want = [reference(int64_or_overflow(ARITH[op]), x, y) for x, y in rows]
    check(got, want, rows, close=op == "/")


@pytest.mark.parametrize("op", list(ARITH))
@SETTINGS
@given(rows=pairs(FLOATS, FLOATS | SMALL_INTS.map(float)))
def test_float_arithmetic(op, rows):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"a": (float, a), "b": (float, b)}, lambda f: ARITH[op](f["a"], f["b"]))
    check(got, [reference(ARITH[op], x, y) for x, y in rows], rows)


@pytest.mark.parametrize("op", list(ARITH))
@SETTINGS
@given(rows=nullable(SMALL_INTS), literal=st.integers(-5, 5) | st.floats(-3, 3))
def test_arithmetic_with_literals_on_either_side(op, rows, literal):
    got = evaluate({"a": (int, rows)}, lambda f: ARITH[op](literal, f["a"]))
    check(got, [reference(int64_or_overflow(ARITH[op]), literal, x) for x in rows], rows, close=True)


@pytest.mark.parametrize("op", list(COMPARE))
@SETTINGS
@given(rows=pairs(INT64, FLOATS | INT64.map(float)))
def test_comparisons_between_int_and_float_are_exact(op, rows):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"a": (int, a), "b": (float, b)}, lambda f: COMPARE[op](f["a"], f["b"]))
    check(got, [reference(COMPARE[op], x, y) for x, y in rows], rows)


@pytest.mark.parametrize("op", list(COMPARE))
@SETTINGS
@given(rows=pairs(TEXT, TEXT))
def test_string_comparisons_order_by_code_point(op, rows):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"a": (str, a), "b": (str, b)}, lambda f: COMPARE[op](f["a"], f["b"]))
    check(got, [reference(COMPARE[op], x, y) for x, y in rows], rows)


@SETTINGS
@given(rows=nullable(INT64))
def test_negation(rows):
    got = evaluate({"a": (int, rows)}, lambda f: -f["a"])
    check(got, [reference(int64_or_overflow(operator.neg), x) for x in rows], rows)


def kleene(op, x, y):
    if op == "&":
        if x is False or y is False:
            return False
        return None if x is None or y is None else True
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


@pytest.mark.parametrize("op", ["&", "|"])
@SETTINGS
@given(rows=pairs(st.booleans(), st.booleans()))
def test_logic_is_three_valued(op, rows):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"a": (bool, a), "b": (bool, b)}, lambda f: (f["a"] & f["b"]) if op == "&" else (f["a"] | f["b"]))
    check(got, [kleene(op, x, y) for x, y in rows], rows)
    got = evaluate({"a": (bool, a)}, lambda f: ~f["a"])
    check(got, [None if x is None else not x for x in a], rows)


# -- nulls, branches, casts ----------------------------------------------------------------------------

@SETTINGS
@given(rows=pairs(st.booleans(), TEXT), other=TEXT)
def test_if_else_fill_null_is_null(rows, other):
    cond, text = [r[0] for r in rows], [r[1] for r in rows]
    got = evaluate({"c": (bool, cond), "t": (str, text)}, lambda f: dflow.if_else(f["c"], f["t"], other))
    check(got, [None if c is None else (t if c else other) for c, t in rows], rows)
    got = evaluate({"t": (str, text)}, lambda f: f["t"].fill_null(other))
    check(got, [other if t is None else t for t in text], rows)
    got = evaluate({"t": (str, text)}, lambda f: f["t"].is_null())
    check(got, [t is None for t in text], rows)
    got = evaluate({"c": (bool, cond), "t": (str, text)}, lambda f: f["c"].if_else(1, 2.5))
    check(got, [None if c is None else (1.0 if c else 2.5) for c in cond], rows)


CASTS = [(int, str, INT64), (float, str, FLOATS), (bool, str, st.booleans()), (int, float, INT64),
         (float, int, FLOATS), (bool, int, st.booleans()), (int, bool, SMALL_INTS), (float, bool, FLOATS),
         (str, int, st.one_of(INT64.map(str), st.text("0123456789_ -+\t", max_size=8), INT64.map(lambda x: f" {x:_} "))),
         (str, float, st.one_of(FLOATS.map(repr), st.text("0123456789.eE_ -+infa", max_size=8)))]


def python_cast(src, dst):
    def run(x):
        if dst is int and src is float:
            r = int(x)
        else:
            r = dst(x)
        if isinstance(r, int) and not isinstance(r, bool) and not -(2**63) <= r < 2**63:
            raise OverflowError
        return r
    return run


@pytest.mark.parametrize("src,dst,values", CASTS, ids=[f"{a.__name__}-{b.__name__}" for a, b, _ in CASTS])
@SETTINGS
@given(data=st.data())
def test_casts_convert_like_python(src, dst, values, data):
    rows = data.draw(nullable(values))
    got = evaluate({"a": (src, rows)}, lambda f: f["a"].cast(dst))
    check(got, [reference(python_cast(src, dst), x) for x in rows], rows)


# -- .str ----------------------------------------------------------------------------------------------

STR_METHODS = {
    "len": (lambda f: f.str.len(), len),
    "lower": (lambda f: f.str.lower(), str.lower),
    "upper": (lambda f: f.str.upper(), str.upper),
    "strip": (lambda f: f.str.strip(), str.strip),
    "split": (lambda f: f.str.split(), str.split),
    "split_sep": (lambda f: f.str.split("a"), lambda s: s.split("a")),
    "contains": (lambda f: f.str.contains("é"), lambda s: "é" in s),
    "starts_with": (lambda f: f.str.starts_with("a"), lambda s: s.startswith("a")),
    "ends_with": (lambda f: f.str.ends_with("Σ"), lambda s: s.endswith("Σ")),
    "replace": (lambda f: f.str.replace("a", "éé"), lambda s: s.replace("a", "éé")),
    "replace_empty": (lambda f: f.str.replace("", "-"), lambda s: s.replace("", "-")),
    "slice": (lambda f: f.str.slice(1, -1), lambda s: s[1:-1]),
    "slice_tail": (lambda f: f.str.slice(-3), lambda s: s[-3:]),
    "concat": (lambda f: f + "ß" + f, lambda s: s + "ß" + s),
}


@pytest.mark.parametrize("name", list(STR_METHODS))
@SETTINGS
@given(rows=nullable(st.text(max_size=20) | st.text("aAΣσéİß ", max_size=12)))
def test_str_methods_match_python(name, rows):
    build, fn = STR_METHODS[name]
    got = evaluate({"s": (str, rows)}, lambda f: build(f["s"]))
    check(got, [reference(fn, s) for s in rows], rows)


@SETTINGS
@given(rows=nullable(TEXT), start=st.none() | st.integers(-25, 25), stop=st.none() | st.integers(-25, 25))
def test_str_slice_any_bounds(rows, start, stop):
    got = evaluate({"s": (str, rows)}, lambda f: f["s"].str.slice(start, stop))
    check(got, [None if s is None else s[start:stop] for s in rows], rows)


REGEXES = [r"\w+", r"\d+", r"[aeioué]", r"(\w)(\d)?", r"x*", r"a|b", r"\s+", r"é+", r"(?i)ab", r"[^\w\s]", r"\S+"]


@pytest.mark.parametrize("pattern", REGEXES)
@SETTINGS
@given(rows=nullable(SCRIPT_TEXT | st.text("ab1 é_x\t", max_size=12)))
def test_regex_methods_match_python_re(pattern, rows):
    rx = re.compile(pattern)
    got = evaluate({"s": (str, rows)}, lambda f: f["s"].str.count_matches(pattern))
    check(got, [None if s is None else len(rx.findall(s)) for s in rows], (pattern, rows))
    got = evaluate({"s": (str, rows)}, lambda f: f["s"].str.contains(pattern, regex=True))
    check(got, [None if s is None else bool(rx.search(s)) for s in rows], (pattern, rows))
    group = 1 if rx.groups else 0
    got = evaluate({"s": (str, rows)}, lambda f: f["s"].str.extract(pattern, group))
    check(got, [None if s is None or not rx.search(s) else rx.search(s).group(group) for s in rows], (pattern, rows))
    repl = r"<\1>" if rx.groups else "<>"
    got = evaluate({"s": (str, rows)}, lambda f: f["s"].str.replace(pattern, repl, regex=True))
    check(got, [None if s is None else rx.sub(repl, s) for s in rows], (pattern, rows))


# -- .json ----------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "c d", "é"]),
                                                                      children, max_size=4),
    max_leaves=12)
JSON_DOCS = st.one_of(JSON_VALUES.map(json.dumps), JSON_VALUES.map(lambda v: json.dumps(v, indent=1)),
                      st.text(max_size=10))
PATHS = [("a", ["a"]), ("a.b", ["a", "b"]), ("a[0]", ["a", 0]), ("b[-1]", ["b", -1]), ('["c d"].a', ["c d", "a"]),
         ("é", ["é"]), ("[1]", [1])]


def json_reference(doc, path, dtype):
    try:
        value = json.loads(doc)
    except ValueError:
        return ValueError
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
    if value is None:
        return None
    if dtype is dflow.JSON:
        return value
    ok = {str: isinstance(value, str), bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool)}[dtype]
    if not ok:
        return TypeError
    return float(value) if dtype is float else value


@pytest.mark.parametrize("path,steps", PATHS, ids=[p for p, _ in PATHS])
@pytest.mark.parametrize("dtype", [str, int, float, bool, dflow.JSON], ids=["str", "int", "float", "bool", "JSON"])
@SETTINGS
@given(docs=nullable(JSON_DOCS))
def test_json_get_matches_json_loads(path, steps, dtype, docs):
    got = evaluate({"d": (str, docs)}, lambda f: f["d"].json.get(path, dtype))
    # A JSON result is the value's JSON text, which collect() parses: compare the values.
    check(got, [None if d is None else json_reference(d, steps, dtype) for d in docs], docs)


# -- .list and .embedding --------------------------------------------------------------------------------

@SETTINGS
@given(rows=nullable(st.lists(st.text(max_size=5), max_size=6)), index=st.integers(-7, 7),
       start=st.none() | st.integers(-7, 7), stop=st.none() | st.integers(-7, 7))
def test_list_methods(rows, index, start, stop):
    col = {"l": (list[str], rows)}
    check(evaluate(col, lambda f: f["l"].list.len()), [None if r is None else len(r) for r in rows], rows)
    check(evaluate(col, lambda f: f["l"].list.get(index)),
          [None if r is None or not -len(r) <= index < len(r) else r[index] for r in rows], rows)
    check(evaluate(col, lambda f: f["l"].list.slice(start, stop)), [None if r is None else r[start:stop] for r in rows],
          rows)
    check(evaluate(col, lambda f: f["l"].list.join("|")), [None if r is None else "|".join(r) for r in rows], rows)


VECTORS = st.lists(st.floats(-100, 100, width=32), min_size=4, max_size=4)


@SETTINGS
@given(rows=pairs(VECTORS, VECTORS), query=VECTORS)
def test_embedding_math(rows, query):
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    cols = {"a": (dflow.Embedding[4], a), "b": (dflow.Embedding[4], b)}

    def cosine(x, y):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        d = float(np.linalg.norm(x) * np.linalg.norm(y))
        return float(x @ y) / d if d else math.nan

    check(evaluate(cols, lambda f: f["a"].embedding.dot(f["b"])),
          [None if x is None or y is None else float(np.dot(np.float64(x), np.float64(y))) for x, y in rows], rows,
          close=True)
    check(evaluate(cols, lambda f: f["a"].embedding.cosine(f["b"])),
          [None if x is None or y is None else cosine(x, y) for x, y in rows], rows, close=True)
    check(evaluate(cols, lambda f: f["a"].embedding.cosine(np.array(query, dtype=np.float32))),
          [None if x is None else cosine(x, query) for x in a], rows, close=True)
    check(evaluate(cols, lambda f: f["a"].embedding.norm()),
          [None if x is None else float(np.linalg.norm(np.float64(x))) for x in a], rows, close=True)


# -- a chain over a filter's survivors (the layout the span kernels read) ---------------------------------

CHAIN_TEXT = st.text(st.sampled_from(list("pythonPYTHON( _ab1éΣİK\u212a")), max_size=14)


@SETTINGS
@given(rows=st.lists(CHAIN_TEXT, min_size=1, max_size=40), cut=st.integers(0, 6))
def test_string_chain_after_a_filter_matches_python(rows, cut):
    # The rows a filter drops leave their bytes between the survivors: matches across a survivor's
    # end or inside a dropped row must count for no row.
    rx = re.compile(r"([a-z_][a-z0-9_]*)\(")
    doc = dflow.Flow("text", str)
    doc["n"] = doc["text"].str.len()
    kept = doc.filter(doc["n"] > cut)
    kept["lower"] = kept["text"].str.lower()
    kept["upper"] = kept["text"].str.upper()
    kept["python"] = kept["lower"].str.contains("python")
    kept["on"] = kept["text"].str.contains("on(")
    kept["call"] = kept["lower"].str.extract(rx.pattern, 1)
    kept["lower_len"] = kept["lower"].str.len()
    got = kept.select("text", "lower", "upper", "python", "on", "call", "lower_len").collect_batch(rows)
    want = []
    for s in rows:
        if len(s) <= cut:
            continue
        m = rx.search(s.lower())
        want.append({"text": s, "lower": s.lower(), "upper": s.upper(), "python": "python" in s.lower(),
                     "on": "on(" in s, "call": m.group(1) if m else None, "lower_len": len(s.lower())})
    assert got == want
