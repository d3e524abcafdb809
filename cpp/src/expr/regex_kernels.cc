// The regex methods of .str, on RE2 (vendored, third_party/re2): linear-time matching, so a
// hostile pattern or input cannot make a run hang, and thread-safe compiled patterns shared by
// every chunk. RE2's syntax is Python's `re` minus backreferences and lookaround (a pattern using
// them is rejected when the expression is built).
//
// Matches are found the way Python's re.finditer finds them: left to right, non-overlapping, and
// after an empty match the next one starts one code point later. \w, \d and \s mean what they
// mean in Python's `re` for str patterns (Unicode letters, digits, spaces; RE2's are ASCII).
#include <re2/re2.h>
#include <re2/regexp.h>

#include <cstring>
#include <mutex>

#include "../text/utf8.h"
#include "find.h"
#include "kernel_util.h"
#include "span_scan.h"

namespace dflow::expr {
namespace {

// Python's whitespace (str.isspace) as RE2 class items.
constexpr const char* kSpaceItems = "\\t\\n\\v\\f\\r\\x{1c}-\\x{1f}\\x{20}\\x{85}\\p{Z}";

// Rewrites the classes whose meaning differs between RE2 (ASCII) and Python's re (Unicode).
// Inside [...], \W and \S (negations) have no union form and keep RE2's ASCII meaning.
std::string TranslatePattern(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      const char* item = nullptr;
      switch (e) {
        case 'w': out += in_class ? "\\p{L}\\p{N}_" : "[\\p{L}\\p{N}_]"; continue;
        case 'W': if (!in_class) { out += "[^\\p{L}\\p{N}_]"; continue; } break;
        case 'd': out += "\\p{Nd}"; continue;
        case 'D': out += "\\P{Nd}"; continue;
        case 's': item = kSpaceItems; break;
        case 'S': if (!in_class) { out += std::string("[^") + kSpaceItems + "]"; continue; } break;
        default: break;
      }
      if (item) {
        out += in_class ? std::string(item) : std::string("[") + item + "]";
        continue;
      }
      out.push_back('\\');
      out.push_back(e);
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

// The longest literal every match must contain (UTF-8), or "" when there is none we can prove:
// a row without it cannot match, and memmem rejects such rows much faster than a regex scan (the
// literal prefilter of Rust's regex and Hyperscan, in its simplest form).
std::string RequiredLiteral(re2::Regexp* re) {
  if (re == nullptr || (re->parse_flags() & re2::Regexp::FoldCase)) return "";
  switch (re->op()) {
    case re2::kRegexpLiteral: {
      std::string out;
      text::utf8::append(out, static_cast<uint32_t>(re->rune()));
      return out;
    }
    case re2::kRegexpLiteralString: {
      std::string out;
      for (int i = 0; i < re->nrunes(); ++i) text::utf8::append(out, static_cast<uint32_t>(re->runes()[i]));
      return out;
    }
    case re2::kRegexpCapture:
    case re2::kRegexpPlus:
      return RequiredLiteral(re->sub()[0]);
    case re2::kRegexpRepeat:
      return re->min() > 0 ? RequiredLiteral(re->sub()[0]) : "";
    case re2::kRegexpConcat: {
      // Adjacent literals form one longer required string; otherwise keep the longest part.
      std::string best, run;
      for (int i = 0; i < re->nsub(); ++i) {
        re2::Regexp* sub = re->sub()[i];
        const bool literal = (sub->op() == re2::kRegexpLiteral || sub->op() == re2::kRegexpLiteralString) &&
                             !(sub->parse_flags() & re2::Regexp::FoldCase);
        std::string part = RequiredLiteral(sub);
        if (literal) {
          run += part;
        } else {
          if (run.size() > best.size()) best = run;
          run.clear();
          if (part.size() > best.size()) best = part;
        }
      }
      return run.size() > best.size() ? run : best;
    }
    default:
      return "";
  }
}

// Compiled copies of one pattern, one per thread running it at a time. An RE2 object is
// thread-safe, but each search takes a reader lock on its DFA cache: threads sharing one object
// bounce that lock between cores on every row. A kernel call (a chunk of rows) leases a copy.
class RegexPool {
 public:
  explicit RegexPool(std::shared_ptr<const re2::RE2> first) : first_(std::move(first)) {}
  class Lease {
   public:
    Lease(RegexPool* pool, std::shared_ptr<const re2::RE2> re) : pool_(pool), re_(std::move(re)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_->Return(std::move(re_)); }
    const re2::RE2& operator*() const { return *re_; }

   private:
    RegexPool* pool_;
    std::shared_ptr<const re2::RE2> re_;
  };
  Lease Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        auto re = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(re));
      }
    }
    // Compiling again is cheap next to the rows of a chunk, and happens once per thread.
    return Lease(this, std::make_shared<const re2::RE2>(first_->pattern(), first_->options()));
  }

 private:
  void Return(std::shared_ptr<const re2::RE2> re) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(re));
  }
  std::shared_ptr<const re2::RE2> first_;
  std::mutex mu_;
  std::vector<std::shared_ptr<const re2::RE2>> free_;
};

// A compiled pattern and the literal its matches must contain.
struct Pattern {
  std::shared_ptr<const re2::RE2> re;  // for binding: groups, rewrite checks
  std::shared_ptr<RegexPool> pool;     // for matching rows
  std::string required;
  // Whether `s` may match at all (false: skip the regex).
  bool MayMatch(std::string_view s) const {
    return required.empty() || FindBytes(s, required) != std::string_view::npos;
  }
};

// Per row of `a`: whether it may match (it holds the required literal; null rows may not). For
// an ordered Vector, one search over its span rather than one per row.
std::vector<uint8_t> MayMatchRows(const Pattern& p, const Vector& a, int64_t rows) {
  std::vector<uint8_t> may(static_cast<size_t>(rows), 0);
  if (a.ordered && !a.scalar && !p.required.empty()) {
    ForEachRowContaining(a, p.required, [&](int64_t row) { may[row] = 1; });
  } else {
    for (int64_t i = 0; i < rows; ++i) may[i] = a.IsValid(i) && p.MayMatch(a.Str(i));
  }
  if (a.valid)
    for (int64_t i = 0; i < rows; ++i) may[i] &= a.IsValid(i);
  return may;
}

std::shared_ptr<const re2::RE2> Compile(const std::string& python_pattern, const std::string& function) {
  const std::string pattern = TranslatePattern(python_pattern);
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_encoding(re2::RE2::Options::EncodingUTF8);
  auto re = std::make_shared<const re2::RE2>(pattern, options);
  if (!re->ok()) throw std::invalid_argument(function + ": invalid regex " + python_pattern + ": " + re->error());
  return re;
}

Pattern CompilePattern(const std::string& python_pattern, const std::string& function) {
  Pattern p;
  p.re = Compile(python_pattern, function);
  p.pool = std::make_shared<RegexPool>(p.re);
  p.required = RequiredLiteral(p.re->Regexp());
  return p;
}

// Calls fn(match_begin, match_end, groups) for every match; fn returns false to stop.
template <typename Fn>
void ForEachMatch(const re2::RE2& re, std::string_view s, int ngroups, Fn fn) {
  std::vector<re2::StringPiece> groups(static_cast<size_t>(ngroups) + 1);
  re2::StringPiece text(s.data(), s.size());
  size_t pos = 0;
  while (pos <= s.size()) {
    if (!re.Match(text, pos, s.size(), re2::RE2::UNANCHORED, groups.data(), ngroups + 1)) return;
    const size_t b = static_cast<size_t>(groups[0].data() - s.data());
    const size_t e = b + groups[0].size();
    if (!fn(b, e, groups)) return;
    if (e > b) {
      pos = e;
    } else {
      // An empty match: the next search starts after the next code point.
      if (e >= s.size()) return;
      size_t next = e + 1;
      while (next < s.size() && text::utf8::is_continuation(static_cast<unsigned char>(s[next]))) ++next;
      pos = next;
    }
  }
}

void RequireString(const std::string& name, const std::vector<VType>& args) {
  CheckArity(name, args, 1);
  if (args[0].kind != Kind::kString) ThrowSignature(name, args, "expected str");
}

BoundKernel BindContains(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.contains_regex", args);
  const Pattern p = CompilePattern(StringOption(options, 0, "str.contains"), "str.contains");
  return {VType::Bool(), [p](const KernelArgs& k) {
            const auto lease = p.pool->Acquire();
            const re2::RE2* re = &*lease;
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Bool(), k.args, k.rows);
            uint8_t* r = out->AllocValues<uint8_t>();
            const std::vector<uint8_t> may = MayMatchRows(p, a, k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!Live(*out, i)) continue;
              std::string_view s = a.Str(i);
              r[i] = may[i] && re2::RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), *re);
            }
            return out;
          }};
}

BoundKernel BindCountMatches(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.count_matches", args);
  const Pattern p = CompilePattern(StringOption(options, 0, "str.count_matches"), "str.count_matches");
  return {VType::Int64(), [p](const KernelArgs& k) {
            const auto lease = p.pool->Acquire();
            const re2::RE2* re = &*lease;
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Int64(), k.args, k.rows);
            int64_t* r = out->AllocValues<int64_t>();
            const std::vector<uint8_t> may = MayMatchRows(p, a, k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!Live(*out, i)) continue;
              int64_t n = 0;
              if (!may[i]) {
                r[i] = 0;
                continue;
              }
              ForEachMatch(*re, a.Str(i), 0, [&](size_t, size_t, const std::vector<re2::StringPiece>&) {
                ++n;
                return true;
              });
              r[i] = n;
            }
            return out;
          }};
}

BoundKernel BindExtract(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.extract", args);
  const Pattern p = CompilePattern(StringOption(options, 0, "str.extract"), "str.extract");
  const auto& re = p.re;
  const int64_t group = IntOption(options, 1, "str.extract");
  if (group < 0 || group > re->NumberOfCapturingGroups())
    throw std::invalid_argument("str.extract: the regex has " + std::to_string(re->NumberOfCapturingGroups()) +
                                " group(s), group " + std::to_string(group) + " does not exist");
  return {VType::String(), [p, group](const KernelArgs& k) {
            const auto lease = p.pool->Acquire();
            const re2::RE2* re = &*lease;
            // The group is a view into the input: no bytes are copied.
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::String(), k.args, k.rows);
            auto* r = out->AllocValues<std::string_view>();
            std::vector<re2::StringPiece> groups(static_cast<size_t>(group) + 1);
            const std::vector<uint8_t> may = MayMatchRows(p, a, k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              // A row without a value still gets a view (empty, at its input's start), so a group
              // of each row of an ordered input keeps the layout ordered.
              if (!Live(*out, i)) {
                r[i] = a.ordered ? a.Str(i).substr(0, 0) : std::string_view();
                continue;
              }
              std::string_view s = a.Str(i);
              // No match, or a group that did not take part in the match: null (as re's group()).
              if (!may[i] ||
                  !re->Match(re2::StringPiece(s.data(), s.size()), 0, s.size(), re2::RE2::UNANCHORED, groups.data(),
                             static_cast<int>(group) + 1) ||
                  groups[group].data() == nullptr) {
                out->SetNull(i);
                r[i] = s.substr(0, 0);
                continue;
              }
              r[i] = std::string_view(groups[group].data(), groups[group].size());
            }
            out->owners.insert(out->owners.end(), a.owners.begin(), a.owners.end());
            out->ordered = a.ordered && !a.scalar;
            return out;
          }};
}

BoundKernel BindReplace(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.replace_regex", args);
  const Pattern p = CompilePattern(StringOption(options, 0, "str.replace"), "str.replace");
  const auto& re = p.re;
  const std::string rewrite = StringOption(options, 1, "str.replace");
  std::string error;
  if (!re->CheckRewriteString(rewrite, &error))
    throw std::invalid_argument("str.replace: invalid replacement " + rewrite + ": " + error);
  const int ngroups = re2::RE2::MaxSubmatch(rewrite);
  return {VType::String(), [p, rewrite, ngroups](const KernelArgs& k) {
            const auto lease = p.pool->Acquire();
            const re2::RE2* re = &*lease;
            const Vector& a = *k.args[0];
            StringVectorBuilder out(k.rows);
            std::string piece;
            const std::vector<uint8_t> may = MayMatchRows(p, a, k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!a.IsValid(i)) {
                out.AppendNull();
                continue;
              }
              std::string_view s = a.Str(i);
              std::string& buf = out.buffer();
              size_t copied = 0;
              if (may[i]) ForEachMatch(*re, s, ngroups, [&](size_t b, size_t e, const std::vector<re2::StringPiece>& groups) {
                buf.append(s.data() + copied, b - copied);
                piece.clear();
                re->Rewrite(&piece, rewrite, groups.data(), ngroups + 1);
                buf += piece;
                copied = e;
                return true;
              });
              buf.append(s.data() + copied, s.size() - copied);
              out.EndRow();
            }
            return out.Finish();
          }};
}

}  // namespace

void RegisterRegexKernels(KernelRegistry& r) {
  r.Add("str.contains_regex", BindContains);
  r.Add("str.count_matches", BindCountMatches);
  r.Add("str.extract", BindExtract);
  r.Add("str.replace_regex", BindReplace);
}

}  // namespace dflow::expr
