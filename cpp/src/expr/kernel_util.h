// Private helpers shared by the kernel families.
#pragma once
#include <string>
#include <vector>

#include "dflow/expr/kernel.h"

namespace dflow::expr {

// The result Vector of a kernel: `rows` rows of `type`, null where any of `args` is null.
inline std::shared_ptr<Vector> NullPropagatingResult(const VType& type, const std::vector<const Vector*>& args,
                                                     int64_t rows) {
  auto out = MakeVector(type, rows);
  bool any = false;
  for (const Vector* a : args) any |= a->MayHaveNulls();
  if (!any) return out;
  uint8_t* valid = out->AllocValidity(1);
  for (const Vector* a : args) {
    if (!a->MayHaveNulls()) continue;
    if (a->scalar) {
      if (!a->valid[0]) std::fill(valid, valid + rows, 0);
      continue;
    }
    for (int64_t i = 0; i < rows; ++i) valid[i] &= a->valid[i];
  }
  return out;
}

// Whether row i of a result built by NullPropagatingResult is to be computed.
inline bool Live(const Vector& out, int64_t i) { return out.valid == nullptr || out.valid[i] != 0; }

inline const Scalar& Option(const std::vector<Scalar>& options, size_t i, const std::string& function) {
  if (i >= options.size()) throw std::invalid_argument(function + ": missing option " + std::to_string(i));
  return options[i];
}
inline std::string StringOption(const std::vector<Scalar>& options, size_t i, const std::string& function) {
  const Scalar& s = Option(options, i, function);
  if (s.kind != Scalar::Kind::kString) throw std::invalid_argument(function + ": option " + std::to_string(i) + " must be a string");
  return s.s;
}
// An int option, or `fallback` when it is null.
inline int64_t IntOption(const std::vector<Scalar>& options, size_t i, const std::string& function, bool* is_null = nullptr) {
  const Scalar& s = Option(options, i, function);
  if (is_null) *is_null = s.is_null();
  if (s.is_null() && is_null) return 0;
  if (s.kind != Scalar::Kind::kInt) throw std::invalid_argument(function + ": option " + std::to_string(i) + " must be an int");
  return s.i;
}

inline void CheckArity(const std::string& name, const std::vector<VType>& args, size_t n) {
  if (args.size() != n)
    throw TypeMismatch(name + " takes " + std::to_string(n) + " argument(s), got " + std::to_string(args.size()));
}

// A literal repeated to `rows` rows, or the Vector itself (shared) when it is not a literal.
std::shared_ptr<Vector> Materialize(const Vector& v, int64_t rows);

// The rows of `parts` one after the other (all of `type`).
std::shared_ptr<Vector> Concat(const std::vector<const Vector*>& parts, const VType& type);

// Python's repr() of a float ('0.1', '1e-05', '1e+16', 'inf').
std::string FloatRepr(double x);
// `s` without leading and trailing whitespace (str.isspace()).
std::string_view StripSpace(std::string_view s);

}  // namespace dflow::expr
