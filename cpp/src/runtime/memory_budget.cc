#include "dflow/runtime/memory_budget.h"

#include <algorithm>

namespace dflow {

bool MemoryBudget::Acquire(int64_t bytes) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return cancelled_ || used_ == 0 || used_ + bytes <= limit_; });
  if (cancelled_) return false;
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return true;
}

void MemoryBudget::Add(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  if (bytes < 0) cv_.notify_all();
}

void MemoryBudget::Release(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ = std::max<int64_t>(0, used_ - bytes);
  cv_.notify_all();
}

void MemoryBudget::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

int64_t MemoryBudget::used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

int64_t MemoryBudget::peak() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

}  // namespace dflow
