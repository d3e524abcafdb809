#include "dflow/text/chunker.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dflow/parallel.h"
#include "unicode_tables.h"
#include "utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace dflow::text {
namespace {

enum Level : int { kWordLevel = 0, kSentenceLevel = 1, kLineLevel = 2, kParagraphLevel = 3 };

// Lead-byte classes for the character chunker's scan: most bytes are plain ASCII and cost one lookup.
enum LeadClass : uint8_t { kPlain, kAsciiSpace, kNewline, kSentence, kMultiByte, kMaybeSpace };
struct LeadTable {
  uint8_t cls[256];
  // Every non-plain ASCII byte is a control/space (< 0x21) or one of . ! ? : the vector skip below
  // relies on it (checked here so a table change cannot silently break it).
  bool vector_ok = true;
  LeadTable() {
    for (int b = 0; b < 256; ++b) {
      if (b < 0x80) {
        const uint8_t f = unicode::flags(b);
        cls[b] = b == '\n' ? kNewline : (f & unicode::kWhitespace) ? kAsciiSpace
                 : (f & unicode::kSentenceEnd) ? kSentence : kPlain;
        if (cls[b] != kPlain && b >= 0x21 && b != '.' && b != '!' && b != '?') vector_ok = false;
      } else {
        // Non-ASCII White_Space starts with C2 (U+0085, U+00A0), E1 (U+1680), E2 (U+2000..), E3 (U+3000).
        cls[b] = (b == 0xC2 || b == 0xE1 || b == 0xE2 || b == 0xE3) ? kMaybeSpace : kMultiByte;
      }
    }
  }
};
const LeadTable kLead;

struct Cut {
  int64_t cp = -1, byte = -1;
};

inline bool ws_at(const unsigned char* p, const unsigned char* end, size_t* len) {
  const uint32_t cp = utf8::decode(p, end, len);
  return unicode::flags(cp) & unicode::kWhitespace;
}

inline bool ascii_ws(unsigned char b) { return kLead.cls[b] == kAsciiSpace || kLead.cls[b] == kNewline; }

// Byte length of the whitespace character at p (< end), 0 if it is not whitespace. Only ASCII bytes and
// the four lead bytes non-ASCII whitespace starts with need a look; every other byte is not whitespace.
inline size_t ws_len(const unsigned char* p, const unsigned char* end) {
  const uint8_t cls = kLead.cls[*p];
  if (cls == kAsciiSpace || cls == kNewline) return 1;
  if (cls != kMaybeSpace) return 0;
  size_t len;
  return ws_at(p, end, &len) ? len : 0;
}

// Byte length of the whitespace character that ends just before w + j (j > 0), 0 if none. The window
// w[0, m) holds whole code points.
inline size_t ws_len_before(const unsigned char* w, int64_t j, const unsigned char* end) {
  if (w[j - 1] < 0x80) return ascii_ws(w[j - 1]) ? 1 : 0;
  int64_t i = j - 1;
  while (i > 0 && j - i < 4 && utf8::is_continuation(w[i])) --i;
  const size_t len = ws_len(w + i, end);
  return static_cast<int64_t>(len) == j - i ? len : 0;
}

// 16-bit population count without the POPCNT instruction (not in baseline x86-64).
inline uint32_t popcount16(uint32_t x) {
  x = x - ((x >> 1) & 0x5555u);
  x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
  x = (x + (x >> 4)) & 0x0F0Fu;
  return (x + (x >> 8)) & 0x1Fu;
}

#if defined(__SSE2__)
// Bit i set: byte i of the 16 at p starts a code point (is not 10xxxxxx).
inline uint32_t lead_mask(const unsigned char* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpgt_epi8(v, _mm_set1_epi8(-65))));
}
#endif

// Code points in p[0, n): bytes that are not continuation bytes, 16 at a time.
int64_t count_code_points(const unsigned char* p, size_t n) {
  size_t i = 0;
  int64_t k = 0;
#if defined(__SSE2__)
  // Per-lane counters (each lane adds 1 per lead byte, at most 255 blocks before they are summed).
  const __m128i lim = _mm_set1_epi8(-65), zero = _mm_setzero_si128();
  while (i + 16 <= n) {
    __m128i acc = zero;
    const size_t stop = std::min(n - 15, i + 255 * 16);
    for (; i < stop; i += 16)
      acc = _mm_sub_epi8(acc, _mm_cmpgt_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), lim));
    const __m128i sums = _mm_sad_epu8(acc, zero);
    k += _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums));
  }
#endif
  for (; i < n; ++i) k += !utf8::is_continuation(p[i]);
  return k;
}

// Byte offset of the code point `count` code points into p[0, n), or n if the text has fewer; *taken is
// how many were passed (count, or all there are).
size_t advance(const unsigned char* p, size_t n, int64_t count, int64_t* taken) {
  size_t i = 0;
  int64_t k = 0;
#if defined(__SSE2__)
  // 64 bytes at a time while the code point we look for is beyond them, then 16 at a time.
  const __m128i lim = _mm_set1_epi8(-65), zero = _mm_setzero_si128();
  for (; i + 64 <= n; i += 64) {
    __m128i acc = zero;
    for (size_t j = 0; j < 64; j += 16)
      acc = _mm_sub_epi8(acc, _mm_cmpgt_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + j)), lim));
    const __m128i sums = _mm_sad_epu8(acc, zero);
    const int64_t c = _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums));
    if (k + c > count) break;
    k += c;
  }
  for (; i + 16 <= n; i += 16) {
    const int64_t c = popcount16(lead_mask(p + i));
    if (k + c > count) break;  // the code point we look for starts in this block
    k += c;
  }
#endif
  for (; i < n; ++i) {
    if (utf8::is_continuation(p[i])) continue;
    if (k == count) break;
    ++k;
  }
  *taken = k;
  return i;
}

// Byte offset b <= from where `count` code points start before `from` (the text has them).
int64_t retreat(const unsigned char* base, int64_t from, int64_t count) {
  int64_t i = from, k = 0;
#if defined(__SSE2__)
  for (; i >= 16; i -= 16) {
    const int64_t c = popcount16(lead_mask(base + i - 16));
    if (k + c >= count) break;
    k += c;
  }
#endif
  while (i > 0) {
    --i;
    if (!utf8::is_continuation(base[i]) && ++k == count) return i;
  }
  return 0;
}

// Offset of the last byte in w[lo, hi) that may start whitespace (an ASCII byte <= 0x20 or a lead byte
// of non-ASCII whitespace), or lo - 1.
int64_t last_space_candidate(const unsigned char* w, int64_t lo, int64_t hi) {
  int64_t i = hi;
#if defined(__SSE2__)
  const __m128i lim = _mm_set1_epi8(0x21), c2 = _mm_set1_epi8(static_cast<char>(0xC2)),
                e1 = _mm_set1_epi8(static_cast<char>(0xE1)), e3 = _mm_set1_epi8(static_cast<char>(0xE3));
  while (i - lo >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i - 16));
    // Unsigned v <= 0x20: min(v, 0x21) != 0x21. E1..E3: (v - E1) as unsigned <= 2, via the same trick.
    const __m128i low = _mm_xor_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, lim), lim), _mm_set1_epi8(-1));
    const __m128i e = _mm_sub_epi8(v, e1);
    const __m128i lead_e = _mm_cmpeq_epi8(_mm_min_epu8(e, _mm_set1_epi8(2)), e);
    const __m128i m = _mm_or_si128(_mm_or_si128(low, _mm_cmpeq_epi8(v, c2)), _mm_or_si128(lead_e, _mm_cmpeq_epi8(v, e3)));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(m));
    if (mask) return i - 16 + 31 - __builtin_clz(mask);
    i -= 16;
  }
#endif
  while (i > lo) {
    --i;
    const unsigned char b = w[i];
    if (b <= 0x20 || b == 0xC2 || (b >= 0xE1 && b <= 0xE3)) return i;
  }
  return lo - 1;
}

// Index of the last byte in w[0, hi) that is '.', '!' or '?', or -1.
int64_t last_sentence_char(const unsigned char* w, int64_t hi) {
  int64_t i = hi;
#if defined(__SSE2__)
  const __m128i dot = _mm_set1_epi8('.'), bang = _mm_set1_epi8('!'), q = _mm_set1_epi8('?');
  while (i >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i - 16));
    const __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, dot), _mm_or_si128(_mm_cmpeq_epi8(v, bang), _mm_cmpeq_epi8(v, q)));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(m));
    if (mask) return i - 16 + 31 - __builtin_clz(mask);
    i -= 16;
  }
#endif
  while (i > 0) {
    --i;
    if (w[i] == '.' || w[i] == '!' || w[i] == '?') return i;
  }
  return -1;
}

bool all_ascii(const unsigned char* p, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  __m128i acc = _mm_setzero_si128();
  for (; i + 64 <= n; i += 64) {
    acc = _mm_or_si128(acc, _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)),
                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16))));
    acc = _mm_or_si128(acc, _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 32)),
                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48))));
  }
  for (; i + 16 <= n; i += 16) acc = _mm_or_si128(acc, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
  if (_mm_movemask_epi8(acc)) return false;
#endif
  unsigned char a = 0;
  for (; i < n; ++i) a |= p[i];
  return a < 0x80;
}

// The cut in a window w[0, m) of whole code points when the text goes on after it: the end of the
// whitespace run with the highest boundary level at its end, latest first among equals, at or after
// byte min_cut (the first byte a cut may sit at, 1 <= min_cut <= m); m if there is none. Boundary
// levels: paragraph (the run holds two newlines), line (one), sentence (the run follows . ! ?), word.
// The level of a run grows along it (it counts newlines), so each run's best boundary is its end
// (clipped to the window) and only run ends need checking: newline runs (found with memrchr) give
// paragraph and line cuts, runs after . ! ? sentence cuts, else the last whitespace a word cut. Runs
// start at the window: whitespace before it does not count. kAscii: the window is plain ASCII, so
// whitespace is one byte (the same answer, without multi-byte checks). `end` bounds decoding.
template <bool kAscii>
int64_t window_cut(const unsigned char* w, int64_t m, int64_t min_cut, const unsigned char* end) {
  auto ws_here = [&](int64_t j) -> int64_t {  // whitespace length at j (< m)
    if constexpr (kAscii) return ascii_ws(w[j]) ? 1 : 0;
    else return static_cast<int64_t>(ws_len(w + j, end));
  };
  auto ws_before = [&](int64_t j) -> int64_t {  // whitespace length ending at j (> 0)
    if constexpr (kAscii) return ascii_ws(w[j - 1]) ? 1 : 0;
    else return static_cast<int64_t>(ws_len_before(w, j, end));
  };
  int64_t line = -1;
  for (int64_t hi = m; hi > 0;) {
    const void* f = memrchr(w, '\n', static_cast<size_t>(hi));
    if (!f) break;
    const int64_t i = static_cast<const unsigned char*>(f) - w;
    int64_t rs = i, re = i + 1, len;
    while (rs > 0 && (len = ws_before(rs))) rs -= len;
    while (re < m && (len = ws_here(re))) re += len;
    if (re < min_cut) break;  // runs further back end earlier still
    int nl = 0;
    for (int64_t j = rs; j < re && nl < 2; ++j) nl += w[j] == '\n';
    if (nl >= 2) return re;
    if (line < 0) line = re;
    hi = rs;
  }
  if (line >= 0) return line;
  for (int64_t hi = m - 1; hi > 0;) {  // a sentence end at m - 1 has no run inside the window
    const int64_t i = last_sentence_char(w, hi);
    if (i < 0) break;
    if (int64_t len = ws_here(i + 1)) {
      int64_t re = i + 1 + len;
      while (re < m && (len = ws_here(re))) re += len;
      if (re < min_cut) break;
      return re;
    }
    hi = i;
  }
  if constexpr (kAscii) {
    for (int64_t j = m - 1; j >= min_cut - 1; --j)
      if (ascii_ws(w[j])) return j + 1;
  } else {
    // The last whitespace character ending at or after min_cut: candidates by their first byte.
    for (int64_t hi = m; hi > 0;) {
      const int64_t j = last_space_candidate(w, 0, hi);
      if (j < 0) break;
      const int64_t len = ws_here(j);
      if (len && j + len >= min_cut) return j + len;
      if (j + 4 < min_cut) break;  // a character starting here or earlier ends before min_cut
      hi = j;
    }
  }
  return m;
}

// Scans at most `limit` code points from byte b0 and returns the cut: the last boundary of the highest
// level at code point >= min_cut, else the end of the scanned window (at_end: the text ended first;
// scanned: code points in the window). Code points are counted 16 bytes at a time and the boundary
// search only looks at bytes that can start whitespace or end a sentence.
Cut best_cut(std::string_view text, int64_t b0, int64_t limit, int64_t min_cut, bool* at_end, int64_t* scanned) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = base + text.size();
  const auto* w = base + b0;
  const size_t room = text.size() - static_cast<size_t>(b0);
  int64_t k1 = 0, k2 = 0;
  const size_t mb = advance(w, room, min_cut, &k1);
  if (k1 < min_cut) {  // the text ends before a cut could be taken
    *at_end = true;
    *scanned = k1;
    return Cut{k1, static_cast<int64_t>(text.size())};
  }
  const size_t we = mb + advance(w + mb, room - mb, limit - min_cut, &k2);
  *at_end = we >= room;
  *scanned = min_cut + k2;
  const int64_t cut = window_cut<false>(w, static_cast<int64_t>(we), static_cast<int64_t>(mb), end);
  // The cut's code point: counted over the shorter side of it (cuts tend to sit near the window's end).
  int64_t cp = *scanned;
  if (cut < static_cast<int64_t>(we)) {
    cp = cut - static_cast<int64_t>(mb) <= static_cast<int64_t>(we) - cut
             ? min_cut + count_code_points(w + mb, static_cast<size_t>(cut) - mb)
             : *scanned - count_code_points(w + cut, we - static_cast<size_t>(cut));
  }
  return Cut{cp, b0 + cut};
}

// Byte offset of the code point `count` code points after byte b.
int64_t advance_cps(std::string_view text, int64_t b, int64_t count) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  int64_t taken;
  return b + static_cast<int64_t>(advance(base + b, text.size() - static_cast<size_t>(b), count, &taken));
}

// The start of the next chunk: `overlap` code points before the cut, moved forward to the first word
// start before the cut if there is one. Positions are relative code points / absolute bytes.
Cut overlap_start(std::string_view text, Cut cut, int64_t overlap) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = base + text.size();
  size_t len;
  if (cut.byte >= overlap && all_ascii(base + cut.byte - overlap, static_cast<size_t>(overlap))) {
    const int64_t q = cut.byte - overlap;
    int64_t pb = q - 1;
    while (pb > 0 && utf8::is_continuation(base[pb])) --pb;
    bool prev_ws = pb >= 0 && ws_at(base + pb, end, &len);
    for (int64_t b = q; b < cut.byte; ++b) {
      const bool cur_ws = ascii_ws(base[b]);
      if (prev_ws && !cur_ws) return Cut{cut.cp - overlap + (b - q), b};
      prev_ws = cur_ws;
    }
    return Cut{cut.cp - overlap, q};
  }
  const int64_t q = retreat(base, cut.byte, overlap);
  const Cut fallback{cut.cp - overlap, q};
  // The first byte b in [q, cut) where whitespace ends: skip to whitespace (unless the overlap already
  // follows some), then past its run.
  int64_t b = q;
  if (!(q > 0 && ws_len_before(base, q, end))) {
    while (b < cut.byte) {
      const unsigned char c = base[b];
      if ((c <= 0x20 || c == 0xC2 || (c >= 0xE1 && c <= 0xE3)) && ws_len(base + b, end)) break;
      ++b;
    }
  }
  while (b < cut.byte && (len = ws_len(base + b, end))) b += static_cast<int64_t>(len);
  if (b >= cut.byte) return fallback;
  return Cut{cut.cp - count_code_points(base + b, static_cast<size_t>(cut.byte - b)), b};
}

int64_t count_code_points(std::string_view s) {
  return count_code_points(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

}  // namespace

void validate(const CharChunkOptions& o) {
  if (o.max_chars <= 0) throw std::invalid_argument("max_chars must be > 0, got " + std::to_string(o.max_chars));
  if (o.overlap < 0) throw std::invalid_argument("overlap must be >= 0, got " + std::to_string(o.overlap));
  if (o.overlap >= o.max_chars)
    throw std::invalid_argument("overlap (" + std::to_string(o.overlap) + ") must be < max_chars (" +
                                std::to_string(o.max_chars) + ")");
}

void validate(const TokenChunkOptions& o) {
  if (o.max_tokens <= 0) throw std::invalid_argument("max_tokens must be > 0, got " + std::to_string(o.max_tokens));
  if (o.overlap_tokens < 0)
    throw std::invalid_argument("overlap_tokens must be >= 0, got " + std::to_string(o.overlap_tokens));
  if (o.overlap_tokens >= o.max_tokens)
    throw std::invalid_argument("overlap_tokens (" + std::to_string(o.overlap_tokens) + ") must be < max_tokens (" +
                                std::to_string(o.max_tokens) + ")");
  if (!o.tokenizer) throw std::invalid_argument("chunking by tokens needs a tokenizer");
}

std::vector<ChunkSpan> chunk_chars(std::string_view text, const CharChunkOptions& o) {
  validate(o);
  std::vector<ChunkSpan> out;
  if (text.empty()) return out;
  out.reserve(text.size() / static_cast<size_t>(o.max_chars - o.overlap) + 1);
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const int64_t size = static_cast<int64_t>(text.size());
  const bool text_ascii = all_ascii(base, text.size());
  int64_t sc = 0, sb = 0;
  for (;;) {
    bool at_end = false;
    int64_t scanned = 0;
    if (size - sb <= o.max_chars) {  // the rest fits (it has no more code points than bytes)
      out.push_back({sc, sc + count_code_points(text.substr(static_cast<size_t>(sb))), sb, size});
      return out;
    }
    Cut cut;
    if (text_ascii || all_ascii(base + sb, static_cast<size_t>(o.max_chars))) {
      const int64_t p = window_cut<true>(base + sb, o.max_chars, o.overlap + 1, base + size);
      cut = Cut{p, sb + p};
    } else {
      cut = best_cut(text, sb, o.max_chars, o.overlap + 1, &at_end, &scanned);
    }
    if (at_end) {  // the rest fits
      out.push_back({sc, sc + scanned, sb, static_cast<int64_t>(text.size())});
      return out;
    }
    out.push_back({sc, sc + cut.cp, sb, cut.byte});
    const Cut next = o.overlap > 0 ? overlap_start(text, cut, o.overlap) : cut;
    sc += next.cp;
    sb = next.byte;
  }
}

namespace {

// Reused per thread by chunk_tokens: the spans of the whole text's tokens, and the byte offsets of
// the code points in the overlap region of a cut.
struct TokenScratch {
  std::vector<TokenSpan> toks;
  std::vector<int64_t> cp_bytes;
  std::vector<uint8_t> cp_ws;
};

// Not inlined, so the hot code gets a plain reference instead of re-resolving the thread-local.
__attribute__((noinline)) TokenScratch& token_scratch() {
  thread_local TokenScratch s;
  return s;
}

}  // namespace

std::vector<ChunkSpan> chunk_tokens(std::string_view text, const TokenChunkOptions& o) {
  validate(o);
  std::vector<ChunkSpan> out;
  if (text.empty()) return out;
  TokenScratch& st = token_scratch();
  std::vector<TokenSpan>& toks = st.toks;
  toks.clear();
  toks.reserve(text.size() / 3 + 4);
  o.tokenizer->token_spans(text, &toks);
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* tend = base + text.size();
  const int64_t ntok = static_cast<int64_t>(toks.size());
  const int64_t n_cp = count_code_points(text);
  const bool text_ascii = n_cp == static_cast<int64_t>(text.size());
  out.reserve(static_cast<size_t>(ntok / (o.max_tokens - o.overlap_tokens) + 2));
  int64_t sc = 0, sb = 0, ti = 0;
  for (;;) {
    if (sc >= n_cp) return out;  // a cut between tokens of the last code point ended the text
    if (ntok - ti <= o.max_tokens) {
      out.push_back({sc, n_cp, sb, static_cast<int64_t>(text.size())});
      return out;
    }
    const int64_t te = ti + o.max_tokens;
    const int64_t limit = toks[te].start - sc;                      // the cut may not pass token te's start
    const int64_t min_cut = toks[ti + o.overlap_tokens].end - sc;  // ... and must hold > overlap tokens
    Cut c;
    if (min_cut < limit) {
      // The best boundary in [min_cut, limit]; none: split between tokens at the limit.
      if (text_ascii || all_ascii(base + sb, static_cast<size_t>(limit))) {
        const int64_t p = window_cut<true>(base + sb, limit, min_cut, tend);
        c = Cut{p, sb + p};
      } else {
        bool at_end = false;
        int64_t scanned = 0;
        c = best_cut(text, sb, limit, min_cut, &at_end, &scanned);
      }
    } else {
      // Code points are never split, so when the tokens of one code point straddle the limit the
      // chunk takes them all (that is the only way to exceed max_tokens).
      c = Cut{min_cut, advance_cps(text, sb, min_cut)};
    }
    const int64_t cut = c.cp;
    out.push_back({sc, sc + cut, sb, c.byte});
    if (sc + cut >= n_cp) return out;
    // Tokens [ti, tb) end inside this chunk.
    int64_t tb = ti;
    while (tb < ntok && toks[tb].end <= sc + cut) ++tb;
    int64_t next = cut, next_byte = c.byte;
    if (o.overlap_tokens > 0) {
      const int64_t k0 = std::max(tb - o.overlap_tokens, ti + 1);
      if (k0 < tb) {
        // Byte offset and whitespace flag of every code point from just before token k0 to the cut
        // (relative code point lo - 1 + j at index j), walking back from the cut.
        const int64_t lo = std::max<int64_t>(toks[k0].start - sc, 1);
        const size_t span = static_cast<size_t>(cut - lo + 2);
        st.cp_bytes.resize(span);
        st.cp_ws.resize(span);
        int64_t q = c.byte;
        for (size_t j = span; j-- > 0;) {
          if (j + 1 < span) {
            --q;
            while (q > 0 && utf8::is_continuation(base[q])) --q;
          }
          st.cp_bytes[j] = q;
          if (j + 1 < span || q < static_cast<int64_t>(text.size())) {
            size_t len;
            st.cp_ws[j] = ws_at(base + q, tend, &len);
          } else {
            st.cp_ws[j] = 0;
          }
        }
        // Relative code point k (0 < k < cut) starts a word: whitespace before, none at k.
        auto word_start = [&](int64_t k) {
          if (k < lo) return false;
          const size_t j = static_cast<size_t>(k - lo + 1);
          return st.cp_ws[j - 1] && !st.cp_ws[j];
        };
        // Candidates start a code point of their own (tokens of one code point stay together).
        auto own_start = [&](int64_t k) { return toks[k - 1].start < toks[k].start; };
        int64_t pick = -1, first = -1;
        for (int64_t k = k0; k < tb; ++k) {
          if (!own_start(k)) continue;
          if (first < 0) first = k;
          if (word_start(toks[k].start - sc)) {
            pick = k;
            break;
          }
        }
        if (pick < 0) pick = first;
        if (pick >= 0 && toks[pick].start > sc) {
          next = toks[pick].start - sc;
          next_byte = st.cp_bytes[static_cast<size_t>(next - lo + 1)];
        }
      }
    }
    sc += next;
    sb = next_byte;
    while (ti < ntok && toks[ti].start < sc) ++ti;
  }
}

namespace {

template <class Off, class Opts, class Fn>
ChunkBatch chunk_batch(const char* data, const Off* offsets, int64_t n, const Opts& opts, int threads, Fn fn) {
  validate(opts);
  std::vector<std::vector<ChunkSpan>> per(static_cast<size_t>(n));
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const std::string_view s(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]));
      per[i] = fn(s, opts);
    }
  });
  ChunkBatch out;
  out.counts.resize(static_cast<size_t>(n));
  size_t total = 0;
  for (const auto& v : per) total += v.size();
  out.spans.reserve(total);
  for (int64_t i = 0; i < n; ++i) {
    out.counts[i] = static_cast<int64_t>(per[i].size());
    out.spans.insert(out.spans.end(), per[i].begin(), per[i].end());
  }
  return out;
}

}  // namespace

ChunkBatch chunk_chars_batch(const char* data, const int64_t* offsets, int64_t n, const CharChunkOptions& opts,
                             int threads) {
  return chunk_batch(data, offsets, n, opts, threads, chunk_chars);
}
ChunkBatch chunk_chars_batch(const char* data, const int32_t* offsets, int64_t n, const CharChunkOptions& opts,
                             int threads) {
  return chunk_batch(data, offsets, n, opts, threads, chunk_chars);
}
ChunkBatch chunk_tokens_batch(const char* data, const int64_t* offsets, int64_t n, const TokenChunkOptions& opts,
                              int threads) {
  return chunk_batch(data, offsets, n, opts, threads, chunk_tokens);
}
ChunkBatch chunk_tokens_batch(const char* data, const int32_t* offsets, int64_t n, const TokenChunkOptions& opts,
                              int threads) {
  return chunk_batch(data, offsets, n, opts, threads, chunk_tokens);
}

}  // namespace dflow::text
