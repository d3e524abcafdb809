// Runtime operators of the text engine: chunk_text (makes a child level of chunks) and tokenize.
// Both read Arrow string buffers directly and run on the shared thread pool; no Python involved.
#pragma once
#include <memory>
#include <string>

#include "dflow/runtime/operator.h"
#include "dflow/text/chunker.h"
#include "dflow/text/tokenizer.h"

namespace dflow::text {

struct ChunkTextNodes {
  int32_t chunk, chunk_index, start_offset, end_offset;  // IR node ids of the child level's fields
};

class ChunkTextOperator : public Operator {
 public:
  // max_tokens > 0 selects token chunking with `tokenizer` (required then); otherwise characters.
  ChunkTextOperator(int32_t parent, int32_t level, int32_t source_node, ChunkTextNodes nodes, int64_t max_chars,
                    int64_t overlap, int64_t max_tokens, int64_t overlap_tokens,
                    std::shared_ptr<const WordPieceTokenizer> tokenizer);
  std::string name() const override { return "chunk_text"; }
  void Process(Batch& batch) override;

 private:
  int32_t parent_, level_, source_node_;
  ChunkTextNodes nodes_;
  CharChunkOptions chars_;
  TokenChunkOptions tokens_;
  std::shared_ptr<const WordPieceTokenizer> tokenizer_;
};

// Token ids (list<int64>) of a string column.
class TokenizeOperator : public Operator {
 public:
  TokenizeOperator(int32_t level, int32_t source_node, int32_t source_level, int32_t out_node,
                   std::shared_ptr<const WordPieceTokenizer> tokenizer, bool add_special_tokens);
  std::string name() const override { return "tokenize"; }
  void Process(Batch& batch) override;

 private:
  int32_t level_, source_node_, source_level_, out_node_;
  bool add_special_;
  std::shared_ptr<const WordPieceTokenizer> tokenizer_;
};

}  // namespace dflow::text
