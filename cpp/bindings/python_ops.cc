#include "python_ops.h"

#include <pybind11/stl.h>

#include <deque>

#include "arrow_py.h"

namespace dflow_py {
using dflow::ArrayPtr;
using dflow::Batch;
using dflow::Level;

namespace {

// Reads one argument for every row of the operator's level, by reference into its own level.
struct ArgReader {
  ArrayPtr column;
  std::vector<int64_t> index;  // empty: same level (row r reads row r)
  py::list converted;          // set when the column has no fast conversion
  Py_ssize_t converted_offset = 0;  // row r is converted[converted_offset + r]
  bool generic = false;
  int64_t cached_row = -1;     // consecutive children share their ancestor's Python object
  PyObject* cached = nullptr;

  int64_t Row(int64_t r) const { return index.empty() ? r : index[r]; }

  // New reference, or nullptr with a Python error set.
  PyObject* Get(int64_t r) {
    int64_t row = Row(r);
    if (!index.empty() && row == cached_row) {
      Py_INCREF(cached);
      return cached;
    }
    PyObject* v;
    if (generic) {
      v = PyList_GET_ITEM(converted.ptr(), converted_offset + row);
      Py_INCREF(v);
    } else {
      v = ValueToPy(*column, row);
      if (!v) return nullptr;
    }
    if (!index.empty()) {
      Py_XDECREF(cached);
      cached = v;
      Py_INCREF(cached);
      cached_row = row;
    }
    return v;
  }
  ~ArgReader() { Py_XDECREF(cached); }
};

std::vector<ArgReader> MakeReaders(const Batch& batch, const PythonOpInfo& info) {
  std::vector<ArgReader> readers(info.args.size());
  for (size_t k = 0; k < info.args.size(); ++k) {
    const ArgSpec& a = info.args[k];
    readers[k].column = batch.levels.at(a.level).columns.at(a.node);
    if (a.level != info.level) readers[k].index = batch.AncestorIndex(info.level, a.level);
  }
  return readers;
}

const char* TypeName(PyObject* o) { return Py_TYPE(o)->tp_name; }

// Appends a Python result to the builder for `format`; returns an error message on a type mismatch.
struct ResultBuilder {
  std::string format;
  std::unique_ptr<dflow::BinaryBuilder> bin;
  std::unique_ptr<dflow::PrimitiveBuilder<int64_t>> i64;
  std::unique_ptr<dflow::PrimitiveBuilder<double>> f64;
  std::unique_ptr<dflow::BoolBuilder> boolean;

  ResultBuilder(const std::string& f, int64_t n) : format(f) {
    if (f == "U" || f == "Z") bin = std::make_unique<dflow::BinaryBuilder>(f == "U", n);
    else if (f == "l") i64 = std::make_unique<dflow::PrimitiveBuilder<int64_t>>("l", n);
    else if (f == "g") f64 = std::make_unique<dflow::PrimitiveBuilder<double>>("g", n);
    else if (f == "b") boolean = std::make_unique<dflow::BoolBuilder>();
    else throw std::invalid_argument("no fast builder for format " + f);
  }
  // str/bytes results are immutable: remember where their bytes are (holding a reference) and copy
  // them all in Finish with the GIL released.
  void Keep(PyObject* v, const char* data, Py_ssize_t len) {
    Py_INCREF(v);
    kept.push_back(v);
    spans.emplace_back(data, len);
  }
  std::vector<std::pair<const char*, Py_ssize_t>> spans;
  std::vector<PyObject*> kept;
  std::deque<std::string> copies;
  // Destroyed inside Process, where the GIL is held (also when a cancelled run unwinds).
  ~ResultBuilder() {
    for (PyObject* v : kept) Py_DECREF(v);
  }

  void AppendNull() {
    if (bin) spans.emplace_back(nullptr, -1); else if (i64) i64->AppendNull(); else if (f64) f64->AppendNull(); else boolean->AppendNull();
  }
  // Returns "" on success, else a description of what was wrong.
  std::string Append(PyObject* v) {
    if (v == Py_None) { AppendNull(); return ""; }
    if (bin) {
      if (format == "U") {
        if (!PyUnicode_Check(v)) return std::string("returned ") + TypeName(v) + ", expected str";
        Py_ssize_t len;
        const char* s = PyUnicode_AsUTF8AndSize(v, &len);
        if (!s) {
          PyErr_Clear();
          return "returned a str that cannot be encoded as UTF-8 (lone surrogate?)";
        }
        Keep(v, s, len);
      } else {
        if (PyBytes_Check(v)) {
          Keep(v, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
        } else if (PyByteArray_Check(v)) {  // mutable: copy now
          copies.emplace_back(PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v));
          spans.emplace_back(copies.back().data(), static_cast<Py_ssize_t>(copies.back().size()));
        } else {
          return std::string("returned ") + TypeName(v) + ", expected bytes";
        }
      }
      return "";
    }
    if (i64) {
      if (!PyLong_Check(v) || PyBool_Check(v)) return std::string("returned ") + TypeName(v) + ", expected int";
      long long x = PyLong_AsLongLong(v);
      if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return "returned an int that does not fit in 64 bits";
      }
      i64->Append(x);
      return "";
    }
    if (f64) {
      if (PyFloat_Check(v)) f64->Append(PyFloat_AS_DOUBLE(v));
      else if (PyLong_Check(v) && !PyBool_Check(v)) f64->Append(PyLong_AsDouble(v));
      else return std::string("returned ") + TypeName(v) + ", expected float";
      return "";
    }
    if (!PyBool_Check(v)) return std::string("returned ") + TypeName(v) + ", expected bool";
    boolean->Append(v == Py_True);
    return "";
  }
  ArrayPtr Finish() {  // GIL held on entry and exit
    if (bin) {
      ArrayPtr out;
      {
        py::gil_scoped_release release;
        int64_t total = 0;
        for (const auto& sp : spans) total += sp.second > 0 ? sp.second : 0;
        bin->Reserve(static_cast<int64_t>(spans.size()), total);
        for (const auto& [p, len] : spans) {
          if (len < 0) bin->AppendNull(); else bin->Append(p, static_cast<size_t>(len));
        }
        out = bin->Finish();
      }
      for (PyObject* v : kept) Py_DECREF(v);
      kept.clear();
      return out;
    }
    if (i64) return i64->Finish();
    if (f64) return f64->Finish();
    return boolean->Finish();
  }
};

dflow::RowFailure MakeFailure(const PythonOpInfo& info, int64_t row, std::string message) {
  dflow::RowFailure f;
  f.row = row;
  f.node = info.node;
  f.op = info.op;
  f.field = info.field;
  f.message = std::move(message);
  return f;
}

// "TypeError: run_python(f) returned int, expected str for field "y" of flow "doc""
std::string TypeProblem(const PythonOpInfo& info, const std::string& problem) {
  return "TypeError: " + info.op + " " + problem + " for field \"" + info.field + "\" of flow \"" + info.flow + "\"";
}

// Records the pending Python exception as a row failure, unless it must stop the whole run
// (KeyboardInterrupt, SystemExit, ...), in which case it is rethrown to the pipeline.
void RecordPythonError(Level& level, int64_t row, const PythonOpInfo& info, ErrorTable& errors) {
  if (!PyErr_ExceptionMatches(PyExc_Exception)) throw py::error_already_set();
  // Keep the traceback on the exception object itself so it survives being re-raised elsewhere.
  PyObject *type, *raw, *tb;
  PyErr_Fetch(&type, &raw, &tb);
  PyErr_NormalizeException(&type, &raw, &tb);
  if (tb != nullptr) PyException_SetTraceback(raw, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  py::object value = py::reinterpret_steal<py::object>(raw);
  std::string message = py::str(value).cast<std::string>();
  dflow::RowFailure f = MakeFailure(info, row, std::string(TypeName(value.ptr())) + ": " + message);
  f.handle = errors.Put(value);
  level.Fail(std::move(f));
}

}  // namespace

PythonRowOperator::PythonRowOperator(PythonOpInfo info, py::object fn, std::string out_format,
                                     std::vector<py::object> convert, py::object build, py::object root_objects,
                                     int32_t root_node, std::shared_ptr<ErrorTable> errors)
    : info_(std::move(info)), fn_(std::move(fn)), build_(std::move(build)), root_objects_(std::move(root_objects)),
      root_node_(root_node), convert_(std::move(convert)),
      out_format_(std::move(out_format)), errors_(std::move(errors)) {}

// Destroyed by the run with the GIL held (see runtime_bindings.cc), so py::object members are safe.
PythonRowOperator::~PythonRowOperator() = default;

void PythonRowOperator::Process(Batch& batch) {
  Level& level = batch.levels.at(info_.level);
  const int64_t n = level.num_rows;
  // Everything below owns Python references, so the GIL is taken first and released last.
  py::gil_scoped_acquire gil;
  std::vector<ArgReader> readers = MakeReaders(batch, info_);
  for (size_t k = 0; k < readers.size(); ++k) {
    if (info_.args[k].level == 0 && info_.args[k].node == root_node_ && !root_objects_.is_none()) {
      // The caller's own input objects: no need to decode them again from Arrow.
      // (list, offset): this batch's inputs are list[offset : offset + rows].
      py::object found = root_objects_(batch.first_input);
      if (py::isinstance<py::tuple>(found)) {
        py::tuple t = found.cast<py::tuple>();
        py::object objects = t[0];
        Py_ssize_t offset = t[1].cast<Py_ssize_t>();
        if (PyList_Check(objects.ptr()) && PyList_GET_SIZE(objects.ptr()) >= offset + readers[k].column->length()) {
          readers[k].generic = true;
          readers[k].converted = py::reinterpret_borrow<py::list>(objects);
          readers[k].converted_offset = offset;
          continue;
        }
      }
    }
    // A converter means the logical type differs from its storage (JSON text, pickled objects, ...).
    bool has_converter = k < convert_.size() && !convert_[k].is_none();
    if (has_converter || !IsFastFormat(readers[k].column->format())) {
      if (!has_converter)
        throw std::runtime_error(info_.op + ": no converter for argument format " + readers[k].column->format());
      readers[k].generic = true;
      readers[k].converted = convert_[k](ToPyArrow(readers[k].column));
    }
  }
  const bool fast_out = !out_format_.empty();
  std::unique_ptr<ResultBuilder> builder;
  py::list results;
  if (fast_out) builder = std::make_unique<ResultBuilder>(out_format_, n);
  std::vector<PyObject*> args(readers.size());
  PyObject* fn = fn_.ptr();
  for (int64_t r = 0; r < n; ++r) {
    if ((r & 1023) == 0 && cancelled()) throw std::runtime_error("run cancelled");
    if (level.Failed(r)) {
      if (fast_out) builder->AppendNull(); else results.append(py::none());
      continue;
    }
    bool ok = true;
    size_t made = 0;
    for (; made < readers.size(); ++made) {
      args[made] = readers[made].Get(r);
      if (!args[made]) { ok = false; break; }
    }
    PyObject* res = ok ? PyObject_Vectorcall(fn, args.data(), readers.size(), nullptr) : nullptr;
    for (size_t k = 0; k < made; ++k) Py_DECREF(args[k]);
    if (res == nullptr) {
      RecordPythonError(level, r, info_, *errors_);
      if (fast_out) builder->AppendNull(); else results.append(py::none());
      continue;
    }
    if (fast_out) {
      std::string problem = builder->Append(res);
      Py_DECREF(res);
      if (!problem.empty()) {
        builder->AppendNull();
        level.Fail(MakeFailure(info_, r, TypeProblem(info_, problem)));
      }
    } else {
      results.append(py::reinterpret_steal<py::object>(res));
    }
  }
  ArrayPtr out;
  if (fast_out) {
    out = builder->Finish();
  } else {
    // Python validates and converts the values; it reports rows whose value has the wrong type.
    py::tuple built = build_(results);
    out = ImportArray(built[0]);
    for (auto item : py::list(built[1])) {
      py::tuple t = item.cast<py::tuple>();
      level.Fail(MakeFailure(info_, t[0].cast<int64_t>(), TypeProblem(info_, t[1].cast<std::string>())));
    }
  }
  level.columns[info_.node] = std::move(out);
}

PythonBatchOperator::PythonBatchOperator(PythonOpInfo info, py::object runner, std::shared_ptr<ErrorTable> errors)
    : info_(std::move(info)), runner_(std::move(runner)), errors_(std::move(errors)) {}

PythonBatchOperator::~PythonBatchOperator() = default;

void PythonBatchOperator::Process(Batch& batch) {
  Level& level = batch.levels.at(info_.level);
  struct Input {
    ArrayPtr column;
    bool ancestor;
    std::vector<int64_t> index;  // row -> ancestor row, for ancestor columns
  };
  std::vector<Input> inputs;
  for (const ArgSpec& a : info_.args) {
    if (a.node == kInputIndexArg) {
      std::vector<int64_t> roots = batch.AncestorIndex(info_.level, 0);
      dflow::PrimitiveBuilder<int64_t> b("l", static_cast<int64_t>(roots.size()));
      for (int64_t r : roots) b.Append(batch.first_input + r);
      inputs.push_back({b.Finish(), false, {}});
      continue;
    }
    bool ancestor = a.level != info_.level;
    inputs.push_back({batch.levels.at(a.level).columns.at(a.node), ancestor,
                      ancestor ? batch.AncestorIndex(info_.level, a.level) : std::vector<int64_t>()});
  }
  std::string mask(level.num_rows, '\0');
  for (int64_t r = 0; r < level.num_rows; ++r) mask[r] = level.Failed(r) ? 1 : 0;
  py::gil_scoped_acquire gil;
  py::list args;
  for (const Input& in : inputs) {
    py::object idx = py::none();
    if (in.ancestor) {
      dflow::PrimitiveBuilder<int64_t> b("l", static_cast<int64_t>(in.index.size()));
      for (int64_t i : in.index) b.Append(i);
      idx = ToPyArrow(b.Finish());
    }
    args.append(py::make_tuple(ToPyArrow(in.column), idx));
  }
  py::tuple result = runner_(args, py::bytes(mask), level.num_rows);
  ArrayPtr out = ImportArray(result[0]);
  if (out->length() != level.num_rows)
    throw std::runtime_error(info_.op + ": runner returned " + std::to_string(out->length()) + " values for " +
                             std::to_string(level.num_rows) + " rows");
  for (auto item : py::list(result[1])) {
    py::tuple t = item.cast<py::tuple>();
    dflow::RowFailure f = MakeFailure(info_, t[0].cast<int64_t>(), "");
    py::object err = t[1];
    if (py::isinstance<py::str>(err)) {
      f.message = err.cast<std::string>();
    } else {
      f.message = py::str(py::type::handle_of(err).attr("__name__")).cast<std::string>() + ": " +
                  py::str(err).cast<std::string>();
      f.handle = errors_->Put(err);
    }
    level.Fail(std::move(f));
  }
  level.columns[info_.node] = std::move(out);
}

}  // namespace dflow_py
