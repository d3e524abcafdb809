#include "dflow/text/chunker.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace dflow::text
