// cast(type) between bool, int, float and str, with Python's conversions: int("12") accepts
// surrounding whitespace, a sign and '_' between digits; str(0.1) is Python's shortest repr
// ('0.1', '1e-05', '1e+16'); int(2.7) truncates. A value that does not convert fails its row with
// Python's error (ValueError, OverflowError), never a silent null.
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "case_tables.h"
#include "kernel_util.h"
#include "../text/utf8.h"

namespace dflow::expr {
namespace {

// Python's repr of a float.
void AppendFloatRepr(double x, std::string& out) {
  if (std::isnan(x)) {
    out += "nan";
    return;
  }
  if (std::isinf(x)) {
    out += x < 0 ? "-inf" : "inf";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // [-]d[.ddd]e[+-]xx
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = std::stoi(std::string(sci.substr(e + 1)));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int decpt = exponent + 1;  // value = 0.DIGITS x 10^decpt
  if (negative) out.push_back('-');
  if (decpt <= -4 || decpt > 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  } else if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-decpt), '0');
    out += digits;
  } else if (static_cast<size_t>(decpt) >= digits.size()) {
    out += digits;
    out.append(static_cast<size_t>(decpt) - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<size_t>(decpt));
    out.push_back('.');
    out.append(digits, static_cast<size_t>(decpt), std::string::npos);
  }
}

}  // namespace

// Strips what Python's int()/float() strip: whitespace as str.isspace() defines it.
std::string_view StripSpace(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    size_t len;
    uint32_t cp = text::utf8::decode(p, end, &len);
    if (!(unicode::flags(cp) & unicode::kSpace)) break;
    p += len;
  }
  const auto* q = end;
  while (q > p) {
    const auto* start = q - 1;
    while (start > p && text::utf8::is_continuation(*start)) --start;
    size_t len;
    uint32_t cp = text::utf8::decode(start, end, &len);
    if (!(unicode::flags(cp) & unicode::kSpace)) break;
    q = start;
  }
  return {reinterpret_cast<const char*>(p), static_cast<size_t>(q - p)};
}

namespace {

// ASCII digits with single '_' between digits (Python's grammar for int() and float() digits).
bool TakeDigits(std::string_view s, size_t* pos, std::string* out) {
  size_t i = *pos;
  bool any = false;
  while (i < s.size()) {
    if (s[i] >= '0' && s[i] <= '9') {
      out->push_back(s[i]);
      any = true;
      ++i;
    } else if (s[i] == '_' && any && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
      ++i;
    } else {
      break;
    }
  }
  *pos = i;
  return any;
}

std::string Quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

// Returns an error message, or "" with *value set.
std::string ParseInt(std::string_view raw, int64_t* value) {
  std::string_view s = StripSpace(raw);
  size_t pos = 0;
  bool negative = false;
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) negative = s[pos++] == '-';
  std::string digits;
  if (!TakeDigits(s, &pos, &digits) || pos != s.size())
    return "ValueError: invalid literal for int() with base 10: " + Quoted(raw);
  uint64_t acc = 0;
  for (char c : digits) {
    if (acc > (std::numeric_limits<uint64_t>::max() - 9) / 10) return "OverflowError: int too large for 64 bits";
    acc = acc * 10 + static_cast<uint64_t>(c - '0');
  }
  const uint64_t limit = negative ? uint64_t(1) << 63 : (uint64_t(1) << 63) - 1;
  if (acc > limit) return "OverflowError: int too large for 64 bits";
  *value = negative ? static_cast<int64_t>(0 - acc) : static_cast<int64_t>(acc);
  return "";
}

bool EqualsNoCase(std::string_view a, const char* b) {
  size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

std::string ParseFloat(std::string_view raw, double* value) {
  const std::string error = "ValueError: could not convert string to float: " + Quoted(raw);
  std::string_view s = StripSpace(raw);
  size_t pos = 0;
  bool negative = false;
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) negative = s[pos++] == '-';
  std::string_view rest = s.substr(pos);
  if (EqualsNoCase(rest, "inf") || EqualsNoCase(rest, "infinity")) {
    *value = negative ? -HUGE_VAL : HUGE_VAL;
    return "";
  }
  if (EqualsNoCase(rest, "nan")) {
    *value = std::nan("");
    return "";
  }
  std::string clean = negative ? "-" : "";
  bool int_part = TakeDigits(s, &pos, &clean);
  bool frac_part = false;
  if (pos < s.size() && s[pos] == '.') {
    clean.push_back('.');
    ++pos;
    frac_part = TakeDigits(s, &pos, &clean);
  }
  if (!int_part && !frac_part) return error;
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    clean.push_back('e');
    ++pos;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) clean.push_back(s[pos++]);
    if (!TakeDigits(s, &pos, &clean)) return error;
  }
  if (pos != s.size()) return error;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), *value);
  if (res.ec == std::errc::result_out_of_range) {
    // from_chars refuses what strtod rounds (to inf or to zero, as Python does).
    *value = std::strtod(clean.c_str(), nullptr);
  } else if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) {
    return error;
  }
  return "";
}

std::string FloatToInt(double x, int64_t* value) {
  if (std::isnan(x)) return "ValueError: cannot convert float NaN to integer";
  if (std::isinf(x)) return "OverflowError: cannot convert float infinity to integer";
  const double t = std::trunc(x);
  if (t < -9223372036854775808.0 || t >= 9223372036854775808.0) return "OverflowError: int too large for 64 bits";
  *value = static_cast<int64_t>(t);
  return "";
}

BoundKernel BindCast(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  CheckArity("cast", args, 1);
  const std::string target_name = StringOption(options, 0, "cast");
  const VType target = VType::Parse(target_name);
  const VType from = args[0];
  if (from == target) return {target, [](const KernelArgs& k) { return Materialize(*k.args[0], k.rows); }};
  const Kind f = from.kind, t = target.kind;
  if (t == Kind::kString) {
    return {target, [f](const KernelArgs& k) {
              const Vector& a = *k.args[0];
              StringVectorBuilder out(k.rows);
              for (int64_t i = 0; i < k.rows; ++i) {
                if (!a.IsValid(i)) {
                  out.AppendNull();
                  continue;
                }
                std::string& buf = out.buffer();
                if (f == Kind::kInt64) {
                  buf += std::to_string(a.Int(i));
                } else if (f == Kind::kFloat64) {
                  AppendFloatRepr(a.Float(i), buf);
                } else {
                  buf += a.Bool(i) ? "True" : "False";
                }
                out.EndRow();
              }
              return out.Finish();
            }};
  }
  if (f == Kind::kList || t == Kind::kList || f == Kind::kFloat32 || t == Kind::kFloat32 ||
      (f == Kind::kString && t == Kind::kBool))
    ThrowSignature("cast", args, "cannot cast to " + target_name);
  if (t == Kind::kInt64) {
    return {target, [f](const KernelArgs& k) {
              const Vector& a = *k.args[0];
              auto out = NullPropagatingResult(VType::Int64(), k.args, k.rows);
              int64_t* r = out->AllocValues<int64_t>();
              for (int64_t i = 0; i < k.rows; ++i) {
                if (!Live(*out, i)) continue;
                std::string error;
                if (f == Kind::kBool) {
                  r[i] = a.Bool(i);
                } else if (f == Kind::kFloat64) {
                  error = FloatToInt(a.Float(i), &r[i]);
                } else {
                  error = ParseInt(a.Str(i), &r[i]);
                }
                if (!error.empty()) {
                  k.errors->Fail(i, std::move(error));
                  out->SetNull(i);
                }
              }
              return out;
            }};
  }
  if (t == Kind::kFloat64) {
    return {target, [f](const KernelArgs& k) {
              const Vector& a = *k.args[0];
              auto out = NullPropagatingResult(VType::Float64(), k.args, k.rows);
              double* r = out->AllocValues<double>();
              for (int64_t i = 0; i < k.rows; ++i) {
                if (!Live(*out, i)) continue;
                if (f == Kind::kBool) {
                  r[i] = a.Bool(i);
                } else if (f == Kind::kInt64) {
                  r[i] = static_cast<double>(a.Int(i));
                } else {
                  std::string error = ParseFloat(a.Str(i), &r[i]);
                  if (!error.empty()) {
                    k.errors->Fail(i, std::move(error));
                    out->SetNull(i);
                  }
                }
              }
              return out;
            }};
  }
  // to bool: Python's truth value of a number
  return {target, [f](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Bool(), k.args, k.rows);
            uint8_t* r = out->AllocValues<uint8_t>();
            for (int64_t i = 0; i < k.rows; ++i) r[i] = f == Kind::kInt64 ? a.Int(i) != 0 : a.Float(i) != 0.0;
            return out;
          }};
}

}  // namespace

void RegisterCastKernels(KernelRegistry& r) { r.Add("cast", BindCast); }

std::string FloatRepr(double x) {
  std::string out;
  AppendFloatRepr(x, out);
  return out;
}

}  // namespace dflow::expr
