#include "dflow/runtime/footprint_estimate.h"

#include <algorithm>

namespace dflow {

namespace {
int64_t Scale(int64_t bytes, int64_t rows, int64_t n) {
  if (rows <= 0) return 0;
  return static_cast<int64_t>(static_cast<double>(bytes) / static_cast<double>(rows) * static_cast<double>(n));
}
}  // namespace

int64_t FootprintEstimate::Expected(int64_t rows) const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::max(Scale(expanded_bytes_, expanded_rows_, rows), Scale(finished_bytes_, finished_rows_, rows));
}

void FootprintEstimate::ObserveExpanded(int64_t bytes, int64_t rows) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (rows > 0) {  // a batch whose reads all failed says nothing about sizes
      expanded_bytes_ += bytes;
      expanded_rows_ += rows;
    }
    ++expanded_batches_;
  }
  cv_.notify_all();
}

void FootprintEstimate::ObserveFinished(int64_t peak_bytes, int64_t rows) {
  std::lock_guard<std::mutex> lock(mu_);
  finished_bytes_ += peak_bytes;
  finished_rows_ += rows;
}

bool FootprintEstimate::WaitForProbe(int64_t admitted_batches) {
  std::unique_lock<std::mutex> lock(mu_);
  // A probe whose rows all failed before the read reports zero rows: admit the next one.
  cv_.wait(lock, [&] {
    return cancelled_ || expanded_rows_ > 0 || expanded_batches_ >= admitted_batches ||
           expanded_batches_ >= kMaxProbes;
  });
  return !cancelled_;
}

void FootprintEstimate::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

}  // namespace dflow
