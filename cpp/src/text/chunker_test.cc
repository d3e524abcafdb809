#include "dflow/text/chunker.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "unicode_tables.h"
#include "utf8.h"

namespace dflow::text {
namespace {

// Code point count of a UTF-8 string (continuation bytes are 10xxxxxx).
int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The contract in chunker.h: in order, covering, within the limit, overlap bounded, spans on
// code point boundaries with byte offsets matching the code point offsets.
void ExpectContract(const std::string& text, const std::vector<ChunkSpan>& spans, int64_t max_chars,
                    int64_t overlap) {
  if (text.empty()) {
    EXPECT_TRUE(spans.empty());
    return;
  }
  ASSERT_FALSE(spans.empty());
  EXPECT_EQ(spans.front().start, 0);
  EXPECT_EQ(spans.back().end, CodePoints(text));
  EXPECT_EQ(spans.back().byte_end, static_cast<int64_t>(text.size()));
  for (size_t i = 0; i < spans.size(); ++i) {
    const ChunkSpan& s = spans[i];
    EXPECT_LT(s.start, s.end);
    EXPECT_LE(s.end - s.start, max_chars);
    std::string_view piece(text.data() + s.byte_start, static_cast<size_t>(s.byte_end - s.byte_start));
    EXPECT_EQ(CodePoints(piece), s.end - s.start) << "chunk " << i;
    EXPECT_EQ(CodePoints(std::string_view(text.data(), static_cast<size_t>(s.byte_start))), s.start);
    if (i > 0) {
      const ChunkSpan& prev = spans[i - 1];
      EXPECT_GT(s.start, prev.start);
      EXPECT_GT(s.end, prev.end);
      EXPECT_LE(s.start, prev.end);
      EXPECT_LE(prev.end - s.start, overlap);
    }
  }
}

TEST(ChunkChars, PrefersParagraphThenSentenceThenWordBoundaries) {
  std::string text = "First paragraph here.\n\nSecond one. It has two sentences.";
  auto spans = chunk_chars(text, {30, 0});
  ExpectContract(text, spans, 30, 0);
  ASSERT_GE(spans.size(), 2u);
  EXPECT_EQ(text.substr(0, static_cast<size_t>(spans[0].byte_end)), "First paragraph here.\n\n");
  EXPECT_EQ(text.substr(static_cast<size_t>(spans[1].byte_start), static_cast<size_t>(spans[1].byte_end - spans[1].byte_start)),
            "Second one. ");
}

TEST(ChunkChars, NeverSplitsACodePoint) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // é € 😀, no spaces
  for (int64_t max : {1, 2, 3, 7, 64}) {
    auto spans = chunk_chars(text, {max, 0});
    ExpectContract(text, spans, max, 0);
  }
}

TEST(ChunkChars, OverlapRepeatsAtMostOverlapCharacters) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "word" + std::to_string(i) + (i % 17 == 16 ? ". " : " ");
  auto spans = chunk_chars(text, {100, 20});
  ExpectContract(text, spans, 100, 20);
  bool overlapped = false;
  for (size_t i = 1; i < spans.size(); ++i) overlapped |= spans[i].start < spans[i - 1].end;
  EXPECT_TRUE(overlapped);
}

TEST(ChunkChars, EmptyAndWhitespaceTexts) {
  EXPECT_TRUE(chunk_chars("", {10, 0}).empty());
  auto spans = chunk_chars("   \n\n  ", {3, 0});
  ExpectContract("   \n\n  ", spans, 3, 0);
}

TEST(ChunkChars, InvalidOptionsThrow) {
  EXPECT_THROW(chunk_chars("abc", {0, 0}), std::invalid_argument);
  EXPECT_THROW(chunk_chars("abc", {10, -1}), std::invalid_argument);
  EXPECT_THROW(chunk_chars("abc", {10, 10}), std::invalid_argument);
}

TEST(ChunkChars, BatchFormMatchesOneByOne) {
  std::vector<std::string> texts = {"alpha beta gamma delta", "", "x", "one. two. three. four. five."};
  std::string data;
  std::vector<int64_t> offsets = {0};
  for (const auto& t : texts) {
    data += t;
    offsets.push_back(static_cast<int64_t>(data.size()));
  }
  ChunkBatch batch = chunk_chars_batch(data.data(), offsets.data(), static_cast<int64_t>(texts.size()), {8, 2}, 2);
  ASSERT_EQ(batch.counts.size(), texts.size());
  size_t at = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = chunk_chars(texts[i], {8, 2});
    ASSERT_EQ(batch.counts[i], static_cast<int64_t>(one.size()));
    for (const ChunkSpan& s : one) {
      EXPECT_EQ(batch.spans[at].start, s.start);
      EXPECT_EQ(batch.spans[at].end, s.end);
      ++at;
    }
  }
  EXPECT_EQ(at, batch.spans.size());
}

// The cut rule of chunker.h, one code point at a time and nothing else: the reference the chunker's
// vectorised boundary search must agree with exactly.
struct RefCut {
  int64_t cp = -1, byte = -1;
};

bool RefIsSpace(std::string_view text, int64_t b, size_t* len) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  return unicode::flags(utf8::decode(p + b, p + text.size(), len)) & unicode::kWhitespace;
}

RefCut RefScan(std::string_view text, int64_t b0, int64_t limit, int64_t min_cut, bool* at_end, int64_t* scanned) {
  RefCut last[4];
  int nl = 0;
  bool sentence = false, in_run = false;
  int64_t k = 0, b = b0;
  const int64_t n = static_cast<int64_t>(text.size());
  while (k < limit && b < n) {
    size_t len;
    const bool ws = RefIsSpace(text, b, &len);
    const char c = text[static_cast<size_t>(b)];
    b += static_cast<int64_t>(len);
    ++k;
    if (ws) {
      if (!in_run) nl = 0;
      in_run = true;
      nl += c == '\n';
      if (k >= min_cut) last[nl >= 2 ? 3 : nl == 1 ? 2 : sentence ? 1 : 0] = RefCut{k, b};
    } else {
      in_run = false;
      sentence = c == '.' || c == '!' || c == '?';
    }
  }
  *at_end = b >= n;
  *scanned = k;
  for (int l = 3; l >= 0; --l)
    if (last[l].cp > 0) return last[l];
  return RefCut{k, b};
}

std::vector<ChunkSpan> RefChunkChars(std::string_view text, int64_t max_chars, int64_t overlap) {
  std::vector<ChunkSpan> out;
  int64_t sc = 0, sb = 0;
  while (!text.empty()) {
    bool at_end;
    int64_t scanned;
    const RefCut cut = RefScan(text, sb, max_chars, overlap + 1, &at_end, &scanned);
    if (at_end) {
      out.push_back({sc, sc + scanned, sb, static_cast<int64_t>(text.size())});
      break;
    }
    out.push_back({sc, sc + cut.cp, sb, cut.byte});
    RefCut next = cut;
    if (overlap > 0) {
      // Back `overlap` code points, then forward to the first word start before the cut.
      int64_t q = cut.byte;
      for (int64_t i = 0; i < overlap; ++i) {
        --q;
        while (q > 0 && utf8::is_continuation(static_cast<unsigned char>(text[static_cast<size_t>(q)]))) --q;
      }
      next = RefCut{cut.cp - overlap, q};
      int64_t pb = q - 1;
      while (pb > 0 && utf8::is_continuation(static_cast<unsigned char>(text[static_cast<size_t>(pb)]))) --pb;
      size_t len;
      bool prev_ws = pb >= 0 && RefIsSpace(text, pb, &len);
      int64_t cp = cut.cp - overlap;
      for (int64_t b = q; b < cut.byte; ++cp) {
        const bool ws = RefIsSpace(text, b, &len);
        if (prev_ws && !ws) {
          next = RefCut{cp, b};
          break;
        }
        prev_ws = ws;
        b += static_cast<int64_t>(len);
      }
    }
    sc += next.cp;
    sb = next.byte;
  }
  return out;
}

TEST(ChunkChars, AgreesWithTheOneCodePointAtATimeReference) {
  // Pieces around every class the boundary search treats apart: ASCII and multi-byte whitespace
  // (U+0085, U+00A0, U+1680, U+2003, U+2028, U+3000), newlines, sentence ends, CJK and kana (lead bytes
  // E3..E9, like the ideographic space's), emoji, combining marks, lead bytes C2/E1/E2 of non-spaces.
  const std::vector<std::string> pieces = {
      "word", "x", "Hello", " ", "  ", "\n", "\n\n", "\t", "\r\n", ". ", "! ", "?", ".", "\xC2\x85", "\xC2\xA0",
      "\xE1\x9A\x80", "\xE2\x80\x83", "\xE2\x80\xA8", "\xE3\x80\x80", "\xE4\xB8\xAD\xE6\x96\x87", "\xE3\x81\x82",
      "\xE3\x80\x82", "\xF0\x9F\x98\x80", "e\xCC\x81", "\xC2\xA9", "\xE1\xBA\xA1", "\xE2\x80\x94", "\xD0\xB6\xD0\xB8",
      "supercalifragilistic"};
  std::mt19937 rng(12345);
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 120);
    // Some texts lean on one piece (long runs of one kind: no spaces at all, only spaces, ...).
    const size_t bias = rng() % pieces.size();
    for (int i = 0; i < n; ++i) text += pieces[rng() % 3 == 0 ? bias : rng() % pieces.size()];
    const int64_t max_chars = 1 + static_cast<int64_t>(rng() % 60);
    const int64_t overlap = static_cast<int64_t>(rng() % static_cast<uint32_t>(max_chars));
    const auto got = chunk_chars(text, {max_chars, overlap});
    const auto want = RefChunkChars(text, max_chars, overlap);
    ASSERT_EQ(got.size(), want.size()) << "round " << round << " max " << max_chars << " overlap " << overlap;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].start, want[i].start) << "round " << round << " chunk " << i;
      ASSERT_EQ(got[i].end, want[i].end) << "round " << round << " chunk " << i;
      ASSERT_EQ(got[i].byte_start, want[i].byte_start) << "round " << round << " chunk " << i;
      ASSERT_EQ(got[i].byte_end, want[i].byte_end) << "round " << round << " chunk " << i;
    }
  }
}

}  // namespace
}  // namespace dflow::text
