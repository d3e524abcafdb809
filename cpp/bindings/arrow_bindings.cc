// Arrow exchange with pyarrow and fast conversions between Python lists and core arrays.
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "arrow_py.h"
#include "gil.h"
#include "registry.h"
#include "dflow/runtime/batch.h"
#include "dflow/arrow/utf8_check.h"
#include "dflow/runtime/value_hash.h"

namespace dflow_py {
using dflow::Array;
using dflow::ArrayPtr;

namespace {

void ReleaseSchemaCapsule(PyObject* capsule) {
  auto* s = static_cast<ArrowSchema*>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (s->release) s->release(s);
  delete s;
}
void ReleaseArrayCapsule(PyObject* capsule) {
  auto* a = static_cast<ArrowArray*>(PyCapsule_GetPointer(capsule, "arrow_array"));
  if (a->release) a->release(a);
  delete a;
}

py::tuple ExportCapsules(const ArrayPtr& array) {
  auto* s = new ArrowSchema();
  auto* a = new ArrowArray();
  array->Export(s, a);
  py::capsule sc(s, "arrow_schema", &ReleaseSchemaCapsule);
  py::capsule ac(a, "arrow_array", &ReleaseArrayCapsule);
  return py::make_tuple(sc, ac);
}

}  // namespace

// A byte buffer the runtime owns, filled from Python (readinto / memoryview writes) and turned into
// a one-row str/bytes array without a copy, so a large document read from a file or socket is held
// once rather than as bytes, then str, then Arrow. Its memory needs no GIL to free.
struct HostBuffer {
  std::shared_ptr<char[]> data;
  int64_t size = 0;
  bool utf8 = false;  // set from Python once the bytes are known to be valid UTF-8
};

// Collects a body of unknown length (an HTTP response without Content-Length, a compressed one)
// into one allocation grown with realloc, which remaps large blocks instead of copying them, so
// the bytes are held once while they arrive; finish() hands them to a HostBuffer without a copy.
// It has no buffer protocol, so no view can outlive a move of its memory.
struct HostBufferBuilder {
  char* data = nullptr;
  int64_t size = 0;
  int64_t capacity = 0;

  HostBufferBuilder() = default;
  HostBufferBuilder(const HostBufferBuilder&) = delete;
  HostBufferBuilder& operator=(const HostBufferBuilder&) = delete;
  ~HostBufferBuilder() { std::free(data); }

  void Append(const char* bytes, int64_t n) {
    if (n <= 0) return;
    if (size + n > capacity) {
      int64_t grown = std::max<int64_t>({size + n, capacity + capacity / 2, 64 * 1024});
      char* moved = static_cast<char*>(std::realloc(data, static_cast<size_t>(grown)));
      if (!moved) throw std::bad_alloc();
      data = moved;
      capacity = grown;
    }
    std::memcpy(data + size, bytes, static_cast<size_t>(n));
    size += n;
  }

  HostBuffer Finish() {
    HostBuffer out;
    char* bytes = data;
    if (size < capacity) {  // give back the unused tail (a remap for large blocks)
      char* shrunk = static_cast<char*>(std::realloc(bytes, static_cast<size_t>(size > 0 ? size : 1)));
      if (shrunk) bytes = shrunk;
    }
    if (!bytes) bytes = static_cast<char*>(std::malloc(1));
    if (!bytes) throw std::bad_alloc();
    out.data = std::shared_ptr<char[]>(bytes, [](char* p) { std::free(p); });
    out.size = size;
    data = nullptr;
    size = capacity = 0;
    return out;
  }
};

namespace {

HostBuffer* AsHostBuffer(PyObject* v) {
  py::handle h(v);
  return py::isinstance<HostBuffer>(h) ? h.cast<HostBuffer*>() : nullptr;
}

ArrayPtr OneValueArray(const HostBuffer& hb, bool utf8) {
  struct Owner { std::shared_ptr<char[]> d; int64_t offsets[2]; };
  auto owner = std::make_shared<Owner>();
  owner->d = hb.data;
  owner->offsets[0] = 0;
  owner->offsets[1] = hb.size;
  return Array::Make(utf8 ? "U" : "Z", 1, 0, 0, {nullptr, owner->offsets, hb.data.get()}, {}, owner, hb.size + 16);
}

constexpr Py_ssize_t kReleaseGilBytes = 1 << 20;

// Converts a Python list to a canonical core array. Raises TypeError naming the first bad index.
// Converts values[start:stop] (reading the caller's list in place, no slice copy). For str/bytes,
// stops after the value that brings the batch to `max_bytes` (0: no cap); `consumed` says how many.
ArrayPtr FromPyList(const py::list& values, const std::string& format, Py_ssize_t start, Py_ssize_t stop,
                    Py_ssize_t max_bytes, Py_ssize_t* consumed, bool allow_null = true) {
  const Py_ssize_t size = PyList_GET_SIZE(values.ptr());
  if (stop < 0 || stop > size) stop = size;
  if (start < 0 || start > stop) throw py::index_error("from_pylist: start out of range");
  PyObject* const* items = &PyList_GET_ITEM(values.ptr(), start);
  Py_ssize_t n = stop - start;
  *consumed = n;
  auto bad = [&](Py_ssize_t i, const char* expected) {
    PyObject* v = items[i];
    throw py::type_error("item " + std::to_string(i) + " is " + Py_TYPE(v)->tp_name + ", expected " + expected);
  };
  if (!allow_null) {  // a field that is not optional: the checked path in Python names each None
    for (Py_ssize_t i = 0; i < n; ++i)
      if (items[i] == Py_None) throw py::type_error("item " + std::to_string(i) + " is None");
  }
  if (format == "U" || format == "Z") {
    bool utf8 = format == "U";
    if (n == 1) {
      if (HostBuffer* hb = AsHostBuffer(items[0])) {
        if (utf8 && !hb->utf8) bad(0, "str");
        return OneValueArray(*hb, utf8);
      }
    }
    // Pass 1 (GIL held): where each value's bytes live. Pass 2 copies them, with the GIL released
    // when there is enough to copy for other threads to gain from it; the values are then held by
    // references of ours, as the list may be the caller's and another thread could drop a value
    // from it (freeing its bytes) during the copy.
    std::vector<std::pair<const char*, Py_ssize_t>> spans(n);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* v = items[i];
      if (v == Py_None) { spans[i] = {nullptr, -1}; continue; }
      if (utf8 && PyUnicode_Check(v)) {
        Py_ssize_t len;
        const char* s = Utf8Of(v, &len);
        if (!s) throw py::error_already_set();
        spans[i] = {s, len};
      } else if (!utf8 && PyBytes_Check(v)) {
        spans[i] = {PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)};
      } else if (HostBuffer* hb = AsHostBuffer(v); hb && (!utf8 || hb->utf8)) {
        spans[i] = {hb->data.get(), static_cast<Py_ssize_t>(hb->size)};
      } else {
        bad(i, utf8 ? "str" : "bytes");  // bytearray is mutable: converted by the checked path in Python
      }
      total += spans[i].second;
      if (max_bytes > 0 && total >= max_bytes) {  // a batch this large is enough
        n = i + 1;
        spans.resize(n);
        *consumed = n;
        break;
      }
    }
    auto copy = [&] {
      dflow::BinaryBuilder b(utf8, n);
      b.Reserve(n, total);
      for (const auto& [p, len] : spans) {
        if (len < 0) b.AppendNull(); else b.Append(p, static_cast<size_t>(len));
      }
      return b.Finish();
    };
    if (total < kReleaseGilBytes) return copy();
    std::vector<py::object> held;
    held.reserve(n);
    for (Py_ssize_t i = 0; i < n; ++i) held.push_back(py::reinterpret_borrow<py::object>(items[i]));
    return WithoutGil(copy);  // `held` is dropped after, with the GIL
  }
  if (format == "l") {
    dflow::PrimitiveBuilder<int64_t> b("l", n);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* v = items[i];
      if (v == Py_None) { b.AppendNull(); continue; }
      if (!PyLong_Check(v) || PyBool_Check(v)) bad(i, "int");  // True is not 1 in an int field
      long long x = PyLong_AsLongLong(v);
      if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
      b.Append(x);
    }
    return b.Finish();
  }
  if (format == "g") {
    dflow::PrimitiveBuilder<double> b("g", n);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* v = items[i];
      if (v == Py_None) { b.AppendNull(); continue; }
      if (PyFloat_Check(v)) b.Append(PyFloat_AS_DOUBLE(v));
      else if (PyLong_Check(v) && !PyBool_Check(v)) {
        double x = PyLong_AsDouble(v);
        if (x == -1.0 && PyErr_Occurred()) throw py::error_already_set();
        b.Append(x);
      } else bad(i, "float");
    }
    return b.Finish();
  }
  if (format == "b") {
    dflow::BoolBuilder b;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* v = items[i];
      if (v == Py_None) { b.AppendNull(); continue; }
      if (!PyBool_Check(v)) bad(i, "bool");
      b.Append(v == Py_True);
    }
    return b.Finish();
  }
  throw py::value_error("from_pylist: no fast conversion for Arrow format '" + format + "'");
}

}  // namespace

bool IsFastFormat(const std::string& f) {
  return f == "U" || f == "u" || f == "Z" || f == "z" || f == "l" || f == "g" || f == "b";
}

PyObject* ValueToPy(const Array& a, int64_t i) {
  if (!a.IsValid(i)) Py_RETURN_NONE;
  const std::string& f = a.format();
  switch (f[0]) {
    case 'U': case 'u': {
      auto v = a.View(i);
      return PyUnicode_DecodeUTF8(v.data(), static_cast<Py_ssize_t>(v.size()), "strict");
    }
    case 'Z': case 'z': {
      auto v = a.View(i);
      return PyBytes_FromStringAndSize(v.data(), static_cast<Py_ssize_t>(v.size()));
    }
    case 'l': return PyLong_FromLongLong(a.Int64(i));
    case 'g': return PyFloat_FromDouble(a.Float64(i));
    case 'b': return PyBool_FromLong(a.Bool(i));
  }
  PyErr_Format(PyExc_TypeError, "no fast conversion for Arrow format '%s'", f.c_str());
  return nullptr;
}

ArrayPtr ImportArray(py::handle obj) {
  if (py::isinstance<Column>(obj)) return obj.cast<Column&>().array;
  py::tuple caps = obj.attr("__arrow_c_array__")();
  PyObject* sc = caps[0].ptr();
  PyObject* ac = caps[1].ptr();
  auto* schema = static_cast<ArrowSchema*>(PyCapsule_GetPointer(sc, "arrow_schema"));
  auto* array = static_cast<ArrowArray*>(PyCapsule_GetPointer(ac, "arrow_array"));
  if (!schema || !array) throw py::error_already_set();
  // Move the structs out; the capsules' destructors then see released structs and do nothing.
  ArrowSchema s = *schema;
  schema->release = nullptr;
  ArrowArray a = *array;
  array->release = nullptr;
  return Array::Import(&s, &a);
}

py::object ToPyArrow(const ArrayPtr& array) {
  static py::object import_capsules =
      py::module_::import("pyarrow").attr("Array").attr("_import_from_c_capsule");
  py::tuple caps = ExportCapsules(array);
  return import_capsules(caps[0], caps[1]);
}

void init_arrow(py::module_& m) {
  py::class_<HostBuffer>(m, "HostBuffer", py::buffer_protocol(),
                         "A writable byte buffer owned by the runtime; a str/bytes result without a copy.")
      .def(py::init([](int64_t size) {
             if (size < 0) throw py::value_error("HostBuffer size must be >= 0");
             HostBuffer b;
             b.data = std::shared_ptr<char[]>(new char[size > 0 ? size : 1]);
             b.size = size;
             return b;
           }), py::arg("size"))
      .def_buffer([](HostBuffer& b) {
        return py::buffer_info(b.data.get(), 1, py::format_descriptor<uint8_t>::format(), 1, {b.size}, {1});
      })
      .def("__len__", [](const HostBuffer& b) { return b.size; })
      .def("truncate", [](HostBuffer& b, int64_t size) {
             if (size < 0 || size > b.size) throw py::value_error("HostBuffer.truncate: size out of range");
             b.size = size;
           }, py::arg("size"), "Keeps the first `size` bytes (fewer arrived than expected).")
      .def_readwrite("utf8", &HostBuffer::utf8, "Whether the bytes were validated as UTF-8 (a str value).");
  py::class_<HostBufferBuilder>(m, "HostBufferBuilder",
                                "Collects bytes of unknown total size into one growing allocation (held once).")
      .def(py::init<>())
      .def("__len__", [](const HostBufferBuilder& b) { return b.size; })
      .def("append", [](HostBufferBuilder& b, const py::buffer& chunk) {
             py::buffer_info info = chunk.request();
             if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
               throw py::value_error("HostBufferBuilder.append needs contiguous bytes");
             b.Append(static_cast<const char*>(info.ptr), static_cast<int64_t>(info.size));
           }, py::arg("chunk"), "Appends the bytes of a bytes-like object.")
      .def("finish", &HostBufferBuilder::Finish,
           "The bytes so far as a HostBuffer (no copy); the builder is empty afterwards.");
  py::class_<Column>(m, "Column", "A core Arrow array; pass it to pyarrow.array() for a zero-copy view.")
      .def("__len__", [](const Column& c) { return c.array->length(); })
      .def_property_readonly("format", [](const Column& c) { return c.array->format(); })
      .def_property_readonly("nbytes", [](const Column& c) { return c.array->nbytes(); })
      .def("__arrow_c_array__", [](const Column& c, py::object requested_schema) { return ExportCapsules(c.array); },
           py::arg("requested_schema") = py::none());
  m.def("from_pylist", [](const py::list& values, const std::string& format) {
        Py_ssize_t consumed;
        return Column{FromPyList(values, format, 0, -1, 0, &consumed)};
      }, py::arg("values"), py::arg("format"),
        "Convert a list of str/bytes/int/float/bool (or None) to a canonical Arrow array.");
  m.def("from_pylist_range", [](const py::list& values, const std::string& format, Py_ssize_t start, Py_ssize_t stop,
                                Py_ssize_t max_bytes, bool allow_null) {
        Py_ssize_t consumed;
        ArrayPtr a = FromPyList(values, format, start, stop, max_bytes, &consumed, allow_null);
        return py::make_tuple(Column{a}, consumed);
      }, py::arg("values"), py::arg("format"), py::arg("start"), py::arg("stop"), py::arg("max_bytes") = 0,
        py::arg("allow_null") = true,
        "values[start:stop] as an array without copying the list; str/bytes stop once max_bytes is reached;\n"
        "TypeError on a None unless allow_null. Returns (column, number of values consumed).");
  m.def("to_pylist", [](py::handle obj) {
        ArrayPtr a = ImportArray(obj);
        if (!IsFastFormat(a->format())) return obj.attr("to_pylist")().cast<py::list>();
        py::list out(a->length());
        for (int64_t i = 0; i < a->length(); ++i) {
          PyObject* v = ValueToPy(*a, i);
          if (!v) throw py::error_already_set();
          PyList_SET_ITEM(out.ptr(), i, v);
        }
        return out;
      }, "Python values of an array (a native loop for str/bytes/int/float/bool; pyarrow otherwise).");
  m.def("untrack_list", [](const py::list& values) {
        // A batch's input list only holds the caller's values; it can be part of no cycle of ours,
        // so keep the cyclic GC from traversing its (many) items on every young collection.
        if (PyObject_GC_IsTracked(values.ptr())) PyObject_GC_UnTrack(values.ptr());
      }, py::arg("values"));
  m.def("strings_are_valid_utf8", [](py::handle obj) -> std::optional<bool> {
        ArrayPtr a = ImportArray(obj);
        return WithoutGil([&] { return dflow::StringsAreValidUtf8(*a); });
      }, py::arg("values"),
        "For a string or large_string array whose buffers pyarrow's validate() accepted: whether its "
        "offsets are in order and every value is valid UTF-8 (null slots too). None for other types.");
  m.def("hash_rows", [](py::handle obj, int64_t first_input) {
        ArrayPtr a = ImportArray(obj);
        return Column{WithoutGil([&] {
          std::vector<uint64_t> ids = dflow::HashColumn(*a, first_input);
          dflow::PrimitiveBuilder<uint64_t> b("L", a->length());
          for (uint64_t x : ids) b.Append(x);
          return b.Finish();
        })};
      }, py::arg("values"), py::arg("first_input") = 0,
        "Stable 64-bit ids for root rows, hashing each value (a null: its input position).");
  // Cache keys: `prefix` + 16 bytes of SipHash-2-4 (key `key`, 16 bytes) over each row's values
  // of `args` ((column, ancestor index or None) pairs, as Python runners receive them). Rows
  // with skip[r] != 0 get None. Values are hashed with the GIL released.
  m.def("hash_keys", [](py::bytes prefix, py::bytes key, py::list args, py::object skip) {
        std::string k = key;
        if (k.size() != 16) throw py::value_error("hash_keys: key must be 16 bytes");
        uint64_t k0 = 0, k1 = 0;
        for (int i = 7; i >= 0; --i) {
          k0 = (k0 << 8) | static_cast<uint8_t>(k[i]);
          k1 = (k1 << 8) | static_cast<uint8_t>(k[8 + i]);
        }
        std::vector<ArrayPtr> columns;
        std::vector<std::vector<int64_t>> indexes(args.size());
        int64_t rows = -1;
        for (size_t i = 0; i < args.size(); ++i) {
          py::tuple t = args[i].cast<py::tuple>();
          columns.push_back(ImportArray(t[0]));
          int64_t n = columns.back()->length();
          if (!t[1].is_none()) {
            ArrayPtr idx = ImportArray(t[1]);
            indexes[i].resize(idx->length());
            for (int64_t r = 0; r < idx->length(); ++r) indexes[i][r] = idx->Int64(r);
            n = idx->length();
          }
          if (rows >= 0 && n != rows) throw py::value_error("hash_keys: arguments have different row counts");
          rows = n;
        }
        if (rows < 0) throw py::value_error("hash_keys: no arguments");
        std::string mask;
        if (!skip.is_none()) {
          mask = skip.cast<std::string>();
          if (static_cast<int64_t>(mask.size()) != rows) throw py::value_error("hash_keys: skip has the wrong length");
        }
        std::vector<dflow::HashInput> inputs;
        for (size_t i = 0; i < columns.size(); ++i) inputs.push_back({columns[i].get(), &indexes[i]});
        std::vector<uint8_t> out(static_cast<size_t>(rows) * 16);
        {
          py::gil_scoped_release release;
          dflow::HashRows(inputs, rows, k0, k1, mask.empty() ? nullptr : reinterpret_cast<const uint8_t*>(mask.data()),
                          out.data());
        }
        std::string p = prefix;
        std::string buf = p + std::string(16, '\0');
        py::list keys(rows);
        for (int64_t r = 0; r < rows; ++r) {
          if (!mask.empty() && mask[r]) {
            keys[r] = py::none();
            continue;
          }
          std::memcpy(&buf[p.size()], out.data() + r * 16, 16);
          keys[r] = py::bytes(buf);
        }
        return keys;
      }, py::arg("prefix"), py::arg("key"), py::arg("args"), py::arg("skip") = py::none(),
      "Per row: prefix + a 128-bit SipHash of its values of `args`, or None where skip[r] is set.");
}

}  // namespace dflow_py
