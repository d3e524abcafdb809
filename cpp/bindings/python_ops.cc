#include "python_ops.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <unordered_map>

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
  // Values the converter could not make (a pickled object whose class fails to unpickle): row of
  // the argument's own level -> the exception. Rows reading them fail with it.
  std::unordered_map<int64_t, py::object> unreadable;

  int64_t Row(int64_t r) const { return index.empty() ? r : index[r]; }
  // The exception row r's argument could not be read with, or nullptr.
  PyObject* Unreadable(int64_t r) const {
    if (unreadable.empty()) return nullptr;
    auto it = unreadable.find(Row(r));
    return it == unreadable.end() ? nullptr : it->second.ptr();
  }

  // New reference, or nullptr with a Python error set.
  PyObject* Get(int64_t r) {
    int64_t row = Row(r);
    if (!index.empty() && row == cached_row) {
      Py_INCREF(cached);
      return cached;
    }
    PyObject* v;
    if (generic && converted_offset + row < PyList_GET_SIZE(converted.ptr())) {
      v = PyList_GET_ITEM(converted.ptr(), converted_offset + row);
      Py_INCREF(v);
    } else {
      // Also the caller's own input list when a function shrank it while the run reads it: the
      // batch's Arrow column holds the same values.
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

// A Python str as UTF-8, lone surrogates escaped (a message must never fail to convert).
std::string Utf8(py::handle text) {
  PyObject* encoded = PyUnicode_Check(text.ptr()) ? PyUnicode_AsEncodedString(text.ptr(), "utf-8", "backslashreplace")
                                                  : nullptr;
  if (encoded == nullptr) {
    PyErr_Clear();
    return std::string("<") + TypeName(text.ptr()) + ">";
  }
  std::string out(PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
  Py_DECREF(encoded);
  return out;
}

// Python helpers that are called rarely (on errors and on values without a fast conversion).
// Leaked on purpose: they must outlive every run, and no destructor may run after finalization.
py::object Helper(const char* module, const char* name) {
  static auto* cache = new std::unordered_map<std::string, py::object>();
  std::string key = std::string(module) + ":" + name;
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, py::module_::import(module).attr(name)).first;
  return it->second;
}
py::object UserErrors(const char* name) { return Helper("daft_flow.user_errors", name); }

// A result the fast checks rejected may still be a value of the field's type in another form (a
// numpy scalar, a memoryview): types.coerce_scalar, the one home of that rule, converts it or
// returns None. New reference; nullptr when the value is not acceptable.
PyObject* Coerce(PyObject* v, const std::string& format) {
  py::object c = Helper("daft_flow.types", "coerce_scalar")(py::handle(v), format);
  return c.is_none() ? nullptr : c.release().ptr();
}

// Appends a Python result to the builder for `format`; returns an error message on a type mismatch.
struct ResultBuilder {
  std::string format;
  std::unique_ptr<dflow::BinaryBuilder> bin;
  std::unique_ptr<dflow::PrimitiveBuilder<int64_t>> i64;
  std::unique_ptr<dflow::PrimitiveBuilder<double>> f64;
  std::unique_ptr<dflow::BoolBuilder> boolean;

  bool utf8;  // str results (format "U"): decided once, not compared per row

  ResultBuilder(const std::string& f, int64_t n) : format(f), utf8(f == "U") {
    if (f == "U" || f == "Z") {
      bin = std::make_unique<dflow::BinaryBuilder>(f == "U", n);
      spans.reserve(static_cast<size_t>(n));
    }
    else if (f == "l") i64 = std::make_unique<dflow::PrimitiveBuilder<int64_t>>("l", n);
    else if (f == "g") f64 = std::make_unique<dflow::PrimitiveBuilder<double>>("g", n);
    else if (f == "b") boolean = std::make_unique<dflow::BoolBuilder>();
    else throw std::invalid_argument("no fast builder for format " + f);
  }
  // str/bytes results are immutable: remember where their bytes are (holding a reference) and copy
  // them all in Finish with the GIL released. Short ones are copied at once instead, into chunks of
  // our own: their bytes are in cache right after the call, and a reference would cost an incref
  // now and a decref (a cache miss per value, GIL held) after the copy.
  void Keep(PyObject* v, const char* data, Py_ssize_t len) {
    if (len <= kCopyAtOnce) {
      if (chunks.empty() || chunk_used + static_cast<size_t>(len) > kChunkBytes) {
        chunks.emplace_back(new char[kChunkBytes]);
        chunk_used = 0;
      }
      char* to = chunks.back().get() + chunk_used;
      std::memcpy(to, data, static_cast<size_t>(len));
      chunk_used += static_cast<size_t>(len);
      spans.emplace_back(to, len);
      return;
    }
    Py_INCREF(v);
    kept.push_back(v);
    spans.emplace_back(data, len);
  }
  static constexpr Py_ssize_t kCopyAtOnce = 64;
  static constexpr size_t kChunkBytes = 64 << 10;
  std::vector<std::pair<const char*, Py_ssize_t>> spans;
  std::vector<PyObject*> kept;
  std::vector<std::unique_ptr<char[]>> chunks;
  size_t chunk_used = 0;
  std::deque<std::string> copies;
  // Destroyed inside Process, where the GIL is held (also when a cancelled run unwinds).
  ~ResultBuilder() {
    for (PyObject* v : kept) Py_DECREF(v);
  }

  void AppendNull() {
    if (bin) spans.emplace_back(nullptr, -1); else if (i64) i64->AppendNull(); else if (f64) f64->AppendNull(); else boolean->AppendNull();
  }
  bool IsFast(PyObject* v) const {
    if (bin) return utf8 ? PyUnicode_Check(v) : PyBytes_Check(v) || PyByteArray_Check(v);
    if (i64) return PyLong_Check(v) && !PyBool_Check(v);
    if (f64) return PyFloat_Check(v) || (PyLong_Check(v) && !PyBool_Check(v));
    return PyBool_Check(v);
  }
  // Appends `v`; on a type mismatch appends nothing, sets `problem` and returns false. (No string
  // is made on the way to success: this runs once per row.)
  bool Append(PyObject* v, std::string* problem) {
    if (v == Py_None) {
      AppendNull();
      return true;
    }
    if (!IsFast(v)) {
      PyObject* c = Coerce(v, format);
      if (c == nullptr || !IsFast(c)) {
        Py_XDECREF(c);
        const char* expected = format == "U" ? "str" : format == "Z" ? "bytes" : format == "l" ? "int"
                             : format == "g" ? "float" : "bool";
        *problem = Utf8(Helper("daft_flow.types", "mismatch")(py::handle(v), expected));
        return false;
      }
      bool ok = Append(c, problem);  // str/bytes are kept alive by Keep's own reference
      Py_DECREF(c);
      return ok;
    }
    if (bin) {
      if (utf8) {
        Py_ssize_t len;
        const char* s = Utf8Of(v, &len);
        if (!s) {
          PyErr_Clear();
          *problem = "returned a str that cannot be encoded as UTF-8 (lone surrogate?)";
          return false;
        }
        Keep(v, s, len);
      } else if (PyBytes_Check(v)) {
        Keep(v, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
      } else {  // bytearray, mutable: copy now
        copies.emplace_back(PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v));
        spans.emplace_back(copies.back().data(), static_cast<Py_ssize_t>(copies.back().size()));
      }
      return true;
    }
    if (i64) {
      long long x = PyLong_AsLongLong(v);
      if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        *problem = "returned an int that does not fit in 64 bits";
        return false;
      }
      i64->Append(x);
      return true;
    }
    if (f64) {
      double x = PyFloat_Check(v) ? PyFloat_AS_DOUBLE(v) : PyLong_AsDouble(v);
      if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        *problem = "returned an int too large for a float";
        return false;
      }
      f64->Append(x);
      return true;
    }
    boolean->Append(v == Py_True);
    return true;
  }
  ArrayPtr Finish() {  // GIL held on entry and exit
    if (bin) {
      ArrayPtr out = WithoutGil([&] {
        int64_t total = 0;
        for (const auto& sp : spans) total += sp.second > 0 ? sp.second : 0;
        bin->Reserve(static_cast<int64_t>(spans.size()), total);
        for (const auto& [p, len] : spans) {
          if (len < 0) bin->AppendNull(); else bin->Append(p, static_cast<size_t>(len));
        }
        return bin->Finish();
      });
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

// Records `error` (an exception object) as the failure of `row`, keeping the object (and its
// traceback) for the caller. The message is built without trusting the object: its __str__ may
// raise, return a non-str or hold lone surrogates.
void FailRow(Level& level, int64_t row, const PythonOpInfo& info, ErrorTable& errors, py::handle error) {
  py::object described = UserErrors("describe")(error);
  dflow::RowFailure f = MakeFailure(info, row, Utf8(described));
  f.handle = errors.Put(py::reinterpret_borrow<py::object>(error));
  level.Fail(std::move(f));
}

// Records the pending Python exception as a row failure, unless it must stop the whole run
// (KeyboardInterrupt, SystemExit, ...), in which case it is rethrown to the pipeline.
void RecordPythonError(Level& level, int64_t row, const PythonOpInfo& info, ErrorTable& errors) {
  // Keep the traceback on the exception object itself so it survives being re-raised elsewhere.
  PyObject *type, *raw, *tb;
  PyErr_Fetch(&type, &raw, &tb);
  PyErr_NormalizeException(&type, &raw, &tb);
  if (tb != nullptr) PyException_SetTraceback(raw, tb);
  py::object value = py::reinterpret_borrow<py::object>(raw);
  if (UserErrors("stops_run")(value).cast<bool>()) {
    PyErr_Restore(type, raw, tb);
    throw py::error_already_set();
  }
  Py_XDECREF(type);
  Py_XDECREF(raw);
  Py_XDECREF(tb);
  FailRow(level, row, info, errors, UserErrors("row_error")(value, info.op));
}

// Hands the GIL over now and then while a row loop holds it. A function that runs no bytecode
// (a builtin such as str.upper, a C extension) never lets the interpreter switch threads, so the
// main thread could not even check for Ctrl-C until the whole batch was done.
class GilYield {
 public:
  // Called once per row. Reads the clock about every half millisecond whatever a row costs
  // (every row for slow functions, every few thousand for fast ones) and lets other threads take
  // the GIL once it has been held for CPython's switch interval.
  void MaybeYield() {
    if (++count_ < stride_) return;
    count_ = 0;
    auto now = std::chrono::steady_clock::now();
    stride_ = now - last_check_ < kCheckEvery ? std::min<int64_t>(stride_ * 2, 4096) : std::max<int64_t>(stride_ / 2, 1);
    last_check_ = now;
    if (now - last_yield_ < kSwitchInterval) return;
    PyEval_RestoreThread(PyEval_SaveThread());  // taken back in ordinary code: see gil.h
    last_yield_ = std::chrono::steady_clock::now();
  }

 private:
  static constexpr std::chrono::microseconds kCheckEvery{500};
  static constexpr std::chrono::milliseconds kSwitchInterval{5};
  int64_t count_ = 0, stride_ = 1;
  std::chrono::steady_clock::time_point last_check_ = std::chrono::steady_clock::now(), last_yield_ = last_check_;
};

}  // namespace

CurrentRow& CurrentRowOfThread() {
  thread_local CurrentRow row;
  return row;
}

PythonRowOperator::PythonRowOperator(PythonOpInfo info, py::object fn, std::string out_format,
                                     std::vector<py::object> convert, py::object build, py::object root_objects,
                                     int32_t root_node, std::shared_ptr<ErrorTable> errors, bool track_rows,
                                     bool keep_results, int64_t keep_results_max_bytes)
    : info_(std::move(info)), fn_(std::move(fn)), build_(std::move(build)), root_objects_(std::move(root_objects)),
      root_node_(root_node), convert_(std::move(convert)),
      out_format_(std::move(out_format)), errors_(std::move(errors)), track_rows_(track_rows),
      keep_results_(keep_results), keep_results_max_bytes_(keep_results_max_bytes) {}

// An operator is destroyed by the run (GIL held) or, when Cancel left a thread busy in user code,
// by that thread once it is done (no GIL): Python references are dropped with the GIL taken here.
// During interpreter finalization they are leaked instead, as taking the GIL would end the thread.
static void WithGilUnlessFinalizing(const std::function<void()>& drop, const std::function<void()>& leak) {
  if (InterpreterFinalizing()) {
    leak();
    return;
  }
  GilHold gil;
  drop();
}

PythonRowOperator::~PythonRowOperator() {
  auto each = [this](bool keep) {
    for (py::object* o : {&fn_, &build_, &root_objects_}) {
      if (keep) o->release(); else *o = py::object();
    }
    for (py::object& o : convert_) {
      if (keep) o.release(); else o = py::object();
    }
    if (keep) new std::shared_ptr<ErrorTable>(std::move(errors_)); else errors_.reset();
  };
  WithGilUnlessFinalizing([&] { each(false); }, [&] { each(true); });
}

namespace {

// About the memory a kept result object holds (its header, and its text or bytes).
int64_t KeptObjectBytes(PyObject* v) {
  int64_t bytes = static_cast<int64_t>(Py_TYPE(v)->tp_basicsize);
  if (PyUnicode_Check(v)) bytes += PyUnicode_GET_LENGTH(v) * PyUnicode_KIND(v);
  else if (PyBytes_Check(v)) bytes += PyBytes_GET_SIZE(v);
  return bytes;
}

// A Python object owned by a batch (Level::host_values). A batch may be destroyed on a runtime
// thread, or while a cancelled run is torn down: the reference is dropped with the GIL taken then,
// and leaked during interpreter finalization (as the operators' own references are).
std::shared_ptr<void> HostObjects(PyObject* owned) {
  return std::shared_ptr<void>(owned, [](void* p) {
    WithGilUnlessFinalizing([p] { Py_DECREF(static_cast<PyObject*>(p)); }, [] {});
  });
}

}  // namespace

py::object BatchResultObjects(const Batch& batch, int32_t level, int32_t node) {
  const Level& l = batch.levels.at(level);
  auto kept = l.host_values.find(node);
  auto column = l.columns.find(node);
  if (kept == l.host_values.end() || column == l.columns.end() || kept->second.column != column->second)
    return py::none();
  return py::reinterpret_borrow<py::object>(static_cast<PyObject*>(kept->second.values.get()));
}

void PythonRowOperator::Process(Batch& batch) {
  Level& level = batch.levels.at(info_.level);
  const int64_t n = level.num_rows;
  // Everything below owns Python references, so the GIL is taken first and released last.
  GilHold gil;
  std::vector<ArgReader> readers = MakeReaders(batch, info_);
  for (size_t k = 0; k < readers.size(); ++k) {
    // (Not for retry batches: the caller's objects are kept per batch of inputs.)
    if (info_.args[k].level == 0 && info_.args[k].node == root_node_ && !root_objects_.is_none() &&
        batch.tag == 0) {
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
      // (values, [(index, exception), ...]): a value that cannot be read fails its rows only.
      py::tuple converted = convert_[k](ToPyArrow(readers[k].column));
      readers[k].converted = converted[0];
      for (auto item : py::list(converted[1])) {
        py::tuple t = item.cast<py::tuple>();
        readers[k].unreadable[t[0].cast<int64_t>()] = py::reinterpret_borrow<py::object>(t[1]);
      }
    }
  }
  const bool fast_out = !out_format_.empty();
  std::unique_ptr<ResultBuilder> builder;
  py::list results;
  if (fast_out) builder = std::make_unique<ResultBuilder>(out_format_, n);
  // The result objects as returned (None where no value was stored), when kept for the rows.
  PyObject* kept = fast_out && keep_results_ ? PyList_New(static_cast<Py_ssize_t>(n)) : nullptr;
  if (fast_out && keep_results_ && !kept) throw py::error_already_set();
  py::object kept_owner = py::reinterpret_steal<py::object>(kept);  // freed if anything below throws
  // Never tracked by the collector: only the batch refers to it, so it can be in no reference
  // cycle, and a young-generation collection (the rows' dicts start many) need not walk it.
  if (kept) PyObject_GC_UnTrack(kept);
  int64_t kept_bytes = kept ? 8 * n : 0;
  auto keep = [&](int64_t r, PyObject* v) {
    if (!kept) return;
    Py_INCREF(v);
    PyList_SET_ITEM(kept, static_cast<Py_ssize_t>(r), v);
  };
  std::vector<PyObject*> args(readers.size());
  PyObject* fn = fn_.ptr();
  bool any_unreadable = false;
  for (const ArgReader& reader : readers) any_unreadable = any_unreadable || !reader.unreadable.empty();
  GilYield yield;
  const std::vector<uint64_t>* row_ids = nullptr;
  std::vector<int64_t> to_root;
  if (track_rows_) {
    row_ids = &batch.RowIds(info_.level);
    to_root = batch.AncestorIndex(info_.level, 0);
  }
  struct ClearCurrent {
    ~ClearCurrent() { CurrentRowOfThread().input = -1; }
  } clear_current;
  for (int64_t r = 0; r < n; ++r) {
    // Every row: a cancelled run (Ctrl-C, an error elsewhere) stops after the row in progress.
    if (cancelled()) throw std::runtime_error("run cancelled");
    yield.MaybeYield();
    if (any_unreadable && !level.Failed(r)) {
      for (const ArgReader& reader : readers) {
        if (PyObject* error = reader.Unreadable(r)) {
          FailRow(level, r, info_, *errors_, error);
          break;
        }
      }
    }
    if (level.Failed(r)) {
      if (fast_out) builder->AppendNull(); else results.append(py::none());
      keep(r, Py_None);
      continue;
    }
    bool ok = true;
    size_t made = 0;
    for (; made < readers.size(); ++made) {
      args[made] = readers[made].Get(r);
      if (!args[made]) { ok = false; break; }
    }
    if (track_rows_) CurrentRowOfThread() = {(*row_ids)[r], batch.first_input + to_root[r]};
    PyObject* res = ok ? PyObject_Vectorcall(fn, args.data(), readers.size(), nullptr) : nullptr;
    for (size_t k = 0; k < made; ++k) Py_DECREF(args[k]);
    if (res == nullptr) {
      RecordPythonError(level, r, info_, *errors_);
      if (fast_out) builder->AppendNull(); else results.append(py::none());
      keep(r, Py_None);
      continue;
    }
    if (fast_out) {
      std::string problem;
      bool ok = builder->Append(res, &problem);
      if (kept) {
        // A result that is not one of the arguments is kept alive by the list alone.
        bool argument = false;
        for (size_t k = 0; k < made && !argument; ++k) argument = args[k] == res;
        if (ok && !argument) kept_bytes += KeptObjectBytes(res);
        keep(r, ok ? res : Py_None);
        if (keep_results_max_bytes_ >= 0 && kept_bytes > keep_results_max_bytes_) {
          kept_owner = py::object();  // more than the consumer holds at a time: decoded instead
          kept = nullptr;
        }
      }
      Py_DECREF(res);
      if (!ok) {
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
    if (kept) level.host_values[info_.node] = {out, HostObjects(kept_owner.release().ptr()), kept_bytes};
  } else {
    // Python validates and converts the values; it reports rows whose value has the wrong type.
    py::tuple built = build_(results);
    out = ImportArray(built[0]);
    for (auto item : py::list(built[1])) {
      py::tuple t = item.cast<py::tuple>();
      level.Fail(MakeFailure(info_, t[0].cast<int64_t>(), TypeProblem(info_, Utf8(t[1]))));
    }
  }
  level.columns[info_.node] = std::move(out);
}

PythonBatchOperator::PythonBatchOperator(PythonOpInfo info, py::object runner, std::shared_ptr<ErrorTable> errors)
    : info_(std::move(info)), runner_(std::move(runner)), errors_(std::move(errors)) {}

PythonBatchOperator::~PythonBatchOperator() {
  WithGilUnlessFinalizing(
      [this] {
        runner_ = py::object();
        errors_.reset();
      },
      [this] {
        runner_.release();
        new std::shared_ptr<ErrorTable>(std::move(errors_));
      });
}

void PythonBatchOperator::Process(Batch& batch) {
  Level& level = batch.levels.at(info_.level);
  struct Input {
    ArrayPtr column;
    bool ancestor;
    std::vector<int64_t> index;  // row -> ancestor row, for ancestor columns
  };
  std::vector<Input> inputs;
  for (const ArgSpec& a : info_.args) {
    if (a.node == kBatchTagArg) {
      dflow::PrimitiveBuilder<int64_t> b("l", level.num_rows);
      for (int64_t r = 0; r < level.num_rows; ++r) b.Append(batch.tag);
      inputs.push_back({b.Finish(), false, {}});
      continue;
    }
    if (a.node == kInputIndexArg) {
      std::vector<int64_t> roots = batch.AncestorIndex(info_.level, 0);
      dflow::PrimitiveBuilder<int64_t> b("l", static_cast<int64_t>(roots.size()));
      for (int64_t r : roots) b.Append(batch.first_input + r);
      inputs.push_back({b.Finish(), false, {}});
      continue;
    }
    if (a.node == kRowIdArg) {
      const std::vector<uint64_t>& ids = batch.RowIds(info_.level);
      dflow::PrimitiveBuilder<uint64_t> b("L", static_cast<int64_t>(ids.size()));
      for (uint64_t id : ids) b.Append(id);
      inputs.push_back({b.Finish(), false, {}});
      continue;
    }
    bool ancestor = a.level != info_.level;
    inputs.push_back({batch.levels.at(a.level).columns.at(a.node), ancestor,
                      ancestor ? batch.AncestorIndex(info_.level, a.level) : std::vector<int64_t>()});
  }
  std::string mask(level.num_rows, '\0');
  for (int64_t r = 0; r < level.num_rows; ++r) mask[r] = level.Failed(r) ? 1 : 0;
  GilHold gil;
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
  // A failure is an exception object (kept, with its traceback) or a type problem: the same
  // TypeError message as the row-wise path, whichever runner found it.
  for (auto item : py::list(result[1])) {
    py::tuple t = item.cast<py::tuple>();
    int64_t row = t[0].cast<int64_t>();
    py::object err = t[1];
    if (py::isinstance<py::str>(err)) level.Fail(MakeFailure(info_, row, TypeProblem(info_, Utf8(err))));
    else FailRow(level, row, info_, *errors_, err);
  }
  level.columns[info_.node] = std::move(out);
}

PolicyOperator::PolicyOperator(py::object resolver, std::vector<dflow::LevelShape> shape,
                               std::shared_ptr<ErrorTable> errors)
    : resolver_(std::move(resolver)), shape_(std::move(shape)), errors_(std::move(errors)) {}

PolicyOperator::~PolicyOperator() {
  WithGilUnlessFinalizing(
      [this] {
        resolver_ = py::object();
        errors_.reset();
      },
      [this] {
        resolver_.release();
        new std::shared_ptr<ErrorTable>(std::move(errors_));
      });
}

void PolicyOperator::Process(Batch& batch) {
  bool any = false;
  for (const Level& l : batch.levels) any = any || !l.failures.empty();
  if (!any) return;  // the common case costs no GIL
  std::vector<dflow::RetryRequest> requests;
  {
    GilHold gil;
    py::list failures;
    for (const Level& l : batch.levels) {
      py::list entries;
      for (const dflow::RowFailure& f : l.failures)
        entries.append(py::make_tuple(f.row, f.node, f.op, f.field, f.message,
                                      f.handle >= 0 ? errors_->Peek(f.handle) : py::none()));
      failures.append(entries);
    }
    std::shared_ptr<Batch> lent(&batch, [](Batch*) {});
    py::object view = py::cast(PyBatch{lent});
    py::tuple actions = resolver_(view, failures);
    view = py::object();
    if (lent.use_count() != 1) throw std::logic_error("the policy resolver kept the batch it was lent");
    for (auto item : py::list(actions[0])) {  // fail_parent: parents failed by their children
      py::tuple t = item.cast<py::tuple>();
      PythonOpInfo info{-1, t[0].cast<int32_t>(), {}, t[2].cast<std::string>(), t[3].cast<std::string>(), ""};
      FailRow(batch.levels.at(info.level), t[1].cast<int64_t>(), info, *errors_, t[4]);
    }
    for (auto item : py::list(actions[1])) {
      py::tuple t = item.cast<py::tuple>();
      auto delay = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(std::max(0.0, t[2].cast<double>())));
      requests.push_back({t[0].cast<int32_t>(), t[1].cast<int64_t>(), delay});
    }
    for (auto item : py::list(actions[2])) {
      py::tuple t = item.cast<py::tuple>();
      int64_t row = t[1].cast<int64_t>();
      for (dflow::RowFailure& f : batch.levels.at(t[0].cast<int32_t>()).failures)
        if (f.row == row) f.dead_lettered = true;
    }
  }
  if (!requests.empty()) {
    std::vector<dflow::RowFailure> removed = dflow::SpawnRetries(batch, requests, shape_);
    GilHold gil;
    for (const dflow::RowFailure& f : removed)
      if (f.handle >= 0) errors_->Take(f.handle);  // dropped: the row runs again
  }
  dflow::PropagateDead(batch);
}

}  // namespace dflow_py
