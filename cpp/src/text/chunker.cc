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

// Number of plain ASCII bytes at the start of p[0, room) (bytes of class kPlain).
inline size_t plain_run(const unsigned char* p, size_t room) {
  size_t i = 0;
#if defined(__SSE2__)
  if (kLead.vector_ok) {
    const __m128i lim = _mm_set1_epi8(0x21), dot = _mm_set1_epi8('.'), bang = _mm_set1_epi8('!'),
                  q = _mm_set1_epi8('?');
    for (; i + 16 <= room; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      // Signed compare: bytes >= 0x80 are negative, so "< 0x21" also catches every non-ASCII byte.
      const __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, lim), _mm_cmpeq_epi8(v, dot)),
                                      _mm_or_si128(_mm_cmpeq_epi8(v, bang), _mm_cmpeq_epi8(v, q)));
      const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(sp));
      if (mask) return i + static_cast<size_t>(__builtin_ctz(mask));
    }
  }
#endif
  while (i < room && kLead.cls[p[i]] == kPlain) ++i;
  return i;
}

// Scans at most `limit` code points from byte b0 and returns the cut: the last boundary of the highest
// level at code point >= min_cut, else the end of the scanned window (at_end: the text ended first).
Cut scan_chars(std::string_view text, int64_t b0, int64_t limit, int64_t min_cut, bool* at_end, int64_t* scanned) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = base + text.size();
  const auto* p = base + b0;
  Cut last[4];
  int nl = 0;
  bool sentence = false, in_run = false;
  int64_t k = 0;
  while (k < limit && p < end) {
    const uint8_t cls = kLead.cls[*p];
    if (cls == kPlain) {
      const size_t room = static_cast<size_t>(std::min<int64_t>(limit - k, end - p));
      const size_t run = plain_run(p + 1, room - 1) + 1;
      p += run;
      k += static_cast<int64_t>(run);
      in_run = sentence = false;
      continue;
    }
    bool is_ws;
    if (cls < kMultiByte) {
      is_ws = cls == kAsciiSpace || cls == kNewline;
      ++p;
    } else {
      size_t len;
      is_ws = ws_at(p, end, &len);
      is_ws = is_ws && cls == kMaybeSpace;
      p += len;
    }
    ++k;
    if (is_ws) {
      if (!in_run) nl = 0;
      in_run = true;
      nl += cls == kNewline;
      if (k >= min_cut) {
        const int level = nl >= 2 ? kParagraphLevel : nl == 1 ? kLineLevel : sentence ? kSentenceLevel : kWordLevel;
        last[level] = Cut{k, p - base};
      }
    } else {
      in_run = false;
      sentence = cls == kSentence;
    }
  }
  *at_end = p >= end;
  *scanned = k;
  for (int l = kParagraphLevel; l >= kWordLevel; --l)
    if (last[l].cp > 0) return last[l];
  return Cut{k, p - base};
}

inline bool ascii_ws(unsigned char b) { return kLead.cls[b] == kAsciiSpace || kLead.cls[b] == kNewline; }

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

// The cut scan_chars makes in a window of m plain ASCII bytes w[0, m) (so code points are bytes)
// when the text goes on after it: the end of the whitespace run with the highest boundary level at
// its end, latest first among equals, at or after min_cut (1 <= min_cut <= m); m if there is none.
// The level of a run grows along it (it counts newlines), so each run's best boundary is its end
// (clipped to the window) and only run ends need checking: newline runs (found with memrchr) give
// paragraph and line cuts, runs after . ! ? sentence cuts, else the last whitespace a word cut.
int64_t ascii_cut(const unsigned char* w, int64_t m, int64_t min_cut) {
  int64_t line = -1;
  for (int64_t hi = m; hi > 0;) {
    const void* f = memrchr(w, '\n', static_cast<size_t>(hi));
    if (!f) break;
    const int64_t i = static_cast<const unsigned char*>(f) - w;
    int64_t rs = i, re = i + 1;
    while (rs > 0 && ascii_ws(w[rs - 1])) --rs;
    while (re < m && ascii_ws(w[re])) ++re;
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
    if (ascii_ws(w[i + 1])) {
      int64_t re = i + 2;
      while (re < m && ascii_ws(w[re])) ++re;
      if (re < min_cut) break;
      return re;
    }
    hi = i;
  }
  for (int64_t j = m - 1; j >= min_cut - 1; --j)
    if (ascii_ws(w[j])) return j + 1;
  return m;
}

// Byte offset of the code point `count` code points after byte b.
int64_t advance_cps(std::string_view text, int64_t b, int64_t count) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const int64_t n = static_cast<int64_t>(text.size());
  for (int64_t i = 0; i < count && b < n; ++i) {
    ++b;
    while (b < n && utf8::is_continuation(base[b])) ++b;
  }
  return b;
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
  int64_t q = cut.byte;
  for (int64_t i = 0; i < overlap; ++i) {
    --q;
    while (q > 0 && utf8::is_continuation(base[q])) --q;
  }
  const Cut fallback{cut.cp - overlap, q};
  int64_t pb = q - 1;
  while (pb > 0 && utf8::is_continuation(base[pb])) --pb;
  bool prev_ws = pb >= 0 && ws_at(base + pb, end, &len);
  int64_t cp = fallback.cp;
  for (int64_t b = q; b < cut.byte; ++cp) {
    const bool cur_ws = ws_at(base + b, end, &len);
    if (prev_ws && !cur_ws) return Cut{cp, b};
    prev_ws = cur_ws;
    b += static_cast<int64_t>(len);
  }
  return fallback;
}

int64_t count_code_points(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += !utf8::is_continuation(c);
  return n;
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
      const int64_t p = ascii_cut(base + sb, o.max_chars, o.overlap + 1);
      cut = Cut{p, sb + p};
    } else {
      cut = scan_chars(text, sb, o.max_chars, o.overlap + 1, &at_end, &scanned);
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
        const int64_t p = ascii_cut(base + sb, limit, min_cut);
        c = Cut{p, sb + p};
      } else {
        bool at_end = false;
        int64_t scanned = 0;
        c = scan_chars(text, sb, limit, min_cut, &at_end, &scanned);
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
