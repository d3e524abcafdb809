// Kernels and the registry that finds them by name.
//
// As in Arrow's compute registry, a function is registered once under its name ("add",
// "str.lower", "json.get") with a binder that checks the argument types and options and returns
// the executable kernel for them (an overload per type combination, a compiled regex, a parsed
// JSON path). Binding happens once per program; executing runs once per chunk.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dflow/expr/vector.h"

namespace dflow::expr {

// A literal operand or kernel option.
struct Scalar {
  enum class Kind : uint8_t { kNull, kBool, kInt, kFloat, kString, kFloatList };
  Kind kind = Kind::kNull;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<float> floats;

  static Scalar Null() { return {}; }
  static Scalar Bool(bool v) { Scalar s; s.kind = Kind::kBool; s.b = v; return s; }
  static Scalar Int(int64_t v) { Scalar s; s.kind = Kind::kInt; s.i = v; return s; }
  static Scalar Float(double v) { Scalar s; s.kind = Kind::kFloat; s.f = v; return s; }
  static Scalar String(std::string v) { Scalar s; s.kind = Kind::kString; s.s = std::move(v); return s; }
  static Scalar FloatList(std::vector<float> v) { Scalar s; s.kind = Kind::kFloatList; s.floats = std::move(v); return s; }
  bool is_null() const { return kind == Kind::kNull; }
  std::string ToString() const;
};

// A literal as a one-row Vector of `type` (the planner gives literals the type they are used as).
std::shared_ptr<Vector> ScalarVector(const Scalar& value, const VType& type);

// Row-level problems found while executing (a division by zero, an int that overflows, a value
// that is not JSON): the row gets a null and the run fails it with this message.
class RowErrors {
 public:
  // `message` starts with the Python exception type it maps to ("ZeroDivisionError: ...").
  void Fail(int64_t row, std::string message) { errors_.emplace_back(row, std::move(message)); }
  const std::vector<std::pair<int64_t, std::string>>& errors() const { return errors_; }
  bool empty() const { return errors_.empty(); }
  void Clear() { errors_.clear(); }

 private:
  std::vector<std::pair<int64_t, std::string>> errors_;
};

// One execution: `args` hold `rows` rows each (or are literals); the kernel returns its result
// (null where an argument is null, unless the function says otherwise) and reports row errors
// (row = index within `rows`), setting those rows null.
struct KernelArgs {
  const std::vector<const Vector*>& args;
  int64_t rows;
  RowErrors* errors;
};
using KernelExec = std::function<std::shared_ptr<Vector>(const KernelArgs&)>;

struct BoundKernel {
  VType out;
  KernelExec exec;
};

// Argument types that no overload of a function accepts.
class TypeMismatch : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Checks argument types and options; throws TypeMismatch (argument types) or
// std::invalid_argument (a bad option: an invalid regex, a malformed JSON path).
using KernelBinder = std::function<BoundKernel(const std::vector<VType>& args, const std::vector<Scalar>& options)>;

class KernelRegistry {
 public:
  // The process-wide registry with every built-in kernel.
  static const KernelRegistry& Global();

  void Add(const std::string& name, KernelBinder binder);
  bool Has(const std::string& name) const { return binders_.count(name) != 0; }
  // Binds `name` for these argument types and options; throws as the binder does, and
  // std::invalid_argument for an unknown name.
  BoundKernel Bind(const std::string& name, const std::vector<VType>& args, const std::vector<Scalar>& options) const;

 private:
  std::map<std::string, KernelBinder> binders_;
};

// Registration, one function per kernel family (called by KernelRegistry::Global).
void RegisterArithmeticKernels(KernelRegistry& registry);
void RegisterLogicKernels(KernelRegistry& registry);
void RegisterCastKernels(KernelRegistry& registry);
void RegisterStringKernels(KernelRegistry& registry);
void RegisterRegexKernels(KernelRegistry& registry);
void RegisterJsonKernels(KernelRegistry& registry);
void RegisterListKernels(KernelRegistry& registry);

// Throws TypeMismatch naming the function, the argument types and what it expected.
[[noreturn]] void ThrowSignature(const std::string& name, const std::vector<VType>& args, const std::string& expected);

}  // namespace dflow::expr
