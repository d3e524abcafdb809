// The GIL on the runtime's own threads (stages and the source).
//
// A thread that Pipeline::Cancel left behind (busy in user code) may still be inside Python when
// the interpreter finalizes. CPython then ends it (pthread_exit) the moment it tries to take the
// GIL back, unwinding through our frames. So, on these threads:
// - the GIL is never taken back in a destructor (a destructor cannot unwind: the process would
//   abort), see WithoutGil;
// - a thread being ended gives nothing back to the interpreter (another thread is finalizing it),
//   see GilHold.
#pragma once
#include <pybind11/pybind11.h>

#include <optional>
#include <type_traits>
#include <utility>

namespace dflow_py {

inline bool InterpreterFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// Holds the GIL for a scope, like py::gil_scoped_acquire, except while CPython is ending the
// thread during finalization: releasing then would reset the interpreter's current thread state
// under the finalizing thread.
class GilHold {
 public:
  GilHold() : state_(PyGILState_Ensure()) {}
  ~GilHold() {
    if (InterpreterFinalizing()) return;
    PyGILState_Release(state_);
  }
  GilHold(const GilHold&) = delete;
  GilHold& operator=(const GilHold&) = delete;

 private:
  PyGILState_STATE state_;
};

// Runs `f` (pure C++) with the GIL released and takes it back in ordinary code (outside any
// handler, so CPython ending the thread there unwinds cleanly).
template <typename F>
auto WithoutGil(F&& f) -> decltype(f()) {
  using Result = decltype(f());
  PyThreadState* saved = PyEval_SaveThread();
  if constexpr (std::is_void_v<Result>) {
    try {
      f();
    } catch (...) {
      PyEval_RestoreThread(saved);
      throw;
    }
    PyEval_RestoreThread(saved);
  } else {
    std::optional<Result> result;
    try {
      result.emplace(f());
    } catch (...) {
      PyEval_RestoreThread(saved);
      throw;
    }
    PyEval_RestoreThread(saved);
    return std::move(*result);
  }
}

}  // namespace dflow_py
