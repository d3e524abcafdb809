#include "dflow/text/text_operators.h"

#include <stdexcept>
#include <utility>

#include "dflow/parallel.h"

namespace dflow::text {

ChunkTextOperator::ChunkTextOperator(int32_t parent, int32_t level, int32_t source_node, ChunkTextNodes nodes,
                                     int64_t max_chars, int64_t overlap, int64_t max_tokens, int64_t overlap_tokens,
                                     std::shared_ptr<const WordPieceTokenizer> tokenizer)
    : parent_(parent), level_(level), source_node_(source_node), nodes_(nodes) {
  chars_.max_chars = max_chars;
  chars_.overlap = overlap;
  if (max_tokens > 0) {
    if (!tokenizer) throw std::invalid_argument("chunk_text by tokens needs a tokenizer");
    tokenizer_ = std::move(tokenizer);
    tokens_.max_tokens = max_tokens;
    tokens_.overlap_tokens = overlap_tokens;
    tokens_.tokenizer = tokenizer_.get();
    validate(tokens_);
  } else {
    validate(chars_);
  }
}

void ChunkTextOperator::Process(Batch& batch) {
  if (static_cast<int32_t>(batch.levels.size()) <= level_) batch.levels.resize(level_ + 1);
  const Level& p = batch.levels.at(parent_);
  const ArrayPtr& text = p.columns.at(source_node_);
  const int64_t n = text->length();
  ChunkBatch chunks;
  std::vector<int64_t> row_start(n + 1, 0);
  if (n > 0) {
    // Each row is chunked on its own span; failed parents and nulls produce no chunks.
    std::vector<std::string_view> views(n);
    for (int64_t i = 0; i < n; ++i)
      views[i] = (text->IsValid(i) && !p.Failed(i)) ? text->View(i) : std::string_view();
    // One task per row range: documents are chunked independently on the shared pool.
    chunks.counts.assign(n, 0);
    std::vector<std::vector<ChunkSpan>> per_row(n);
    parallel_for(n, 0, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        if (views[i].empty()) continue;
        per_row[i] = tokenizer_ ? chunk_tokens(views[i], tokens_) : chunk_chars(views[i], chars_);
      }
    });
    for (int64_t i = 0; i < n; ++i) {
      chunks.counts[i] = static_cast<int64_t>(per_row[i].size());
      chunks.spans.insert(chunks.spans.end(), per_row[i].begin(), per_row[i].end());
    }
  }
  Level out;
  out.materialized = true;
  out.parent = parent_;
  const int64_t total = static_cast<int64_t>(chunks.spans.size());
  out.parent_index.reserve(total);
  out.child_index.reserve(total);
  int64_t bytes = 0;
  for (const auto& s : chunks.spans) bytes += s.byte_end - s.byte_start;
  BinaryBuilder chunk(true, total);
  chunk.Reserve(total, bytes);
  PrimitiveBuilder<int64_t> index("l", total), start("l", total), end("l", total);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::string_view t = chunks.counts[i] ? text->View(i) : std::string_view();
    for (int64_t c = 0; c < chunks.counts[i]; ++c, ++k) {
      const ChunkSpan& s = chunks.spans[k];
      out.parent_index.push_back(i);
      out.child_index.push_back(c);
      chunk.Append(t.data() + s.byte_start, static_cast<size_t>(s.byte_end - s.byte_start));
      index.Append(c);
      start.Append(s.start);
      end.Append(s.end);
    }
  }
  out.num_rows = total;
  out.columns[nodes_.chunk] = chunk.Finish();
  out.columns[nodes_.chunk_index] = index.Finish();
  out.columns[nodes_.start_offset] = start.Finish();
  out.columns[nodes_.end_offset] = end.Finish();
  batch.levels[level_] = std::move(out);
}

TokenizeOperator::TokenizeOperator(int32_t level, int32_t source_node, int32_t source_level, int32_t out_node,
                                   std::shared_ptr<const WordPieceTokenizer> tokenizer, bool add_special_tokens)
    : level_(level), source_node_(source_node), source_level_(source_level), out_node_(out_node),
      add_special_(add_special_tokens), tokenizer_(std::move(tokenizer)) {
  if (!tokenizer_) throw std::invalid_argument("tokenize needs a tokenizer");
}

void TokenizeOperator::Process(Batch& batch) {
  Level& level = batch.levels.at(level_);
  const ArrayPtr& text = batch.levels.at(source_level_).columns.at(source_node_);
  std::vector<int64_t> index;
  if (source_level_ != level_) index = batch.AncestorIndex(level_, source_level_);
  const int64_t n = level.num_rows;
  std::vector<std::string_view> views(n);
  std::vector<uint8_t> valid(n, 1);
  for (int64_t r = 0; r < n; ++r) {
    int64_t row = index.empty() ? r : index[r];
    if (!text->IsValid(row) || level.Failed(r)) {
      valid[r] = 0;
      continue;
    }
    views[r] = text->View(row);
  }
  auto ids = tokenizer_->encode_batch(views.data(), n, add_special_, 0);
  std::vector<int64_t> offsets(n + 1, 0);
  PrimitiveBuilder<int64_t> values("l");
  std::vector<uint8_t> validity((n + 7) / 8, 0);
  int64_t nulls = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (valid[r]) {
      validity[r >> 3] |= static_cast<uint8_t>(1u << (r & 7));
      for (int32_t id : ids[r]) values.Append(id);
    } else {
      ++nulls;
    }
    offsets[r + 1] = values.length();
  }
  level.columns[out_node_] = MakeLargeList(std::move(offsets), values.Finish(), std::move(validity), nulls);
}

}  // namespace dflow::text
