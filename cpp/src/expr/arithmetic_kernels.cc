// + - * / // % and unary minus, with Python's semantics: // and % floor towards negative infinity,
// / of two ints is a float, division by zero fails the row (ZeroDivisionError) as it does in
// Python, and an int result outside int64 fails the row (OverflowError) rather than wrapping.
// Also ==, !=, <, <=, >, >= (ints and floats compare exactly, strings by code point).
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "kernel_util.h"

namespace dflow::expr {
namespace {

enum class Arith { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod };

const char* ZeroMessage(Arith op, bool ints) {
  switch (op) {
    case Arith::kDiv: return ints ? "ZeroDivisionError: division by zero" : "ZeroDivisionError: float division by zero";
    case Arith::kFloorDiv:
      return ints ? "ZeroDivisionError: integer division or modulo by zero" : "ZeroDivisionError: float floor division by zero";
    default: return ints ? "ZeroDivisionError: integer division or modulo by zero" : "ZeroDivisionError: float modulo";
  }
}

// CPython's float floor division and modulo (floatobject.c, _float_div_mod).
void FloatDivMod(double vx, double wx, double* floordiv, double* mod) {
  *mod = std::fmod(vx, wx);
  double div = (vx - *mod) / wx;
  if (*mod != 0.0) {
    if ((wx < 0) != (*mod < 0)) {
      *mod += wx;
      div -= 1.0;
    }
  } else {
    *mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    *floordiv = std::floor(div);
    if (div - *floordiv > 0.5) *floordiv += 1.0;
  } else {
    *floordiv = std::copysign(0.0, vx / wx);
  }
}

// Python's int / int: exact operands, one rounding (long double holds any int64 exactly).
double TrueDivide(int64_t a, int64_t b) {
  constexpr int64_t kExact = int64_t(1) << 53;
  if (a > -kExact && a < kExact && b > -kExact && b < kExact) return static_cast<double>(a) / static_cast<double>(b);
  return static_cast<double>(static_cast<long double>(a) / static_cast<long double>(b));
}

// One loop per operator (the operator is a template argument, not a switch per row) reading
// operands through a stride (0 for a literal).
template <Arith kOp>
std::shared_ptr<Vector> IntArithRows(const KernelArgs& k) {
  const Vector& a = *k.args[0];
  const Vector& b = *k.args[1];
  constexpr bool kToFloat = kOp == Arith::kDiv;
  auto out = NullPropagatingResult(kToFloat ? VType::Float64() : VType::Int64(), k.args, k.rows);
  int64_t* ri = kToFloat ? nullptr : out->AllocValues<int64_t>();
  double* rf = kToFloat ? out->AllocValues<double>() : nullptr;
  const int64_t* av = static_cast<const int64_t*>(a.values);
  const int64_t* bv = static_cast<const int64_t*>(b.values);
  const int64_t sa = a.scalar ? 0 : 1, sb = b.scalar ? 0 : 1;
  const uint8_t* live = out->valid;
  for (int64_t i = 0; i < k.rows; ++i) {
    if (live && !live[i]) continue;
    const int64_t x = av[i * sa], y = bv[i * sb];
    int64_t r = 0;
    bool overflow = false;
    if constexpr (kOp == Arith::kAdd) {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if constexpr (kOp == Arith::kSub) {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if constexpr (kOp == Arith::kMul) {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if constexpr (kOp == Arith::kDiv) {
      if (y == 0) {
        k.errors->Fail(i, ZeroMessage(kOp, true));
        out->SetNull(i);
      } else {
        rf[i] = TrueDivide(x, y);
      }
      continue;
    } else {
      if (y == 0) {
        k.errors->Fail(i, ZeroMessage(kOp, true));
        out->SetNull(i);
        continue;
      }
      if (y == -1) {  // INT64_MIN / -1 overflows in C++; modulo by -1 is always 0
        if (kOp == Arith::kMod) r = 0; else overflow = __builtin_sub_overflow(int64_t(0), x, &r);
      } else {
        int64_t q, m;
        // Operands that fit in 32 bits (most) divide with the shorter, faster instruction.
        if (x == static_cast<int32_t>(x) && y == static_cast<int32_t>(y)) {
          q = static_cast<int32_t>(x) / static_cast<int32_t>(y);
          m = static_cast<int32_t>(x) % static_cast<int32_t>(y);
        } else {
          q = x / y;
          m = x % y;
        }
        if (kOp == Arith::kFloorDiv) {
          r = (m != 0 && ((x < 0) != (y < 0))) ? q - 1 : q;
        } else {
          r = (m != 0 && ((m < 0) != (y < 0))) ? m + y : m;
        }
      }
    }
    if (overflow) {
      k.errors->Fail(i, "OverflowError: int result does not fit in 64 bits");
      out->SetNull(i);
    } else {
      ri[i] = r;
    }
  }
  return out;
}

KernelExec IntArith(Arith op) {
  switch (op) {
    case Arith::kAdd: return IntArithRows<Arith::kAdd>;
    case Arith::kSub: return IntArithRows<Arith::kSub>;
    case Arith::kMul: return IntArithRows<Arith::kMul>;
    case Arith::kDiv: return IntArithRows<Arith::kDiv>;
    case Arith::kFloorDiv: return IntArithRows<Arith::kFloorDiv>;
    case Arith::kMod: return IntArithRows<Arith::kMod>;
  }
  throw std::logic_error("unknown arithmetic operator");
}

KernelExec FloatArith(Arith op) {
  return [op](const KernelArgs& k) {
    const Vector& a = *k.args[0];
    const Vector& b = *k.args[1];
    auto out = NullPropagatingResult(VType::Float64(), k.args, k.rows);
    double* r = out->AllocValues<double>();
    for (int64_t i = 0; i < k.rows; ++i) {
      if (!Live(*out, i)) continue;
      const double x = a.Number(i), y = b.Number(i);
      switch (op) {
        case Arith::kAdd: r[i] = x + y; break;
        case Arith::kSub: r[i] = x - y; break;
        case Arith::kMul: r[i] = x * y; break;
        default: {
          if (y == 0.0) {
            k.errors->Fail(i, ZeroMessage(op, false));
            out->SetNull(i);
            break;
          }
          if (op == Arith::kDiv) {
            r[i] = x / y;
          } else {
            double q, m;
            FloatDivMod(x, y, &q, &m);
            r[i] = op == Arith::kFloorDiv ? q : m;
          }
        }
      }
    }
    return out;
  };
}

// str + str: concatenation.
std::shared_ptr<Vector> Concat(const KernelArgs& k) {
  const Vector& a = *k.args[0];
  const Vector& b = *k.args[1];
  StringVectorBuilder out(k.rows);
  for (int64_t i = 0; i < k.rows; ++i) {
    if (!a.IsValid(i) || !b.IsValid(i)) {
      out.AppendNull();
      continue;
    }
    std::string& buf = out.buffer();
    std::string_view x = a.Str(i), y = b.Str(i);
    buf.append(x.data(), x.size());
    buf.append(y.data(), y.size());
    out.EndRow();
  }
  return out.Finish();
}

KernelBinder ArithBinder(const std::string& name, Arith op) {
  return [name, op](const std::vector<VType>& args, const std::vector<Scalar>&) -> BoundKernel {
    CheckArity(name, args, 2);
    if (op == Arith::kAdd && args[0].kind == Kind::kString && args[1].kind == Kind::kString)
      return {VType::String(), Concat};
    if (!args[0].is_numeric() || !args[1].is_numeric()) ThrowSignature(name, args, "expected numbers (int or float)");
    if (args[0].kind == Kind::kInt64 && args[1].kind == Kind::kInt64)
      return {op == Arith::kDiv ? VType::Float64() : VType::Int64(), IntArith(op)};
    return {VType::Float64(), FloatArith(op)};
  };
}

BoundKernel BindNeg(const std::vector<VType>& args, const std::vector<Scalar>&) {
  CheckArity("neg", args, 1);
  if (args[0].kind == Kind::kInt64) {
    return {VType::Int64(), [](const KernelArgs& k) {
              const Vector& a = *k.args[0];
              auto out = NullPropagatingResult(VType::Int64(), k.args, k.rows);
              int64_t* r = out->AllocValues<int64_t>();
              for (int64_t i = 0; i < k.rows; ++i) {
                if (!Live(*out, i)) continue;
                if (__builtin_sub_overflow(int64_t(0), a.Int(i), &r[i])) {
                  k.errors->Fail(i, "OverflowError: int result does not fit in 64 bits");
                  out->SetNull(i);
                }
              }
              return out;
            }};
  }
  if (args[0].kind == Kind::kFloat64) {
    return {VType::Float64(), [](const KernelArgs& k) {
              const Vector& a = *k.args[0];
              auto out = NullPropagatingResult(VType::Float64(), k.args, k.rows);
              double* r = out->AllocValues<double>();
              for (int64_t i = 0; i < k.rows; ++i) r[i] = -a.Float(i);
              return out;
            }};
  }
  ThrowSignature("neg", args, "expected a number");
}

// --- comparisons ---

enum class Cmp { kEq, kNe, kLt, kLe, kGt, kGe };

template <typename T>
bool Compare(Cmp op, const T& x, const T& y) {
  switch (op) {
    case Cmp::kEq: return x == y;
    case Cmp::kNe: return x != y;
    case Cmp::kLt: return x < y;
    case Cmp::kLe: return x <= y;
    case Cmp::kGt: return x > y;
    case Cmp::kGe: return x >= y;
  }
  return false;
}

// Reads one side of a comparison; mixed int/float compare exactly through long double.
template <typename T>
T Read(const Vector& v, int64_t i);
template <>
int64_t Read<int64_t>(const Vector& v, int64_t i) { return v.Int(i); }
template <>
double Read<double>(const Vector& v, int64_t i) { return v.Float(i); }
template <>
long double Read<long double>(const Vector& v, int64_t i) {
  return v.type.kind == Kind::kInt64 ? static_cast<long double>(v.Int(i)) : static_cast<long double>(v.Float(i));
}
template <>
std::string_view Read<std::string_view>(const Vector& v, int64_t i) { return v.Str(i); }
template <>
bool Read<bool>(const Vector& v, int64_t i) { return v.Bool(i); }

template <typename T>
KernelExec CompareKernel(Cmp op) {
  return [op](const KernelArgs& k) {
    const Vector& a = *k.args[0];
    const Vector& b = *k.args[1];
    auto out = NullPropagatingResult(VType::Bool(), k.args, k.rows);
    uint8_t* r = out->AllocValues<uint8_t>();
    for (int64_t i = 0; i < k.rows; ++i) {
      if (Live(*out, i)) r[i] = Compare<T>(op, Read<T>(a, i), Read<T>(b, i));
    }
    return out;
  };
}

KernelBinder CompareBinder(const std::string& name, Cmp op) {
  return [name, op](const std::vector<VType>& args, const std::vector<Scalar>&) -> BoundKernel {
    CheckArity(name, args, 2);
    const Kind x = args[0].kind, y = args[1].kind;
    if (x == Kind::kInt64 && y == Kind::kInt64) return {VType::Bool(), CompareKernel<int64_t>(op)};
    if (x == Kind::kFloat64 && y == Kind::kFloat64) return {VType::Bool(), CompareKernel<double>(op)};
    if (args[0].is_numeric() && args[1].is_numeric()) return {VType::Bool(), CompareKernel<long double>(op)};
    if (x == Kind::kString && y == Kind::kString) return {VType::Bool(), CompareKernel<std::string_view>(op)};
    if (x == Kind::kBool && y == Kind::kBool) return {VType::Bool(), CompareKernel<bool>(op)};
    ThrowSignature(name, args, "expected two numbers, two strings or two bools");
  };
}

}  // namespace

void RegisterArithmeticKernels(KernelRegistry& r) {
  r.Add("add", ArithBinder("add", Arith::kAdd));
  r.Add("sub", ArithBinder("sub", Arith::kSub));
  r.Add("mul", ArithBinder("mul", Arith::kMul));
  r.Add("div", ArithBinder("div", Arith::kDiv));
  r.Add("floordiv", ArithBinder("floordiv", Arith::kFloorDiv));
  r.Add("mod", ArithBinder("mod", Arith::kMod));
  r.Add("neg", BindNeg);
  r.Add("eq", CompareBinder("eq", Cmp::kEq));
  r.Add("ne", CompareBinder("ne", Cmp::kNe));
  r.Add("lt", CompareBinder("lt", Cmp::kLt));
  r.Add("le", CompareBinder("le", Cmp::kLe));
  r.Add("gt", CompareBinder("gt", Cmp::kGt));
  r.Add("ge", CompareBinder("ge", Cmp::kGe));
}

}  // namespace dflow::expr
