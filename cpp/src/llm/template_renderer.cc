#include "dflow/llm/template_renderer.h"

#include <stdexcept>
#include <utility>

namespace dflow::llm {

TemplateRenderer::TemplateRenderer(int32_t level, int32_t out_node, std::vector<std::string> literals,
                                   std::vector<TemplateInput> inputs)
    : level_(level), out_node_(out_node), literals_(std::move(literals)), inputs_(std::move(inputs)) {
  if (literals_.size() != inputs_.size() + 1) throw std::invalid_argument("template: literals != inputs + 1");
}

void TemplateRenderer::Process(Batch& batch) {
  Level& level = batch.levels.at(level_);
  const int64_t n = level.num_rows;
  struct Column {
    const Array* array;
    std::vector<int64_t> index;  // empty when the column is at this level
  };
  std::vector<Column> columns;
  columns.reserve(inputs_.size());
  for (const TemplateInput& in : inputs_) {
    Column c{batch.levels.at(in.level).columns.at(in.node).get(), {}};
    if (in.level != level_) c.index = batch.AncestorIndex(level_, in.level);
    columns.push_back(std::move(c));
  }
  int64_t literal_bytes = 0;
  for (const auto& lit : literals_) literal_bytes += static_cast<int64_t>(lit.size());
  BinaryBuilder out(true, n);
  out.Reserve(n, n * literal_bytes);
  std::string row_text;
  for (int64_t r = 0; r < n; ++r) {
    if (level.Failed(r)) {
      out.AppendNull();
      continue;
    }
    row_text.assign(literals_[0]);
    bool valid = true;
    for (size_t i = 0; i < columns.size() && valid; ++i) {
      const Column& c = columns[i];
      const int64_t row = c.index.empty() ? r : c.index[r];
      if (!c.array->IsValid(row)) {
        valid = false;
        break;
      }
      row_text.append(c.array->View(row));
      row_text.append(literals_[i + 1]);
    }
    if (valid) {
      out.Append(row_text);
    } else {
      out.AppendNull();
    }
  }
  level.columns[out_node_] = out.Finish();
}

}  // namespace dflow::llm
