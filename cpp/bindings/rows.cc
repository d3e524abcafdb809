// Python rows (one dict per row) from a batch's output columns, in one native pass: what collect,
// collect_batch and stream hand back. Keys are interned once per call; values are made straight
// from the Arrow buffers (or are the caller's own input objects) with no list per column in between.
#include <pybind11/pybind11.h>

#include <cstring>
#include <vector>

#include "arrow_py.h"
#include "registry.h"

namespace dflow_py {
namespace {

// Where one field's values come from, for rows [0, n):
// - `array` (a fast format): decoded from its buffers;
// - `values`: a list of Python values made elsewhere (types that need Python to convert);
// - `objects` (+ `array`): the caller's input objects, row i being objects[offset + i] or
//   objects[offset + index[i]], used when the object is exactly of the field's type (a str for a
//   str field, ...) and decoded from `array` otherwise (a str subclass, a value the source coerced).
struct FieldSource {
  dflow::ArrayPtr array;
  PyObject* values = nullptr;   // borrowed: the caller's list outlives the call
  PyObject* objects = nullptr;  // borrowed, likewise
  Py_ssize_t offset = 0;
  const int64_t* index = nullptr;
  char format = 0;     // first letter of the array's format
  bool ascii = false;  // every string of `array` is ASCII: made without decoding UTF-8
};

// Whether bytes [p, p + n) are all ASCII, eight at a time.
bool AllAscii(const char* p, int64_t n) {
  uint64_t acc = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  for (; i < n; ++i) acc |= static_cast<unsigned char>(p[i]);
  return (acc & 0x8080808080808080ull) == 0;
}

bool StringColumnIsAscii(const dflow::Array& a) {
  if (a.length() == 0) return true;
  // The values of rows [0, length) are one contiguous byte range.
  std::string_view first = a.View(0), last = a.View(a.length() - 1);
  return AllAscii(first.data(), static_cast<int64_t>(last.data() + last.size() - first.data()));
}

// Whether `v` may stand for a value of format `f` as is: exactly the type that format decodes to.
bool ExactType(PyObject* v, char f) {
  switch (f) {
    case 'U': case 'u': return PyUnicode_CheckExact(v);
    case 'Z': case 'z': return PyBytes_CheckExact(v);
    case 'l': return PyLong_CheckExact(v);
    case 'g': return PyFloat_CheckExact(v);
    case 'b': return PyBool_Check(v);
  }
  return false;
}

// New reference to row `row` of a fast-format array, or nullptr with a Python error set.
PyObject* Decode(const FieldSource& s, int64_t row) {
  const dflow::Array& a = *s.array;
  if ((s.format == 'U' || s.format == 'u') && a.IsValid(row)) {
    // A column with some non-ASCII text still has mostly ASCII values: checking each value costs
    // less than UTF-8 decoding it.
    std::string_view v = a.View(row);
    if (s.ascii || AllAscii(v.data(), static_cast<int64_t>(v.size()))) {
      PyObject* str = PyUnicode_New(static_cast<Py_ssize_t>(v.size()), 127);
      if (str && !v.empty()) std::memcpy(PyUnicode_DATA(str), v.data(), v.size());
      return str;
    }
  }
  return ValueToPy(a, row);
}

// New reference to field `s`'s value of row r, or nullptr with a Python error set.
PyObject* FieldValue(const FieldSource& s, Py_ssize_t r) {
  if (s.values) {
    PyObject* v = PyList_GET_ITEM(s.values, r);
    Py_INCREF(v);
    return v;
  }
  if (s.objects) {
    const Py_ssize_t at = s.offset + (s.index ? static_cast<Py_ssize_t>(s.index[r]) : r);
    if (at >= 0 && at < PyList_GET_SIZE(s.objects)) {
      PyObject* v = PyList_GET_ITEM(s.objects, at);
      if (ExactType(v, s.format)) {
        Py_INCREF(v);
        return v;
      }
    }
  }
  return Decode(s, r);
}

// Rows of a batch as dicts. `fields`: per name, a fast-format Arrow array, a list of n Python
// values, or a tuple (objects, offset, index or None, array) as described at FieldSource.
py::list Rows(const py::list& names, const py::list& fields, Py_ssize_t n, bool track) {
  const Py_ssize_t k = PyList_GET_SIZE(names.ptr());
  if (PyList_GET_SIZE(fields.ptr()) != k) throw py::value_error("rows: names and fields differ in length");
  std::vector<py::object> keys(static_cast<size_t>(k));
  std::vector<FieldSource> sources(static_cast<size_t>(k));
  std::vector<py::buffer_info> indexes;  // keeps index buffers mapped while they are read
  indexes.reserve(static_cast<size_t>(k));
  for (Py_ssize_t c = 0; c < k; ++c) {
    PyObject* key = PyList_GET_ITEM(names.ptr(), c);
    if (!PyUnicode_CheckExact(key)) throw py::type_error("rows: field names must be str");
    Py_INCREF(key);
    PyUnicode_InternInPlace(&key);  // compared by identity in every dict, hashed once
    keys[c] = py::reinterpret_steal<py::object>(key);
    FieldSource& s = sources[c];
    py::handle field = PyList_GET_ITEM(fields.ptr(), c);
    py::handle array = field;
    if (PyList_Check(field.ptr())) {
      if (PyList_GET_SIZE(field.ptr()) != n) throw py::value_error("rows: a value list has the wrong length");
      s.values = field.ptr();
      continue;
    }
    if (PyTuple_Check(field.ptr())) {
      py::tuple t = py::reinterpret_borrow<py::tuple>(field);
      if (t.size() != 4 || !PyList_Check(t[0].ptr())) throw py::type_error("rows: bad input-objects field");
      s.objects = t[0].ptr();
      s.offset = t[1].cast<Py_ssize_t>();
      if (!t[2].is_none()) {
        indexes.push_back(py::buffer(t[2]).request());
        const py::buffer_info& info = indexes.back();
        const bool int64 = info.itemsize == 8 && (info.format == "l" || info.format == "q" || info.format == "<q" ||
                                                   info.format == "<l");
        if (info.ndim != 1 || !int64 || info.strides[0] != 8 || info.shape[0] != n)
          throw py::type_error("rows: an input-objects index must be n int64 values");
        s.index = static_cast<const int64_t*>(info.ptr);
      }
      array = t[3];
    }
    s.array = ImportArray(array);
    if (!IsFastFormat(s.array->format())) throw py::type_error("rows: no fast conversion for Arrow format '" +
                                                               s.array->format() + "'");
    if (s.array->length() != n) throw py::value_error("rows: an array has the wrong length");
    s.format = s.array->format()[0];
    if (s.format == 'U' || s.format == 'u') s.ascii = StringColumnIsAscii(*s.array);
  }
  py::list out(n);
  // Not tracked while it is filled: each dict made below may start a young-generation collection,
  // which would otherwise walk this list (it is young too) every time.
  PyObject_GC_UnTrack(out.ptr());
  for (Py_ssize_t r = 0; r < n; ++r) {
    PyObject* d = _PyDict_NewPresized(k);
    if (!d) throw py::error_already_set();
    PyList_SET_ITEM(out.ptr(), r, d);  // owned by `out` from here, also if a value fails below
    bool atomic = true, container = false;
    for (Py_ssize_t c = 0; c < k; ++c) {
      PyObject* v = FieldValue(sources[c], r);
      if (!v) throw py::error_already_set();
      // (Values made here, or objects of exactly a str/bytes/int/float/bool type, never are.)
      if (sources[c].values && PyObject_IS_GC(v)) {
        container = true;
        atomic = atomic && !PyObject_GC_IsTracked(v);
      }
      const int failed = PyDict_SetItem(d, keys[c].ptr(), v);
      Py_DECREF(v);
      if (failed < 0) throw py::error_already_set();
    }
    // A dict of str/int/float/None can be part of no cycle (until a container is put in it, which
    // tracks it again): the collector need not walk the millions of rows a run may return. (A new
    // dict is tracked only once a container is put in it.)
    if (atomic && container) PyObject_GC_UnTrack(d);
  }
  if (track) PyObject_GC_Track(out.ptr());
  return out;
}

}  // namespace

void init_rows(py::module_& m) {
  m.def("rows", &Rows, py::arg("names"), py::arg("fields"), py::arg("n"), py::arg("track") = true,
        "One dict per row, in one pass. fields: per name, a str/bytes/int/float/bool Arrow array, a list of\n"
        "n Python values, or (objects, offset, index or None, array): the caller's input objects where they\n"
        "are exactly of the field's type, row i being objects[offset + (index[i] if index else i)].\n"
        "track=False: the list is not tracked by the garbage collector (for a list only its caller sees,\n"
        "which nothing can put in a reference cycle: no collection walks its n entries).");
}

}  // namespace dflow_py
