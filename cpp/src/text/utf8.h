// Private: minimal UTF-8 helpers shared by the tokenizer and the chunker.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dflow::text::utf8 {

// Decodes the code point at p (p < end). Invalid or truncated sequences decode as U+FFFD and consume
// one byte, so malformed input never stalls or reads past `end`.
inline uint32_t decode(const unsigned char* p, const unsigned char* end, size_t* len) {
  const unsigned char b = p[0];
  if (b < 0x80) { *len = 1; return b; }
  size_t n; uint32_t cp;
  if ((b & 0xE0) == 0xC0) { n = 2; cp = b & 0x1F; }
  else if ((b & 0xF0) == 0xE0) { n = 3; cp = b & 0x0F; }
  else if ((b & 0xF8) == 0xF0) { n = 4; cp = b & 0x07; }
  else { *len = 1; return 0xFFFD; }
  if (static_cast<size_t>(end - p) < n) { *len = 1; return 0xFFFD; }
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) { *len = 1; return 0xFFFD; }
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  *len = n;
  return cp;
}

inline void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace dflow::text::utf8
