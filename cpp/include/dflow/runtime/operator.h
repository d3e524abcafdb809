// Operators transform a Batch in place: add a column to a level, or create a child level.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "dflow/runtime/batch.h"

namespace dflow {

class Operator {
 public:
  virtual ~Operator() = default;
  virtual std::string name() const = 0;
  // Row-level problems are recorded with Level::Fail; throwing aborts the whole run.
  virtual void Process(Batch& batch) = 0;

  // Set by the pipeline; long-running operators poll it to stop early when the run is cancelled.
  void set_cancel_flag(const std::atomic<bool>* flag) { cancel_flag_ = flag; }
  bool cancelled() const { return cancel_flag_ != nullptr && cancel_flag_->load(std::memory_order_relaxed); }

 private:
  const std::atomic<bool>* cancel_flag_ = nullptr;
};

// Produces batches of root rows; returns nullptr at the end of the input.
class Source {
 public:
  virtual ~Source() = default;
  // May block for as long as the input takes (a user's iterable): a cancelled pipeline does not
  // wait for it, the source thread is left to finish on its own (see Pipeline::Cancel).
  virtual std::unique_ptr<Batch> Next() = 0;
  // Called before each Next(): the bytes a root row is expected to grow into across the whole
  // pipeline (0 while unknown), so the source can size batches to hold child levels too.
  virtual void Hint(int64_t expected_row_bytes) {}
};

// Native operator that materialises a child level (flat_map / chain).
class ExplodeOperator : public Operator {
 public:
  ExplodeOperator(int32_t parent, int32_t level, int32_t source_node, int32_t element_node, bool one_to_one)
      : parent_(parent), level_(level), source_node_(source_node), element_node_(element_node),
        one_to_one_(one_to_one) {}
  std::string name() const override { return one_to_one_ ? "chain" : "flat_map"; }
  void Process(Batch& batch) override;

 private:
  int32_t parent_, level_, source_node_, element_node_;
  bool one_to_one_;
};

}  // namespace dflow
