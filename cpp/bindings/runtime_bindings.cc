#include "registry.h"
namespace dflow_py {
void init_runtime(pybind11::module_& m) {}
}  // namespace dflow_py
