// The runtime stage of a fused expression program (see program.h).
#pragma once
#include <memory>
#include <string>

#include "dflow/expr/program.h"
#include "dflow/runtime/operator.h"

namespace dflow::expr {

class ExpressionOperator : public Operator {
 public:
  explicit ExpressionOperator(std::shared_ptr<const Program> program, std::string name = "expressions")
      : program_(std::move(program)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void Process(Batch& batch) override { program_->Run(batch); }

 private:
  std::shared_ptr<const Program> program_;
  std::string name_;
};

}  // namespace dflow::expr
