// Bindings for the text subsystem (chunker, tokenizer).
#include "registry.h"

namespace dflow_py {
void init_text(pybind11::module_& m) {}
}  // namespace dflow_py
