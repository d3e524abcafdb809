// The _core extension: a thin shell. Each subsystem registers its own bindings.
#include <pybind11/pybind11.h>

#include "dflow/runtime/heap.h"
#include "registry.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "daft_flow native runtime (private; use the daft_flow package)";
  dflow::KeepFreedBuffersInHeap();
  dflow_py::init_arrow(m);
  dflow_py::init_runtime(m);
  dflow_py::init_text(m);
  dflow_py::init_rows(m);
  dflow_py::init_expr(m);
  dflow_py::init_arena_prefault(m);
}
