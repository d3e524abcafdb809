// Private: lookups into the generated tables in unicode_tables.cc (tools/gen_unicode_tables.py).
#pragma once
#include <cstdint>

namespace dflow::text::unicode {

enum Flag : uint8_t {
  kWhitespace = 1,   // Unicode White_Space (what HF's is_whitespace uses)
  kControl = 2,      // removed by BertNormalizer(clean_text): Cc/Cf/Co + NUL + U+FFFD, not \t\n\r
  kPunct = 4,        // BertPreTokenizer punctuation: ASCII punctuation or a P* category
  kCjk = 8,          // BertNormalizer(handle_chinese_chars) ranges
  kSentenceEnd = 16  // . ! ?  (chunker)
};

extern const uint16_t kFlagStage1[];
extern const uint8_t kFlagStage2[];
extern const uint16_t kLowerStage1[];
extern const uint32_t kLowerStage2[];
extern const uint16_t kStripStage1[];
extern const uint32_t kStripStage2[];
extern const uint16_t kFoldStage1[];
extern const uint32_t kFoldStage2[];
extern const uint32_t kMapPool[];

inline uint8_t flags(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kFlagStage2[(uint32_t(kFlagStage1[cp >> 8]) << 8) | (cp & 0xFF)];
}

// Normalizer mappings: lowercase only, strip accents only (NFD minus Mn), or both (strip then lower).
enum class MapMode : uint8_t { kNone, kLower, kStrip, kFold };

// A zero entry means the code point maps to itself; otherwise (pool offset << 4) | length, where the
// length may be 0 (the code point is removed).
inline uint32_t map_entry(uint32_t cp, MapMode mode) {
  if (cp >= 0x110000) return 0;
  const uint32_t i1 = cp >> 8, i2 = cp & 0xFF;
  switch (mode) {
    case MapMode::kLower: return kLowerStage2[(uint32_t(kLowerStage1[i1]) << 8) | i2];
    case MapMode::kStrip: return kStripStage2[(uint32_t(kStripStage1[i1]) << 8) | i2];
    case MapMode::kFold: return kFoldStage2[(uint32_t(kFoldStage1[i1]) << 8) | i2];
    default: return 0;
  }
}
inline const uint32_t* map_chars(uint32_t entry) { return kMapPool + (entry >> 4); }
inline uint32_t map_len(uint32_t entry) { return entry & 0xF; }

}  // namespace dflow::text::unicode
