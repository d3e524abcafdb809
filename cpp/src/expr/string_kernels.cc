// The .str methods that need no regex, with the semantics of Python's str methods: lengths and
// slices count code points (not bytes), lower/upper use Python's full Unicode case mappings
// (including 'ß'.upper() == 'SS' and the final-sigma rule of lower), strip/split without a
// separator use str.isspace(). Inputs are valid UTF-8 (Arrow strings); results stay valid UTF-8.
#include <cstring>

#include "../text/utf8.h"
#include "case_tables.h"
#include "find.h"
#include "kernel_util.h"
#include "span_scan.h"

namespace dflow::expr {
namespace {

using text::utf8::decode;
using text::utf8::is_continuation;

const unsigned char* U(const char* p) { return reinterpret_cast<const unsigned char*>(p); }

// Code points = bytes that are not UTF-8 continuation bytes (10xxxxxx), counted 8 bytes at a time.
int64_t CodePoints(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  int64_t continuation = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    // One bit (bit 7) per continuation byte, moved to bit 0 and summed by a multiplication (no
    // popcount instruction is assumed on baseline x86-64).
    const uint64_t marks = ((w & ~(w << 1)) & 0x8080808080808080ull) >> 7;
    continuation += static_cast<int64_t>((marks * 0x0101010101010101ull) >> 56);
  }
  for (; i < n; ++i) continuation += (static_cast<unsigned char>(p[i]) & 0xC0) == 0x80;
  return static_cast<int64_t>(n) - continuation;
}

int64_t TotalBytes(const Vector& a, int64_t rows) {
  if (a.scalar) return a.IsValid(0) ? static_cast<int64_t>(a.Str(0).size()) * rows : 0;
  int64_t bytes = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (a.IsValid(i)) bytes += static_cast<int64_t>(a.Str(i).size());
  return bytes;
}

// A string-in, string-out kernel writing new bytes per row into one arena.
template <typename Fn>
std::shared_ptr<Vector> MapStrings(const KernelArgs& k, Fn fn) {
  const Vector& a = *k.args[0];
  StringVectorBuilder out(k.rows, TotalBytes(a, k.rows) + 16);
  for (int64_t i = 0; i < k.rows; ++i) {
    if (!a.IsValid(i)) {
      out.AppendNull();
      continue;
    }
    fn(a.Str(i), out.buffer());
    out.EndRow();
  }
  return out.Finish();
}

// --- case mapping ---

// The Final_Sigma context of CPython's str.lower: a cased letter before (skipping case-ignorable
// ones) and none after.
bool FinalSigma(std::string_view s, size_t at, size_t len) {
  const unsigned char* begin = U(s.data());
  const unsigned char* end = begin + s.size();
  const unsigned char* p = begin + at;
  bool cased_before = false;
  while (p > begin) {
    const unsigned char* q = p - 1;
    while (q > begin && is_continuation(*q)) --q;
    size_t l;
    uint32_t cp = decode(q, end, &l);
    uint8_t f = unicode::flags(cp);
    if (f & unicode::kCaseIgnorable) {
      p = q;
      continue;
    }
    cased_before = (f & unicode::kCased) != 0;
    break;
  }
  if (!cased_before) return false;
  p = begin + at + len;
  while (p < end) {
    size_t l;
    uint32_t cp = decode(p, end, &l);
    uint8_t f = unicode::flags(cp);
    if (f & unicode::kCaseIgnorable) {
      p += l;
      continue;
    }
    return !(f & unicode::kCased);
  }
  return true;
}

template <bool kLower>
void MapCase(std::string_view s, std::string& buf) {
  const size_t start = buf.size();
  // ASCII (most text): copy, then map in place with branch-free byte operations the compiler
  // vectorises; any byte >= 0x80 sends the row to the Unicode path from its first such byte.
  buf.append(s.data(), s.size());
  unsigned char* dst = reinterpret_cast<unsigned char*>(&buf[start]);
  // One pass maps every byte with the ASCII rule (it leaves bytes >= 0x80 alone, so it is right
  // for the ASCII prefix of any string) and notes whether any byte was not ASCII.
  unsigned char high = 0;
  for (size_t j = 0; j < s.size(); ++j) {
    const unsigned char c = dst[j];
    high |= c;
    if (kLower) {
      dst[j] = static_cast<unsigned char>(c + ((static_cast<unsigned>(c - 'A') < 26u) << 5));
    } else {
      dst[j] = static_cast<unsigned char>(c - ((static_cast<unsigned>(c - 'a') < 26u) << 5));
    }
  }
  if (high < 0x80) return;
  size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;  // already mapped above
  buf.resize(start + i);
  const unsigned char* p = U(s.data()) + i;
  const unsigned char* end = U(s.data()) + s.size();
  while (p < end) {
    if (*p < 0x80) {
      const unsigned char c = *p++;
      buf.push_back(kLower ? static_cast<char>(c + ((static_cast<unsigned>(c - 'A')) < 26u ? 32 : 0))
                           : static_cast<char>(c - ((static_cast<unsigned>(c - 'a')) < 26u ? 32 : 0)));
      continue;
    }
    size_t len;
    const uint32_t cp = decode(p, end, &len);
    if (kLower && cp == 0x3A3) {
      text::utf8::append(buf, FinalSigma(s, static_cast<size_t>(p - U(s.data())), len) ? 0x3C2 : 0x3C3);
    } else {
      const uint32_t entry = kLower ? unicode::lower_entry(cp) : unicode::upper_entry(cp);
      if (entry == 0) {
        buf.append(reinterpret_cast<const char*>(p), len);
      } else {
        const uint32_t* mapped = unicode::kCasePool + (entry >> 2);
        for (uint32_t k = 0; k < (entry & 3); ++k) text::utf8::append(buf, mapped[k]);
      }
    }
    p += len;
  }
}

// Case mapping of an ordered Vector, in bulk: each run of rows that follow each other in the input
// is mapped with the ASCII rule in one call, and the results are written back to back (no bytes
// between rows, so copying the column out later is one run per chunk). Then the few rows holding
// a byte >= 0x80 are mapped again with the full Unicode rule. Such a row's result mostly has its
// input's byte length and is written over its place (the layout stays ordered); one that grows or
// shrinks ('İ', the Kelvin sign) goes to a second buffer.
template <bool kLower>
std::shared_ptr<Vector> MapCaseOrdered(const KernelArgs& k) {
  const Vector& a = *k.args[0];
  auto out = NullPropagatingResult(VType::String(), k.args, k.rows);
  auto* views = out->AllocValues<std::string_view>();
  const std::string_view span = RowSpan(a);
  std::shared_ptr<char> mapped(new char[span.size() + 1], std::default_delete<char[]>());
  char* dst = mapped.get();
  size_t at = 0;
  for (int64_t i = 0; i < k.rows;) {
    const char* run = a.Str(i).data();
    const char* run_end = run;
    const size_t run_at = at;
    int64_t j = i;
    for (; j < k.rows && (j == i || a.Str(j).data() == run_end); ++j) {
      const std::string_view s = a.Str(j);
      views[j] = std::string_view(dst + at, s.size());
      at += s.size();
      run_end = s.data() + s.size();
    }
    MapAsciiCase<kLower>(U(run), reinterpret_cast<unsigned char*>(dst + run_at), at - run_at);
    i = j;
  }
  out->ordered = true;  // views were just made back to back
  auto moved = std::make_shared<std::string>();
  struct Moved {
    int64_t row;
    size_t start, size;
  };
  std::vector<Moved> moved_rows;
  std::string row_buf;
  RowWalker walker(*out);
  int64_t last = -1;
  // The ASCII rule left bytes >= 0x80 as they were: they mark the rows to map again.
  ForEachHighByte(std::string_view(dst, at), [&](size_t pos) {
    const int64_t row = walker.RowOf(dst + pos, 1);
    if (row < 0 || row == last) return;
    last = row;
    const std::string_view s = a.Str(row);
    row_buf.clear();
    MapCase<kLower>(s, row_buf);
    if (row_buf.size() == s.size()) {
      std::memcpy(const_cast<char*>(views[row].data()), row_buf.data(), s.size());
    } else {
      moved_rows.push_back({row, moved->size(), row_buf.size()});
      moved->append(row_buf);
    }
  });
  for (const Moved& m : moved_rows) views[m.row] = std::string_view(moved->data() + m.start, m.size);
  out->owners.push_back(mapped);
  if (!moved_rows.empty()) {
    out->owners.push_back(moved);
    out->ordered = false;
  }
  return out;
}

// --- searching ---

size_t Find(std::string_view hay, std::string_view needle, size_t from) { return FindBytes(hay, needle, from); }

// `bulk`: the rows to set true for an ordered input (the rest false), or null for none.
template <typename Test>
KernelExec Predicate(std::string pattern, Test test,
                     void (*bulk)(const Vector&, std::string_view, uint8_t*) = nullptr) {
  return [pattern, test, bulk](const KernelArgs& k) {
    const Vector& a = *k.args[0];
    auto out = NullPropagatingResult(VType::Bool(), k.args, k.rows);
    uint8_t* r = out->AllocValues<uint8_t>();
    if (bulk && a.ordered && !a.scalar) {
      // Null rows get a value too; readers only read valid rows.
      std::memset(r, 0, static_cast<size_t>(k.rows));
      bulk(a, pattern, r);
      return out;
    }
    for (int64_t i = 0; i < k.rows; ++i) {
      if (Live(*out, i)) r[i] = test(a.Str(i), std::string_view(pattern));
    }
    return out;
  };
}

// str.contains over an ordered Vector: one search over the span.
void ContainsOrdered(const Vector& a, std::string_view needle, uint8_t* r) {
  if (needle.empty()) {
    std::memset(r, 1, static_cast<size_t>(a.length));
    return;
  }
  ForEachRowContaining(a, needle, [r](int64_t row) { r[row] = 1; });
}

// Python's str.replace(old, new): every occurrence, left to right; an empty `old` inserts `new`
// before every code point and at the end.
void ReplaceAll(std::string_view s, std::string_view old, std::string_view repl, std::string& buf) {
  if (old.empty()) {
    const unsigned char* p = U(s.data());
    const unsigned char* end = p + s.size();
    buf.append(repl.data(), repl.size());
    while (p < end) {
      size_t len;
      decode(p, end, &len);
      buf.append(reinterpret_cast<const char*>(p), len);
      buf.append(repl.data(), repl.size());
      p += len;
    }
    return;
  }
  size_t at = 0;
  for (;;) {
    size_t hit = Find(s, old, at);
    if (hit == std::string_view::npos) break;
    buf.append(s.data() + at, hit - at);
    buf.append(repl.data(), repl.size());
    at = hit + old.size();
  }
  buf.append(s.data() + at, s.size() - at);
}

// Byte offset of code point `index` (0 <= index <= code points of s).
size_t ByteOffset(std::string_view s, int64_t index) {
  size_t i = 0;
  for (int64_t seen = 0; i < s.size(); ++i) {
    if (!is_continuation(static_cast<unsigned char>(s[i]))) {
      if (seen == index) return i;
      ++seen;
    }
  }
  return s.size();
}

// Python's s[start:stop] on code points; has_start/has_stop false mean an omitted bound.
std::string_view Slice(std::string_view s, bool has_start, int64_t start, bool has_stop, int64_t stop) {
  int64_t n = -1;
  auto count = [&] {
    if (n < 0) n = CodePoints(s);
    return n;
  };
  int64_t b = 0, e = 0;
  if (!has_start) {
    b = 0;
  } else if (start < 0) {
    b = std::max<int64_t>(0, count() + start);
  } else {
    b = start;
  }
  if (!has_stop) {
    e = count();
  } else if (stop < 0) {
    e = std::max<int64_t>(0, count() + stop);
  } else {
    e = stop;
  }
  if (e <= b) return {};
  const size_t bb = ByteOffset(s, b);
  const size_t eb = bb + ByteOffset(s.substr(bb), e - b);
  return s.substr(bb, eb - bb);
}

bool IsSpace(uint32_t cp) { return (unicode::flags(cp) & unicode::kSpace) != 0; }

// A list<str> whose elements are views into the input strings.
class SplitBuilder {
 public:
  explicit SplitBuilder(int64_t rows) : offsets_(std::make_shared<std::vector<int64_t>>()) {
    offsets_->reserve(static_cast<size_t>(rows) + 1);
    offsets_->push_back(0);
  }
  void Add(std::string_view piece) { pieces_.push_back(piece); }
  void EndRow() { offsets_->push_back(static_cast<int64_t>(pieces_.size())); }
  std::shared_ptr<Vector> Finish(const Vector& input, const Vector& result_validity_source, int64_t rows) {
    auto out = MakeVector(VType::List(VType::String()), rows);
    out->offsets = offsets_->data();
    out->owners.push_back(offsets_);
    if (result_validity_source.MayHaveNulls()) {
      uint8_t* valid = out->AllocValidity(1);
      for (int64_t i = 0; i < rows; ++i) valid[i] = result_validity_source.IsValid(i);
    }
    auto child = MakeVector(VType::String(), static_cast<int64_t>(pieces_.size()));
    auto* views = child->AllocValues<std::string_view>();
    std::copy(pieces_.begin(), pieces_.end(), views);
    child->owners.insert(child->owners.end(), input.owners.begin(), input.owners.end());
    out->child = child;
    return out;
  }

 private:
  std::shared_ptr<std::vector<int64_t>> offsets_;
  std::vector<std::string_view> pieces_;
};

void RequireString(const std::string& name, const std::vector<VType>& args, size_t arity = 1) {
  CheckArity(name, args, arity);
  for (const VType& t : args)
    if (t.kind != Kind::kString) ThrowSignature(name, args, "expected str");
}

BoundKernel BindLen(const std::vector<VType>& args, const std::vector<Scalar>&) {
  RequireString("str.len", args);
  return {VType::Int64(), [](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Int64(), k.args, k.rows);
            int64_t* r = out->AllocValues<int64_t>();
            if (!a.ordered || a.scalar) {
              for (int64_t i = 0; i < k.rows; ++i) r[i] = Live(*out, i) ? CodePoints(a.Str(i)) : 0;
              return out;
            }
            // Byte lengths, less one per continuation byte: the span is scanned once for bytes
            // >= 0x80 (rare in most text) and each continuation byte is charged to its row.
            for (int64_t i = 0; i < k.rows; ++i) r[i] = static_cast<int64_t>(a.Str(i).size());
            const std::string_view span = RowSpan(a);
            RowWalker walker(a);
            ForEachHighByte(span, [&](size_t at) {
              if (!is_continuation(static_cast<unsigned char>(span[at]))) return;
              const int64_t row = walker.RowOf(span.data() + at, 1);
              if (row >= 0) --r[row];
            });
            if (out->valid)
              for (int64_t i = 0; i < k.rows; ++i) r[i] = out->valid[i] ? r[i] : 0;
            return out;
          }};
}

template <bool kLower>
BoundKernel BindCase(const std::vector<VType>& args, const std::vector<Scalar>&) {
  RequireString(kLower ? "str.lower" : "str.upper", args);
  return {VType::String(), [](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            if (a.ordered && !a.scalar) return MapCaseOrdered<kLower>(k);
            return MapStrings(k, [](std::string_view s, std::string& buf) { MapCase<kLower>(s, buf); });
          }};
}

BoundKernel BindStrip(const std::vector<VType>& args, const std::vector<Scalar>&) {
  RequireString("str.strip", args);
  return {VType::String(), [](const KernelArgs& k) {
            // The stripped string is a view into the input: no bytes are copied.
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::String(), k.args, k.rows);
            auto* r = out->AllocValues<std::string_view>();
            for (int64_t i = 0; i < k.rows; ++i) {
              if (Live(*out, i)) r[i] = StripSpace(a.Str(i));
            }
            out->owners.insert(out->owners.end(), a.owners.begin(), a.owners.end());
            return out;
          }};
}

BoundKernel BindSlice(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.slice", args);
  bool no_start = false, no_stop = false;
  const int64_t start = IntOption(options, 0, "str.slice", &no_start);
  const int64_t stop = IntOption(options, 1, "str.slice", &no_stop);
  return {VType::String(), [=](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::String(), k.args, k.rows);
            auto* r = out->AllocValues<std::string_view>();
            for (int64_t i = 0; i < k.rows; ++i) {
              if (Live(*out, i)) r[i] = Slice(a.Str(i), !no_start, start, !no_stop, stop);
            }
            out->owners.insert(out->owners.end(), a.owners.begin(), a.owners.end());
            return out;
          }};
}

BoundKernel BindContains(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.contains", args);
  return {VType::Bool(), Predicate(StringOption(options, 0, "str.contains"), [](std::string_view s, std::string_view p) {
            return Find(s, p, 0) != std::string_view::npos;
          }, ContainsOrdered)};
}

BoundKernel BindStartsWith(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.starts_with", args);
  return {VType::Bool(), Predicate(StringOption(options, 0, "str.starts_with"), [](std::string_view s, std::string_view p) {
            return s.substr(0, p.size()) == p;
          })};
}

BoundKernel BindEndsWith(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.ends_with", args);
  return {VType::Bool(), Predicate(StringOption(options, 0, "str.ends_with"), [](std::string_view s, std::string_view p) {
            return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
          })};
}

BoundKernel BindReplace(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.replace", args);
  const std::string old = StringOption(options, 0, "str.replace");
  const std::string repl = StringOption(options, 1, "str.replace");
  return {VType::String(), [old, repl](const KernelArgs& k) {
            return MapStrings(k, [&](std::string_view s, std::string& buf) { ReplaceAll(s, old, repl, buf); });
          }};
}

BoundKernel BindSplit(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireString("str.split", args);
  const Scalar& sep_option = Option(options, 0, "str.split");
  if (!sep_option.is_null() && sep_option.kind != Scalar::Kind::kString)
    throw std::invalid_argument("str.split: the separator must be a str or None");
  if (!sep_option.is_null() && sep_option.s.empty()) throw std::invalid_argument("str.split: empty separator");
  const bool whitespace = sep_option.is_null();
  const std::string sep = sep_option.s;
  return {VType::List(VType::String()), [whitespace, sep](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            SplitBuilder out(k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              if (a.IsValid(i)) {
                std::string_view s = a.Str(i);
                if (whitespace) {
                  // Python's str.split(): runs of whitespace separate, none at either end.
                  const unsigned char* p = U(s.data());
                  const unsigned char* end = p + s.size();
                  const unsigned char* word = nullptr;
                  while (p < end) {
                    size_t len;
                    uint32_t cp = decode(p, end, &len);
                    if (IsSpace(cp)) {
                      if (word) out.Add(std::string_view(reinterpret_cast<const char*>(word), static_cast<size_t>(p - word)));
                      word = nullptr;
                    } else if (!word) {
                      word = p;
                    }
                    p += len;
                  }
                  if (word) out.Add(std::string_view(reinterpret_cast<const char*>(word), static_cast<size_t>(end - word)));
                } else {
                  size_t at = 0;
                  for (;;) {
                    size_t hit = Find(s, sep, at);
                    if (hit == std::string_view::npos) break;
                    out.Add(s.substr(at, hit - at));
                    at = hit + sep.size();
                  }
                  out.Add(s.substr(at));
                }
              }
              out.EndRow();
            }
            return out.Finish(a, a, k.rows);
          }};
}

}  // namespace

void RegisterStringKernels(KernelRegistry& r) {
  r.Add("str.len", BindLen);
  r.Add("str.lower", BindCase<true>);
  r.Add("str.upper", BindCase<false>);
  r.Add("str.strip", BindStrip);
  r.Add("str.slice", BindSlice);
  r.Add("str.contains", BindContains);
  r.Add("str.starts_with", BindStartsWith);
  r.Add("str.ends_with", BindEndsWith);
  r.Add("str.replace", BindReplace);
  r.Add("str.split", BindSplit);
}

}  // namespace dflow::expr
