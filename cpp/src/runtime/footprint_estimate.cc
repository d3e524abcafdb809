#include "dflow/runtime/footprint_estimate.h"

namespace dflow {

int64_t FootprintEstimate::Expected(int64_t rows) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_rows_ <= 0) return 0;
  return static_cast<int64_t>(static_cast<double>(finished_bytes_) / static_cast<double>(finished_rows_) *
                              static_cast<double>(rows));
}

void FootprintEstimate::ObserveFinished(int64_t peak_bytes, int64_t ok_rows) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ok_rows > 0) {  // a batch whose rows all failed says nothing about sizes
      finished_bytes_ += peak_bytes;
      finished_rows_ += ok_rows;
    }
    ++finished_batches_;
  }
  cv_.notify_all();
}

bool FootprintEstimate::WaitForProbe(int64_t admitted_batches) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    return cancelled_ || finished_rows_ > 0 || finished_batches_ >= admitted_batches ||
           finished_batches_ >= kMaxProbes;
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
