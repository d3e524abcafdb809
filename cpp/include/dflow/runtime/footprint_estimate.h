// Learns how many bytes a root input row grows into as it moves through the pipeline, so the
// source can charge a batch its expected footprint when it admits it, not its (tiny) input size.
//
// Without it a batch of URLs costs a few bytes at admission and only becomes 50 MB documents (and
// then 100 MB of documents plus chunks) while workers hold it, so the budget would learn about the
// memory after it is spent. Two kinds of observations feed the estimate:
//   - a batch leaving an expanding stage (a read: URL -> document), early in the run;
//   - a batch leaving the last stage, with the largest size it reached on the way.
// The estimate per row is the larger of the two running means.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace dflow {

class FootprintEstimate {
 public:
  // Bytes `rows` root rows are expected to reach (0 while nothing has been observed).
  int64_t Expected(int64_t rows) const;
  void ObserveExpanded(int64_t bytes, int64_t rows);  // a batch left an expanding stage
  void ObserveFinished(int64_t peak_bytes, int64_t rows);  // a batch left the last stage
  // Until an expanding stage has reported real rows, the source admits one batch at a time: the
  // first batch of a read is a probe. After kMaxProbes batches whose reads all failed (a wrong
  // base URL, say) it stops waiting, so an input that only fails still fails at full speed.
  // Returns false when cancelled.
  bool WaitForProbe(int64_t admitted_batches);
  static constexpr int64_t kMaxProbes = 8;
  void Cancel();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t expanded_bytes_ = 0, expanded_rows_ = 0, expanded_batches_ = 0;
  int64_t finished_bytes_ = 0, finished_rows_ = 0;
  bool cancelled_ = false;
};

}  // namespace dflow
