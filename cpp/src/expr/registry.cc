#include <stdexcept>

#include "dflow/expr/kernel.h"

namespace dflow::expr {

const KernelRegistry& KernelRegistry::Global() {
  // Registration is explicit (not static initialisers): a static library drops objects nothing
  // references, and with them any self-registering kernels.
  static const KernelRegistry* registry = [] {
    auto* r = new KernelRegistry();
    RegisterArithmeticKernels(*r);
    RegisterLogicKernels(*r);
    RegisterCastKernels(*r);
    RegisterStringKernels(*r);
    RegisterRegexKernels(*r);
    RegisterJsonKernels(*r);
    RegisterListKernels(*r);
    return r;
  }();
  return *registry;
}

void KernelRegistry::Add(const std::string& name, KernelBinder binder) {
  if (!binders_.emplace(name, std::move(binder)).second)
    throw std::logic_error("kernel " + name + " is registered twice");
}

BoundKernel KernelRegistry::Bind(const std::string& name, const std::vector<VType>& args,
                                 const std::vector<Scalar>& options) const {
  auto it = binders_.find(name);
  if (it == binders_.end()) throw std::invalid_argument("no expression kernel named '" + name + "'");
  return it->second(args, options);
}

void ThrowSignature(const std::string& name, const std::vector<VType>& args, const std::string& expected) {
  std::string got;
  for (size_t i = 0; i < args.size(); ++i) got += (i ? ", " : "") + args[i].ToString();
  throw TypeMismatch(name + "(" + got + "): " + expected);
}

}  // namespace dflow::expr
