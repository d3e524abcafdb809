// Bindings for the text subsystem (tokenizer, chunkers). Thin: convert arguments with the GIL held,
// run the native code with it released, build the Python results directly with the C API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dflow/parallel.h"
#include "dflow/text/api.h"
#include "registry.h"
#include "text_py.h"

namespace py = pybind11;
using dflow::text::ChunkSpan;
using dflow::text::TokenSpan;
using dflow::text::WordPieceTokenizer;

namespace dflow_py {
namespace {

std::string_view view_of(const py::handle& s) {
  if (!PyUnicode_Check(s.ptr())) throw py::type_error(std::string("expected str, got ") + Py_TYPE(s.ptr())->tp_name);
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
  if (!p) throw py::error_already_set();
  return std::string_view(p, static_cast<size_t>(n));
}

// Views into the UTF-8 buffers of a sequence of str; `refs` keeps the objects alive while the GIL is
// released (the caller's list could be mutated by another thread meanwhile).
struct TextViews {
  std::vector<py::object> refs;
  std::vector<std::string_view> views;
  explicit TextViews(const py::sequence& texts) {
    const size_t n = py::len(texts);
    refs.reserve(n);
    views.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      py::object o = texts[i];
      views.push_back(view_of(o));
      refs.push_back(std::move(o));
    }
  }
};

// Shared int objects for token ids (created once, kept for the process): building id lists then
// costs an INCREF per id instead of an allocation. Only touched with the GIL held.
constexpr int32_t kIntCacheSize = 1 << 17;
PyObject** int_cache() {
  static PyObject** cache = [] {
    auto** c = new PyObject*[kIntCacheSize];
    for (int32_t i = 0; i < kIntCacheSize; ++i) c[i] = PyLong_FromLong(i);
    return c;
  }();
  return cache;
}

py::list int_list(const std::vector<int32_t>& v) {
  PyObject* l = PyList_New(static_cast<Py_ssize_t>(v.size()));
  if (!l) throw py::error_already_set();
  PyObject** cache = int_cache();
  for (size_t i = 0; i < v.size(); ++i) {
    const int32_t x = v[i];
    PyObject* o;
    if (x >= 0 && x < kIntCacheSize) {
      o = cache[x];
      Py_INCREF(o);
    } else {
      o = PyLong_FromLong(x);
    }
    PyList_SET_ITEM(l, i, o);
  }
  return py::reinterpret_steal<py::list>(l);
}

inline PyObject* small_int(int64_t x) {
  if (x >= 0 && x < kIntCacheSize) {
    PyObject* o = int_cache()[x];
    Py_INCREF(o);
    return o;
  }
  return PyLong_FromLongLong(x);
}

py::list span_list(const ChunkSpan* s, size_t n) {
  PyObject* l = PyList_New(static_cast<Py_ssize_t>(n));
  if (!l) throw py::error_already_set();
  for (size_t i = 0; i < n; ++i) {
    PyObject* t = PyTuple_New(2);
    if (!t) {
      Py_DECREF(l);
      throw py::error_already_set();
    }
    PyTuple_SET_ITEM(t, 0, small_int(s[i].start));
    PyTuple_SET_ITEM(t, 1, small_int(s[i].end));
    // Two ints cannot be part of a reference cycle: keep the tuple out of the cyclic GC's lists.
    PyObject_GC_UnTrack(t);
    PyList_SET_ITEM(l, i, t);
  }
  return py::reinterpret_steal<py::list>(l);
}

// Runs work(i) for i in [0, n) on the pool in the given order (longest texts first) with the GIL
// released, and sets out[i] = convert(i) with the GIL held. Conversion overlaps with native work: the
// calling thread, after each item it finishes, takes the GIL and converts every item finished so far
// (by any thread), so the other threads keep claiming items meanwhile and the Python objects are
// built while native work still runs instead of after it.
template <class Work, class Convert>
py::list run_and_convert(int64_t n, int threads, const std::vector<int64_t>& order, Work work, Convert convert) {
  // finished[s] = index of the s-th item to finish (-1 until written); `claimed` hands out the slots.
  std::unique_ptr<std::atomic<int64_t>[]> finished(new std::atomic<int64_t>[static_cast<size_t>(n)]);
  for (int64_t i = 0; i < n; ++i) finished[i].store(-1, std::memory_order_relaxed);
  std::atomic<int64_t> next{0}, claimed{0};
  std::atomic<bool> failed{false};
  py::list out(n);
  int64_t converted = 0;  // slots of `finished` converted so far; touched with the GIL held
  // With the GIL held: converts finished items; when `all`, waits (GIL released) for the rest.
  auto convert_finished = [&](bool all) {
    while (converted < n) {
      const int64_t i = finished[converted].load(std::memory_order_acquire);
      if (i < 0) {
        if (!all || failed.load(std::memory_order_relaxed)) return;
        py::gil_scoped_release wait;
        while (finished[converted].load(std::memory_order_acquire) < 0 && !failed.load(std::memory_order_relaxed))
          std::this_thread::yield();
        continue;
      }
      PyList_SET_ITEM(out.ptr(), i, convert(i).release().ptr());
      ++converted;
    }
  };
  {
    py::gil_scoped_release release;
    const std::thread::id caller = std::this_thread::get_id();
    const int lanes = std::max(1, std::min<int>(threads <= 0 ? dflow::default_threads() : threads,
                                                static_cast<int>(std::max<int64_t>(n, 1))));
    dflow::parallel_for(lanes, lanes, [&](int64_t, int64_t) {
      const bool on_caller = lanes > 1 && std::this_thread::get_id() == caller;
      try {
        for (;;) {
          if (failed.load(std::memory_order_relaxed)) break;
          const int64_t k = next.fetch_add(1, std::memory_order_relaxed);
          if (k >= n) break;
          const int64_t i = order[k];
          work(i);
          finished[claimed.fetch_add(1, std::memory_order_relaxed)].store(i, std::memory_order_release);
          if (on_caller) {
            py::gil_scoped_acquire gil;
            convert_finished(false);
          }
        }
      } catch (...) {
        failed = true;
        throw;
      }
      if (on_caller) {
        py::gil_scoped_acquire gil;
        convert_finished(true);
      }
    }, 1);
  }
  convert_finished(true);
  return out;
}

// Indices of the texts, longest first, so one big document does not run alone at the end.
std::vector<int64_t> longest_first(const std::vector<std::string_view>& views) {
  std::vector<int64_t> order(views.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return views[a].size() > views[b].size(); });
  return order;
}

template <class Opts, class Fn>
py::list chunk_many(const py::sequence& texts, const Opts& opts, int threads, Fn fn) {
  dflow::text::validate(opts);
  TextViews tv(texts);
  const int64_t n = static_cast<int64_t>(tv.views.size());
  std::vector<std::vector<ChunkSpan>> per(static_cast<size_t>(n));
  return run_and_convert(
      n, threads, longest_first(tv.views), [&](int64_t i) { per[i] = fn(tv.views[i], opts); },
      [&](int64_t i) {
        py::list l = span_list(per[i].data(), per[i].size());
        std::vector<ChunkSpan>().swap(per[i]);
        return l;
      });
}

}  // namespace

void init_text(py::module_& m) {
  static py::exception<dflow::text::UnsupportedTokenizer> unsupported(m, "UnsupportedTokenizer",
                                                                      PyExc_NotImplementedError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dflow::text::UnsupportedTokenizer& e) {
      py::set_error(unsupported, e.what());
    }
  });

  py::class_<PyTokenizer>(m, "WordPieceTokenizer")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& origin) {
            std::string_view view = data;  // valid while `data` is referenced (it is: an argument)
            std::shared_ptr<const WordPieceTokenizer> t;
            {
              py::gil_scoped_release release;
              t = WordPieceTokenizer::from_bytes(view, origin);
            }
            return PyTokenizer{std::move(t)};
          },
          py::arg("data"), py::arg("origin"))
      .def(
          "encode",
          [](const PyTokenizer& self, py::handle text, bool add_special) {
            const std::string_view s = view_of(text);
            std::vector<int32_t> ids;
            {
              py::gil_scoped_release release;
              ids.reserve(s.size() / 4 + 4);
              self.tok->encode(s, add_special, &ids);
            }
            return int_list(ids);
          },
          py::arg("text"), py::arg("add_special_tokens") = true)
      .def(
          "encode_with_offsets",
          [](const PyTokenizer& self, py::handle text, bool add_special) {
            const std::string_view s = view_of(text);
            std::vector<int32_t> ids;
            std::vector<TokenSpan> offs;
            {
              py::gil_scoped_release release;
              self.tok->encode(s, add_special, &ids, &offs);
            }
            py::list ol(offs.size());
            for (size_t i = 0; i < offs.size(); ++i) ol[i] = py::make_tuple(offs[i].start, offs[i].end);
            return py::make_tuple(int_list(ids), ol);
          },
          py::arg("text"), py::arg("add_special_tokens") = true)
      .def(
          "encode_batch",
          [](const PyTokenizer& self, const py::sequence& texts, bool add_special, int threads) {
            TextViews tv(texts);
            const int64_t n = static_cast<int64_t>(tv.views.size());
            std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
            const WordPieceTokenizer& tok = *self.tok;
            return run_and_convert(
                n, threads, longest_first(tv.views),
                [&](int64_t i) {
                  out[i].reserve(tv.views[i].size() / 3 + 4);
                  tok.encode(tv.views[i], add_special, &out[i]);
                },
                [&](int64_t i) {
                  py::list l = int_list(out[i]);
                  std::vector<int32_t>().swap(out[i]);
                  return l;
                });
          },
          py::arg("texts"), py::arg("add_special_tokens") = true, py::arg("threads") = 0)
      .def(
          "encode_batch_flat",
          [](const PyTokenizer& self, const py::sequence& texts, bool add_special, int64_t max_length,
             int threads) {
            // The ids of all texts in one int32 buffer plus n + 1 int64 offsets (an Arrow
            // large_list<int32>'s buffers): no Python int per token.
            if (max_length == 0 || max_length < -1) throw py::value_error("max_length must be positive (or -1: no limit)");
            TextViews tv(texts);
            const int64_t n = static_cast<int64_t>(tv.views.size());
            std::vector<std::vector<int32_t>> per(static_cast<size_t>(n));
            py::array_t<int64_t> offsets(n + 1);
            int64_t* off = offsets.mutable_data();
            {
              py::gil_scoped_release release;
              const WordPieceTokenizer& tok = *self.tok;
              dflow::parallel_for(n, threads, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) {
                  if (max_length > 0) tok.encode_truncated(tv.views[i], add_special, max_length, &per[i]);
                  else tok.encode(tv.views[i], add_special, &per[i]);
                }
              });
              off[0] = 0;
              for (int64_t i = 0; i < n; ++i) off[i + 1] = off[i] + static_cast<int64_t>(per[i].size());
            }
            py::array_t<int32_t> values(off[n]);
            int32_t* val = values.mutable_data();
            {
              py::gil_scoped_release release;
              for (int64_t i = 0; i < n; ++i) std::copy(per[i].begin(), per[i].end(), val + off[i]);
            }
            return py::make_tuple(offsets, values);
          },
          py::arg("texts"), py::arg("add_special_tokens") = true, py::arg("max_length") = -1, py::arg("threads") = 0)
      .def(
          "count",
          [](const PyTokenizer& self, py::handle text) {
            const std::string_view s = view_of(text);
            py::gil_scoped_release release;
            return self.tok->count(s);
          },
          py::arg("text"))
      .def(
          "count_batch",
          [](const PyTokenizer& self, const py::sequence& texts, int threads) {
            TextViews tv(texts);
            std::vector<int64_t> out(tv.views.size());
            {
              py::gil_scoped_release release;
              dflow::parallel_for(static_cast<int64_t>(out.size()), threads, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) out[i] = self.tok->count(tv.views[i]);
              });
            }
            return out;
          },
          py::arg("texts"), py::arg("threads") = 0)
      .def("token_to_id",
           [](const PyTokenizer& self, const std::string& token) -> py::object {
             const int32_t id = self.tok->token_to_id(token);
             if (id < 0) return py::none();
             return py::int_(id);
           })
      .def_property_readonly("vocab_size", [](const PyTokenizer& self) { return self.tok->vocab_size(); });

  m.def(
      "chunk_chars",
      [](const py::sequence& texts, int64_t max_chars, int64_t overlap, int threads) {
        dflow::text::CharChunkOptions o{max_chars, overlap};
        return chunk_many(texts, o, threads, [](std::string_view s, const dflow::text::CharChunkOptions& opt) {
          return dflow::text::chunk_chars(s, opt);
        });
      },
      py::arg("texts"), py::arg("max_chars"), py::arg("overlap") = 0, py::arg("threads") = 0,
      "Chunk each text by code points; returns per text a list of (start, end) str offsets.");
  m.def(
      "chunk_tokens",
      [](const py::sequence& texts, int64_t max_tokens, int64_t overlap_tokens, const PyTokenizer& tok,
         int threads) {
        dflow::text::TokenChunkOptions o{max_tokens, overlap_tokens, tok.tok.get()};
        return chunk_many(texts, o, threads, [](std::string_view s, const dflow::text::TokenChunkOptions& opt) {
          return dflow::text::chunk_tokens(s, opt);
        });
      },
      py::arg("texts"), py::arg("max_tokens"), py::arg("overlap_tokens"), py::arg("tokenizer"),
      py::arg("threads") = 0,
      "Chunk each text by WordPiece tokens; returns per text a list of (start, end) str offsets.");
}

}  // namespace dflow_py
