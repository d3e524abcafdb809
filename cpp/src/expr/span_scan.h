// Private: kernels over the bytes of an `ordered` string Vector as one span.
//
// A chunk's strings are mostly short (tens of bytes), so a kernel that makes one call per row
// (a substring search, a code-point count, a case map) pays its setup and its tail handling per
// row. When the rows lie in row order in one buffer (Vector::ordered: Arrow input, a builder's
// arena, a filter's survivors of either), the kernel can instead run once over the bytes from the
// first row's start to the last row's end and map what it finds back to rows by address. Bytes
// between rows (a filtered row's text) are scanned but belong to no row.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dflow/expr/vector.h"
#include "find.h"

namespace dflow::expr {

// The rows' bytes as one span: [first row's start, last row's end). Empty for no rows.
inline std::string_view RowSpan(const Vector& v) {
  if (v.length == 0) return {};
  const auto* s = static_cast<const std::string_view*>(v.values);
  const std::string_view last = s[v.length - 1];
  if (s[0].data() == nullptr) return {};  // every row empty (an Arrow array without data)
  return {s[0].data(), static_cast<size_t>(last.data() + last.size() - s[0].data())};
}

// Finds the row holding an address; addresses asked for must not decrease.
class RowWalker {
 public:
  explicit RowWalker(const Vector& v) : rows_(static_cast<const std::string_view*>(v.values)), n_(v.length) {}
  // The row whose bytes hold [p, p + len), or -1 (between rows, or across a row's end).
  int64_t RowOf(const char* p, size_t len) {
    // Rows ending at or before p cannot hold it, nor can any row before them.
    while (row_ < n_ && rows_[row_].data() + rows_[row_].size() <= p) ++row_;
    if (row_ == n_) return -1;
    const std::string_view r = rows_[row_];
    return r.data() <= p && p + len <= r.data() + r.size() ? row_ : -1;
  }
  // The end of row `row` (to resume a scan after it).
  const char* End(int64_t row) const { return rows_[row].data() + rows_[row].size(); }

 private:
  const std::string_view* rows_;
  int64_t n_;
  int64_t row_ = 0;
};

// Calls hit(row) for every row of an ordered string Vector that contains `needle` (not empty),
// once per row, in row order: one substring search over the span instead of one per row.
template <typename Fn>
void ForEachRowContaining(const Vector& v, std::string_view needle, Fn hit) {
  const std::string_view span = RowSpan(v);
  RowWalker walker(v);
  size_t at = 0;
  for (;;) {
    const size_t pos = FindBytes(span, needle, at);
    if (pos == std::string_view::npos) return;
    const int64_t row = walker.RowOf(span.data() + pos, needle.size());
    if (row < 0) {
      at = pos + 1;  // between rows or across a row's end: keep looking from the next byte
      continue;
    }
    hit(row);
    at = static_cast<size_t>(walker.End(row) - span.data());  // the row is decided
  }
}

// Calls fn(offset) for each byte >= 0x80 of `span` (its offset from span.data()), in order. Text
// is mostly ASCII: 16 bytes are tested per step and only blocks holding such a byte are looked
// into.
template <typename Fn>
void ForEachHighByte(std::string_view span, Fn fn) {
  const auto* p = reinterpret_cast<const unsigned char*>(span.data());
  const size_t n = span.size();
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
    while (mask) {
      fn(i + static_cast<size_t>(__builtin_ctz(mask)));
      mask &= mask - 1;
    }
  }
#endif
  for (; i < n; ++i)
    if (p[i] >= 0x80) fn(i);
}

// Maps `n` bytes from src to dst with the ASCII case rule (A-Z to a-z for kLower, a-z to A-Z
// otherwise); bytes >= 0x80 are copied unchanged. dst and src may be the same.
template <bool kLower>
void MapAsciiCase(const unsigned char* src, unsigned char* dst, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  // Signed compares: bytes >= 0x80 are negative, so they are never in range.
  const __m128i lo = _mm_set1_epi8(static_cast<char>(kLower ? 'A' - 1 : 'a' - 1));
  const __m128i hi = _mm_set1_epi8(static_cast<char>(kLower ? 'Z' + 1 : 'z' + 1));
  const __m128i bit = _mm_set1_epi8(0x20);
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i in_range = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
    const __m128i y = _mm_xor_si128(x, _mm_and_si128(in_range, bit));  // flips the case bit
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), y);
  }
#endif
  for (; i < n; ++i) {
    const unsigned char c = src[i];
    dst[i] = kLower ? static_cast<unsigned char>(c + ((static_cast<unsigned>(c - 'A') < 26u) << 5))
                    : static_cast<unsigned char>(c - ((static_cast<unsigned>(c - 'a') < 26u) << 5));
  }
}

}  // namespace dflow::expr
