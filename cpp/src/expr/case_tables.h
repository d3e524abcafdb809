// Private: lookups into the generated tables of case_tables.cc (tools/gen_case_tables.py), which
// are read off Python's own str.lower/str.upper/str.isspace.
#pragma once
#include <cstdint>

namespace dflow::expr::unicode {

extern const uint16_t kLowerStage1[];
extern const uint32_t kLowerStage2[];
extern const uint16_t kUpperStage1[];
extern const uint32_t kUpperStage2[];
extern const uint32_t kCasePool[];
extern const uint16_t kFlagStage1[];
extern const uint8_t kFlagStage2[];

enum Flag : uint8_t {
  kCased = 1,          // counts as cased for the Final_Sigma rule of str.lower
  kCaseIgnorable = 2,  // skipped by the Final_Sigma rule
  kSpace = 4,          // str.isspace()
};

inline uint8_t flags(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kFlagStage2[(uint32_t(kFlagStage1[cp >> 8]) << 8) | (cp & 0xFF)];
}

// 0: the code point maps to itself; else (offset into kCasePool << 2) | length (1..3 code points).
inline uint32_t lower_entry(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kLowerStage2[(uint32_t(kLowerStage1[cp >> 8]) << 8) | (cp & 0xFF)];
}
inline uint32_t upper_entry(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kUpperStage2[(uint32_t(kUpperStage1[cp >> 8]) << 8) | (cp & 0xFF)];
}

}  // namespace dflow::expr::unicode
