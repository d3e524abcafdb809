#include "dflow/arrow/utf8_check.h"

#include <cstdint>
#include <cstring>

namespace dflow {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ull;

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Validates p[0..n) from its first non-ASCII byte on; ASCII runs are skipped 8 bytes at a time.
bool ValidFrom(const unsigned char* p, size_t n, bool* ascii) {
  size_t i = 0;
  *ascii = true;
  while (i < n) {
    // 32 bytes per test while the text is ASCII.
    while (i + 32 <= n) {
      uint64_t w[4];
      std::memcpy(w, p + i, 32);
      if (((w[0] | w[1] | w[2] | w[3]) & kHighBits) != 0) break;
      i += 32;
    }
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & kHighBits) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    *ascii = false;
    // Table 3-7 of the Unicode standard: the well-formed byte sequences.
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (!IsContinuation(p[i + k])) return false;
    i += len;
  }
  return true;
}

template <typename Offset>
bool Check(const Array& a) {
  const Offset* o = static_cast<const Offset*>(a.buffer(1)) + a.offset();
  const int64_t n = a.length();
  for (int64_t i = 0; i < n; ++i)
    if (o[i + 1] < o[i]) return false;
  const auto* data = static_cast<const unsigned char*>(a.buffer(2));
  const int64_t first = o[0], last = o[n];
  if (last == first) return true;
  if (data == nullptr || first < 0) return false;
  // The values lie back to back: if their concatenation is valid and no value starts inside a
  // character, each value is valid. Mostly-ASCII text is then checked in one pass at memory
  // speed instead of one call per value.
  bool ascii = true;
  if (!ValidFrom(data + first, static_cast<size_t>(last - first), &ascii)) return false;
  if (ascii) return true;
  for (int64_t i = 0; i < n; ++i)
    if (o[i] < last && IsContinuation(data[o[i]])) return false;
  return true;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  bool ascii;
  return ValidFrom(reinterpret_cast<const unsigned char*>(s.data()), s.size(), &ascii);
}

std::optional<bool> StringsAreValidUtf8(const Array& a) {
  if (a.format() == "u") return Check<int32_t>(a);
  if (a.format() == "U") return Check<int64_t>(a);
  return std::nullopt;
}

}  // namespace dflow
