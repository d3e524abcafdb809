// Prompt templates rendered natively: literal text with string fields between, per row.
// Fields may live at ancestor levels (a chunk's document); they are read through the batch's
// ancestor index, never copied per row.
#pragma once
#include <string>
#include <vector>

#include "dflow/runtime/operator.h"

namespace dflow::llm {

struct TemplateInput {
  int32_t node;   // IR node id of a str column
  int32_t level;  // the level holding it (this level or an ancestor)
};

class TemplateRenderer : public Operator {
 public:
  // literals.size() == inputs.size() + 1
  TemplateRenderer(int32_t level, int32_t out_node, std::vector<std::string> literals,
                   std::vector<TemplateInput> inputs);
  std::string name() const override { return "render_template"; }
  // Rows with a null input (or that already failed) get a null prompt.
  void Process(Batch& batch) override;

 private:
  int32_t level_, out_node_;
  std::vector<std::string> literals_;
  std::vector<TemplateInput> inputs_;
};

}  // namespace dflow::llm
