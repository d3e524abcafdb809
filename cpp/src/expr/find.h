// Private: substring search for the string kernels. glibc's memmem is generic (two-way); for the
// short needles expressions use ("python", "(") a SIMD filter on the needle's first and last
// bytes (W. Muła, "SIMD-friendly algorithms for substring searching") checks 16 positions per
// step and verifies candidates with memcmp.
#pragma once
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace dflow::expr {

inline size_t FindBytes(std::string_view hay, std::string_view needle, size_t from = 0) {
  constexpr size_t npos = std::string_view::npos;
  if (needle.empty()) return from <= hay.size() ? from : npos;
  if (from >= hay.size() || hay.size() - from < needle.size()) return npos;
  const char* h = hay.data() + from;
  const size_t n = hay.size() - from, k = needle.size();
  if (k == 1) {
    const void* hit = std::memchr(h, needle[0], n);
    return hit ? static_cast<size_t>(static_cast<const char*>(hit) - hay.data()) : npos;
  }
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i first = _mm_set1_epi8(needle[0]);
  const __m128i last = _mm_set1_epi8(needle[k - 1]);
  for (; i + k - 1 + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i + k - 1));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last))));
    while (mask) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctz(mask));
      if (std::memcmp(h + i + bit + 1, needle.data() + 1, k - 2) == 0) return from + i + bit;
      mask &= mask - 1;
    }
  }
#endif
  for (; i + k <= n; ++i) {
    if (h[i] == needle[0] && h[i + k - 1] == needle[k - 1] && std::memcmp(h + i, needle.data(), k) == 0)
      return from + i;
  }
  return npos;
}

}  // namespace dflow::expr
