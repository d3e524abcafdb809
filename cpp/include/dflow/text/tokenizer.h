// Native WordPiece tokenizer producing exactly the ids of HF `tokenizers` for BERT-style tokenizers
// (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] post-processing).
//
// Contract:
// - Input is UTF-8. Offsets are code point indices into the input (what Python's str indexing uses),
//   end exclusive; special tokens added by the post-processor get (0, 0), as in HF.
// - Truncation and padding settings in tokenizer.json are ignored: ids equal HF's with
//   `no_truncation()` and `no_padding()`.
// - Added tokens with "normalized": false (all of BERT's special tokens) are matched in the raw text
//   before normalization, like HF. Added tokens with "normalized": true are not supported as such and
//   only match through the WordPiece vocabulary.
// - A WordPieceTokenizer is immutable after loading and safe to share between threads.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dflow::text {

// A file that is missing, unreadable, or neither a tokenizer.json nor a vocab.txt. what() names the path.
struct InvalidTokenizerFile : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// A valid tokenizer.json using a model or component we do not implement (BPE, Unigram, ...).
struct UnsupportedTokenizer : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TokenSpan {
  int64_t start;  // code point offsets into the input, end exclusive
  int64_t end;
};

struct NormalizerOptions {
  bool enabled = true;  // false: no normalizer at all
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool strip_accents = true;  // HF: strip_accents = null means "same as lowercase"
  bool lowercase = true;
};

class WordPieceTokenizer {
 public:
  // Loads tokenizer.json (detected by content) or a plain vocab.txt (one token per line, id = line
  // number, uncased BERT defaults). Throws InvalidTokenizerFile or UnsupportedTokenizer.
  static std::shared_ptr<const WordPieceTokenizer> from_file(const std::string& path);
  // The same from a file's content; `origin` (its path or name) tells a vocab.txt apart by its
  // ".txt" suffix and names the tokenizer in errors.
  static std::shared_ptr<const WordPieceTokenizer> from_bytes(std::string_view data, const std::string& origin);
  static std::shared_ptr<const WordPieceTokenizer> from_json(std::string_view json, const std::string& origin);
  static std::shared_ptr<const WordPieceTokenizer> from_vocab_txt(std::string_view text, const std::string& origin);

  ~WordPieceTokenizer();

  // Appends the ids (and, when offsets != nullptr, the spans) of `utf8` to the vectors.
  void encode(std::string_view utf8, bool add_special_tokens, std::vector<int32_t>* ids,
              std::vector<TokenSpan>* offsets = nullptr) const;
  // Like encode without offsets, truncated the way HF truncates to `max_length` (special tokens
  // included in the count and kept: [CLS] + the first max_length - 2 tokens + [SEP] for BERT).
  // Stops reading the text once enough tokens are out.
  void encode_truncated(std::string_view utf8, bool add_special_tokens, int64_t max_length,
                        std::vector<int32_t>* ids) const;
  // Appends only the spans of `utf8`'s tokens (special tokens excluded).
  void token_spans(std::string_view utf8, std::vector<TokenSpan>* offsets) const;
  // Number of tokens, special tokens excluded.
  int64_t count(std::string_view utf8) const;
  // Encodes many texts on the shared thread pool (threads <= 0: all cores).
  std::vector<std::vector<int32_t>> encode_batch(const std::string_view* texts, int64_t n, bool add_special_tokens,
                                                 int threads = 0) const;

  int64_t vocab_size() const;
  // -1 when absent.
  int32_t token_to_id(std::string_view token) const;
  const NormalizerOptions& normalizer() const;

  struct Impl;

 private:
  explicit WordPieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dflow::text
