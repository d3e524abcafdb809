// json.get(path, type): the value at `path` ("a.b[0]", '["odd.key"][-1]') of a JSON text, as the
// declared type. The document is scanned once without building a tree (cpp/src/text/json.h builds
// one, which a per-row lookup does not need) and validated as Python's json.loads validates it:
// a document json.loads rejects fails its row (ValueError), so does a value of another type than
// declared (TypeError). A missing key, an index out of range or a path through a scalar gives
// null. Duplicate keys: the last wins, as in json.loads.
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>

#include "../text/utf8.h"
#include "kernel_util.h"

namespace dflow::expr {
namespace {

struct Step {
  bool is_index = false;
  int64_t index = 0;
  std::string key;
};

std::vector<Step> ParsePath(const std::string& path) {
  std::vector<Step> steps;
  size_t i = 0;
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument("json.get: invalid path " + path + ": " + why);
  };
  while (i < path.size()) {
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string::npos) bad("unclosed [");
      std::string inner = path.substr(i + 1, close - i - 1);
      Step s;
      if (inner.size() >= 2 && (inner[0] == '"' || inner[0] == '\'') && inner.back() == inner[0]) {
        s.key = inner.substr(1, inner.size() - 2);
      } else {
        auto res = std::from_chars(inner.data(), inner.data() + inner.size(), s.index);
        if (inner.empty() || res.ec != std::errc() || res.ptr != inner.data() + inner.size()) bad("[" + inner + "] is not an index");
        s.is_index = true;
      }
      steps.push_back(std::move(s));
      i = close + 1;
      if (i < path.size() && path[i] == '.') {
        ++i;
        if (i == path.size()) bad("ends with .");
      }
    } else {
      size_t end = path.find_first_of(".[", i);
      if (end == std::string::npos) end = path.size();
      if (end == i) bad("empty key");
      Step s;
      s.key = path.substr(i, end - i);
      steps.push_back(std::move(s));
      i = end;
      if (i < path.size() && path[i] == '.') {
        ++i;
        if (i == path.size()) bad("ends with .");
      }
    }
  }
  return steps;
}

struct JsonError {
  std::string message;
};

// A validating scanner over one document.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  size_t pos() const { return i_; }
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  [[noreturn]] void Fail(const char* what) const {
    throw JsonError{"ValueError: json.get: invalid JSON (" + std::string(what) + ") at byte " + std::to_string(i_)};
  }
  char Peek() {
    SkipSpace();
    if (i_ >= s_.size()) Fail("unexpected end");
    return s_[i_];
  }
  void Expect(char c) {
    if (Peek() != c) Fail("unexpected character");
    ++i_;
  }

  // Skips one value, returning its text. Nesting is bounded (json.loads stops at Python's
  // recursion limit), so a hostile document cannot exhaust the stack.
  std::string_view SkipValue(int depth = 0) {
    if (depth > kMaxDepth) Fail("nested too deeply");
    const size_t start = (SkipSpace(), i_);
    const char c = Peek();
    if (c == '{') {
      ++i_;
      if (Peek() == '}') {
        ++i_;
      } else {
        for (;;) {
          if (Peek() != '"') Fail("expected a key");
          ReadString(nullptr);
          Expect(':');
          SkipValue(depth + 1);
          if (Peek() == ',') {
            ++i_;
            continue;
          }
          Expect('}');
          break;
        }
      }
    } else if (c == '[') {
      ++i_;
      if (Peek() == ']') {
        ++i_;
      } else {
        for (;;) {
          SkipValue(depth + 1);
          if (Peek() == ',') {
            ++i_;
            continue;
          }
          Expect(']');
          break;
        }
      }
    } else if (c == '"') {
      ReadString(nullptr);
    } else {
      ReadScalar();
    }
    return s_.substr(start, i_ - start);
  }

  // Reads a string (at '"'); appends its decoded text to `out` when given.
  void ReadString(std::string* out) {
    ++i_;  // opening quote
    for (;;) {
      if (i_ >= s_.size()) Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return;
      }
      if (c < 0x20) Fail("control character in string");
      if (c != '\\') {
        if (out) out->push_back(static_cast<char>(c));
        ++i_;
        continue;
      }
      if (++i_ >= s_.size()) Fail("unterminated string");
      const char e = s_[i_++];
      uint32_t cp = 0;
      switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
          cp = Hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            const size_t save = i_;
            i_ += 2;
            const uint32_t low = Hex4();
            if (low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              i_ = save;
            }
          }
          // json.loads keeps a lone surrogate, which no UTF-8 string can hold.
          if (cp >= 0xD800 && cp < 0xE000 && out) Fail("lone surrogate in string");
          break;
        }
        default: Fail("invalid escape");
      }
      if (out) text::utf8::append(*out, cp);
    }
  }

  // Reads a literal or number; returns its text.
  std::string_view ReadScalar() {
    SkipSpace();
    const size_t start = i_;
    for (const char* word : {"true", "false", "null", "NaN", "Infinity", "-Infinity"}) {
      const size_t n = std::strlen(word);
      if (s_.compare(i_, n, word) == 0) {
        i_ += n;
        return s_.substr(start, n);
      }
    }
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !IsDigit(s_[i_])) Fail("expected a value");
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && s_[i_] == '.' && i_ + 1 < s_.size() && IsDigit(s_[i_ + 1])) {
      ++i_;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (j < s_.size() && IsDigit(s_[j])) {
        i_ = j;
        while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
      }
    }
    return s_.substr(start, i_ - start);
  }

  static constexpr int kMaxDepth = 1000;

  bool AtEnd() {
    SkipSpace();
    return i_ == s_.size();
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  uint32_t Hex4() {
    if (i_ + 4 > s_.size()) Fail("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else Fail("invalid \\u escape");
    }
    return v;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Walks the document, validating all of it; returns the text of the value at the path, or an
// empty view when the path does not lead anywhere.
std::string_view Lookup(std::string_view doc, const std::vector<Step>& path) {
  Scanner sc(doc);
  std::string_view found;
  bool have = false;
  // Recursive descent along the path; every value off the path is skipped (and validated).
  std::function<void(size_t, bool)> walk = [&](size_t depth, bool on_path) {
    const int nesting = static_cast<int>(depth);
    if (!on_path) {
      sc.SkipValue(nesting);
      return;
    }
    if (depth == path.size()) {
      found = sc.SkipValue(nesting);
      have = true;
      return;
    }
    const Step& step = path[depth];
    const char c = sc.Peek();
    if (c == '{' && !step.is_index) {
      sc.Expect('{');
      if (sc.Peek() == '}') {
        sc.Expect('}');
        return;
      }
      std::string key;
      for (;;) {
        if (sc.Peek() != '"') sc.Fail("expected a key");
        key.clear();
        sc.ReadString(&key);
        sc.Expect(':');
        const bool match = key == step.key;
        if (match) have = false;  // a later duplicate replaces an earlier one
        walk(depth + 1, match);
        if (sc.Peek() == ',') {
          sc.Expect(',');
          continue;
        }
        sc.Expect('}');
        return;
      }
    }
    if (c == '[' && step.is_index) {
      sc.Expect('[');
      int64_t target = step.index;
      if (target < 0) {
        // Negative indexes count from the end: count the elements first.
        Scanner probe = sc;
        int64_t n = 0;
        if (probe.Peek() != ']') {
          for (;;) {
            ++n;
            probe.SkipValue(nesting + 1);
            if (probe.Peek() != ',') break;
            probe.Expect(',');
          }
        }
        target += n;
      }
      if (sc.Peek() == ']') {
        sc.Expect(']');
        return;
      }
      for (int64_t k = 0;; ++k) {
        walk(depth + 1, k == target);
        if (sc.Peek() == ',') {
          sc.Expect(',');
          continue;
        }
        sc.Expect(']');
        return;
      }
    }
    sc.SkipValue(nesting);  // the path goes through a value that is not a container of the right kind
  };
  walk(0, true);
  if (!sc.AtEnd()) sc.Fail("extra data after the document");
  return have ? found : std::string_view();
}

BoundKernel BindGet(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  CheckArity("json.get", args, 1);
  if (args[0].kind != Kind::kString) ThrowSignature("json.get", args, "expected JSON text (str)");
  const std::string path_text = StringOption(options, 0, "json.get");
  const std::string type_name = StringOption(options, 1, "json.get");
  const auto path = std::make_shared<const std::vector<Step>>(ParsePath(path_text));
  const VType out_type = VType::Parse(type_name);
  const bool raw = type_name == "JSON";
  if (out_type.kind == Kind::kList) throw std::invalid_argument("json.get: lists are read as JSON, then .json methods");
  return {out_type, [=](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(out_type, k.args, k.rows);
            std::shared_ptr<StringVectorBuilder> strings;
            void* values = nullptr;
            switch (out_type.kind) {
              case Kind::kString: strings = std::make_shared<StringVectorBuilder>(k.rows); break;
              case Kind::kInt64: values = out->AllocValues<int64_t>(); break;
              case Kind::kFloat64: values = out->AllocValues<double>(); break;
              case Kind::kBool: values = out->AllocValues<uint8_t>(); break;
              default: break;
            }
            const std::string where = "json.get('" + path_text + "')";
            for (int64_t i = 0; i < k.rows; ++i) {
              bool null = !Live(*out, i);
              try {
                std::string_view v;
                if (!null) {
                  v = Lookup(a.Str(i), *path);
                  null = v.empty() || v == "null";
                }
                if (null) {
                  out->SetNull(i);
                  if (strings) strings->AppendNull();
                  continue;
                }
                const char c = v[0];
                auto mismatch = [&](const char* found) {
                  throw JsonError{"TypeError: " + where + " is " + found + ", not " + type_name};
                };
                const char* kind = c == '"' ? "a string" : c == '{' ? "an object" : c == '[' ? "an array"
                                 : (c == 't' || c == 'f') ? "a bool" : "a number";
                if (raw) {
                  strings->Append(v);
                } else if (out_type.kind == Kind::kString) {
                  if (c != '"') mismatch(kind);
                  Scanner sc(v);
                  sc.ReadString(&strings->buffer());
                  strings->EndRow();
                } else if (out_type.kind == Kind::kBool) {
                  if (c != 't' && c != 'f') mismatch(kind);
                  static_cast<uint8_t*>(values)[i] = c == 't';
                } else if (out_type.kind == Kind::kInt64) {
                  if (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f') mismatch(kind);
                  int64_t x = 0;
                  auto res = std::from_chars(v.data(), v.data() + v.size(), x);
                  if (res.ptr != v.data() + v.size()) mismatch("a float");
                  if (res.ec != std::errc()) throw JsonError{"OverflowError: " + where + " does not fit in 64 bits"};
                  static_cast<int64_t*>(values)[i] = x;
                } else {
                  if (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f') mismatch(kind);
                  double x;
                  if (v == "NaN") {
                    x = std::nan("");
                  } else if (v == "Infinity" || v == "-Infinity") {
                    x = v[0] == '-' ? -HUGE_VAL : HUGE_VAL;
                  } else {
                    x = std::strtod(std::string(v).c_str(), nullptr);
                  }
                  static_cast<double*>(values)[i] = x;
                }
              } catch (const JsonError& e) {
                k.errors->Fail(i, e.message);
                out->SetNull(i);
                if (strings && strings->rows() == i) strings->AppendNull();
              }
            }
            if (strings) return strings->Finish();
            return out;
          }};
}

}  // namespace

void RegisterJsonKernels(KernelRegistry& r) { r.Add("json.get", BindGet); }

}  // namespace dflow::expr
