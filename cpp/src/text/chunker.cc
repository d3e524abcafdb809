#include "dflow/text/chunker.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dflow/parallel.h"
#include "unicode_tables.h"
#include "utf8.h"

namespace dflow::text {
namespace {

enum Level : int { kWordLevel = 0, kSentenceLevel = 1, kLineLevel = 2, kParagraphLevel = 3 };

// One pass over a window of code points starting at a chunk start: byte offset of every code point,
// whitespace flags, and the last boundary of each level at or after `min_cut` (relative positions).
struct Window {
  std::vector<int64_t> bytes;  // bytes[k] = byte offset of code point start+k; bytes[m] = end of window
  std::vector<uint8_t> ws;     // ws[k] = code point start+k is whitespace
  int64_t last[4];
  int64_t m = 0;        // code points scanned
  bool at_end = false;  // the window reached the end of the text

  // Scans at most `limit` code points from byte `b0`; boundaries p (1..limit) are recorded if p >= min_cut.
  void scan(std::string_view text, int64_t b0, int64_t limit, int64_t min_cut) {
    bytes.clear();
    ws.clear();
    std::fill(std::begin(last), std::end(last), int64_t(-1));
    const auto* base = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = base + text.size();
    const auto* p = base + b0;
    int nl = 0;
    bool sentence = false, in_run = false;
    int64_t k = 0;
    for (; k < limit && p < end; ++k) {
      bytes.push_back(p - base);
      uint32_t cp;
      uint8_t f;
      if (*p < 0x80) {
        cp = *p++;
        f = unicode::flags(cp);
      } else {
        size_t len;
        cp = utf8::decode(p, end, &len);
        p += len;
        f = unicode::flags(cp);
      }
      const bool is_ws = f & unicode::kWhitespace;
      ws.push_back(is_ws);
      if (is_ws) {
        if (!in_run) nl = 0;
        in_run = true;
        nl += (cp == '\n');
        if (k + 1 >= min_cut) {
          const int level = nl >= 2 ? kParagraphLevel : nl == 1 ? kLineLevel : sentence ? kSentenceLevel : kWordLevel;
          last[level] = k + 1;
        }
      } else {
        in_run = false;
        sentence = f & unicode::kSentenceEnd;
      }
    }
    bytes.push_back(p - base);
    m = k;
    at_end = p >= end;
  }

  int64_t best_cut() const {
    for (int l = kParagraphLevel; l >= kWordLevel; --l)
      if (last[l] > 0) return last[l];
    return -1;
  }
  bool word_start(int64_t k) const { return k > 0 && k < m && ws[k - 1] && !ws[k]; }
};

Window& window() {
  thread_local Window w;
  return w;
}

// Lead-byte classes for the character chunker's scan: most bytes are plain ASCII and cost one lookup.
enum LeadClass : uint8_t { kPlain, kAsciiSpace, kNewline, kSentence, kMultiByte, kMaybeSpace };
struct LeadTable {
  uint8_t cls[256];
  LeadTable() {
    for (int b = 0; b < 256; ++b) {
      if (b < 0x80) {
        const uint8_t f = unicode::flags(b);
        cls[b] = b == '\n' ? kNewline : (f & unicode::kWhitespace) ? kAsciiSpace
                 : (f & unicode::kSentenceEnd) ? kSentence : kPlain;
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
      ++p;
      ++k;
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

// The start of the next chunk: `overlap` code points before the cut, moved forward to the first word
// start before the cut if there is one. Positions are relative code points / absolute bytes.
Cut overlap_start(std::string_view text, Cut cut, int64_t overlap) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = base + text.size();
  int64_t q = cut.byte;
  for (int64_t i = 0; i < overlap; ++i) {
    --q;
    while (q > 0 && utf8::is_continuation(base[q])) --q;
  }
  const Cut fallback{cut.cp - overlap, q};
  int64_t pb = q - 1;
  while (pb > 0 && utf8::is_continuation(base[pb])) --pb;
  size_t len;
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
  int64_t sc = 0, sb = 0;
  for (;;) {
    bool at_end = false;
    int64_t scanned = 0;
    const Cut cut = scan_chars(text, sb, o.max_chars, o.overlap + 1, &at_end, &scanned);
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

std::vector<ChunkSpan> chunk_tokens(std::string_view text, const TokenChunkOptions& o) {
  validate(o);
  std::vector<ChunkSpan> out;
  if (text.empty()) return out;
  std::vector<int32_t> ids;
  std::vector<TokenSpan> toks;
  ids.reserve(text.size() / 3 + 4);
  toks.reserve(text.size() / 3 + 4);
  o.tokenizer->encode(text, false, &ids, &toks);
  const int64_t ntok = static_cast<int64_t>(toks.size());
  const int64_t n_cp = count_code_points(text);
  Window& w = window();
  int64_t sc = 0, sb = 0, ti = 0;
  for (;;) {
    if (sc >= n_cp) return out;  // a cut between tokens of the last code point ended the text
    if (ntok - ti <= o.max_tokens) {
      out.push_back({sc, n_cp, sb, static_cast<int64_t>(text.size())});
      return out;
    }
    const int64_t te = ti + o.max_tokens;
    const int64_t limit = toks[te].start - sc;                 // the cut may not pass token te's start
    const int64_t min_cut = toks[ti + o.overlap_tokens].end - sc;  // ... and must hold > overlap tokens
    w.scan(text, sb, std::max<int64_t>(limit, min_cut), min_cut);
    int64_t cut = -1;
    for (int l = kParagraphLevel; l >= kWordLevel && cut < 0; --l)
      if (w.last[l] > 0 && w.last[l] <= limit) cut = w.last[l];
    // No boundary: split between tokens. Code points are never split, so when the tokens of one code
    // point straddle the limit the chunk takes them all (that is the only way to exceed max_tokens).
    if (cut < 0) cut = std::max(limit, min_cut);
    out.push_back({sc, sc + cut, sb, w.bytes[cut]});
    if (sc + cut >= n_cp) return out;
    // Tokens [ti, tb) end inside this chunk.
    int64_t tb = ti;
    while (tb < ntok && toks[tb].end <= sc + cut) ++tb;
    int64_t next = cut;
    if (o.overlap_tokens > 0) {
      const int64_t k0 = std::max(tb - o.overlap_tokens, ti + 1);
      // Candidates start a code point of their own (tokens of one code point stay together).
      auto own_start = [&](int64_t k) { return toks[k - 1].start < toks[k].start; };
      int64_t pick = -1, first = -1;
      for (int64_t k = k0; k < tb; ++k) {
        if (!own_start(k)) continue;
        if (first < 0) first = k;
        if (w.word_start(toks[k].start - sc)) {
          pick = k;
          break;
        }
      }
      if (pick < 0) pick = first;
      if (pick >= 0 && toks[pick].start > sc) next = toks[pick].start - sc;
    }
    sc += next;
    sb = w.bytes[next];
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
