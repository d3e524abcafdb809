// Entry points through which each subsystem registers its Python bindings.
#pragma once
#include <pybind11/pybind11.h>

namespace dflow_py {
void init_arrow(pybind11::module_& m);
void init_runtime(pybind11::module_& m);
void init_text(pybind11::module_& m);
void init_rows(pybind11::module_& m);
void init_expr(pybind11::module_& m);
void init_arena_prefault(pybind11::module_& m);
}  // namespace dflow_py
