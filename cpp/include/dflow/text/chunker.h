// Native text chunkers: split UTF-8 text into chunks by characters or by WordPiece tokens.
//
// Contract (shared by every entry point below):
// - Chunks are spans of the input: code point offsets (Python str indices) and the matching UTF-8 byte
//   offsets, end exclusive. A span never starts or ends inside a code point.
// - Chunks are in order and cover the text: the first starts at 0, the last ends at the text's end,
//   starts and ends strictly increase, and each chunk starts at or before the previous one's end.
//   With overlap 0 consecutive chunks touch exactly; otherwise they share at most `overlap` characters
//   (or `overlap_tokens` tokens), snapped forward to the start of a word when one is in range.
// - A chunk ends at the most meaningful boundary that fits the limit: after a blank line (paragraph),
//   after a line break, after a sentence end (. ! ? followed by whitespace), after whitespace (word),
//   else at the limit itself (a code point for chars, a token boundary for tokens). Boundaries sit after
//   the whitespace, so chunks start with the next word. A cut is only taken if the chunk it makes holds
//   more than `overlap` characters/tokens, so every chunk advances past the overlap it repeats.
// - Limits: a char chunk never exceeds max_chars code points. A token chunk never holds more than
//   max_tokens tokens, where tokens are those of the whole text's tokenization (special tokens excluded)
//   whose spans lie inside the chunk; a word with more than max_tokens tokens is split between tokens.
//   The only exception: code points are never split, so when the tokens of one code point straddle the
//   limit (a Hangul syllable decomposes into up to 3 word pieces) the chunk takes all of them and may
//   hold up to (pieces of that code point - 1) extra tokens. Re-tokenizing a chunk that starts inside a
//   word may give a different count (a "##" piece becomes a word-initial piece).
// - Empty text gives zero chunks; any other text (whitespace only included) gives at least one.
// - Invalid options (max <= 0, overlap < 0, overlap >= max, no tokenizer) throw std::invalid_argument.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "dflow/text/tokenizer.h"

namespace dflow::text {

struct ChunkSpan {
  int64_t start;  // code point offsets
  int64_t end;
  int64_t byte_start;  // UTF-8 byte offsets of the same span
  int64_t byte_end;
};

struct CharChunkOptions {
  int64_t max_chars = 1000;
  int64_t overlap = 0;
};

struct TokenChunkOptions {
  int64_t max_tokens = 256;
  int64_t overlap_tokens = 0;
  const WordPieceTokenizer* tokenizer = nullptr;  // not owned; must outlive the call
};

void validate(const CharChunkOptions& opts);
void validate(const TokenChunkOptions& opts);

std::vector<ChunkSpan> chunk_chars(std::string_view utf8, const CharChunkOptions& opts);
std::vector<ChunkSpan> chunk_tokens(std::string_view utf8, const TokenChunkOptions& opts);

// Batch forms over an Arrow string (int32 offsets) or large_string (int64 offsets) buffer: text i is
// data[offsets[i], offsets[i+1]). Runs on the shared thread pool (threads <= 0: all cores).
// spans holds every text's chunks in order; counts[i] is how many belong to text i.
struct ChunkBatch {
  std::vector<ChunkSpan> spans;
  std::vector<int64_t> counts;
};
ChunkBatch chunk_chars_batch(const char* data, const int64_t* offsets, int64_t n, const CharChunkOptions& opts,
                             int threads = 0);
ChunkBatch chunk_chars_batch(const char* data, const int32_t* offsets, int64_t n, const CharChunkOptions& opts,
                             int threads = 0);
ChunkBatch chunk_tokens_batch(const char* data, const int64_t* offsets, int64_t n, const TokenChunkOptions& opts,
                              int threads = 0);
ChunkBatch chunk_tokens_batch(const char* data, const int32_t* offsets, int64_t n, const TokenChunkOptions& opts,
                              int threads = 0);

}  // namespace dflow::text
