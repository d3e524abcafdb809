// Learns how many bytes a root input row grows into as it moves through the pipeline, so the
// source can charge a batch its expected footprint when it admits it, not its (tiny) input size.
//
// Without it a batch of URLs costs a few bytes at admission and only becomes 50 MB documents (and
// then 150 MB of documents plus chunks) while workers hold it, so the budget would learn about
// the memory after it is spent. Each batch leaving the last stage reports the largest size it
// reached; the estimate is the mean of those per root row that did not fail.
//
// Plans with an expanding stage (a read: URL -> document) also probe: until a batch with real rows
// has been through the whole pipeline, the source admits one batch at a time. Stopping the probe
// any earlier (say, once the read is done) would admit batches at the size of a document and let
// the chunker triple them afterwards, where no budget can stop it.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace dflow {

class FootprintEstimate {
 public:
  // Bytes `rows` root rows are expected to reach (0 while nothing has been observed).
  int64_t Expected(int64_t rows) const;
  // A batch left the last stage: its largest measured size, and its root rows that did not fail.
  void ObserveFinished(int64_t peak_bytes, int64_t ok_rows);
  // Blocks the source of a probing plan while no batch with real rows has finished and batches it
  // admitted are still under way. After kMaxProbes finished batches without a real row (a wrong
  // base URL, say) it stops waiting, so an input that only fails still fails at full speed.
  // Returns false when cancelled.
  bool WaitForProbe(int64_t admitted_batches);
  void Cancel();

  static constexpr int64_t kMaxProbes = 8;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t finished_bytes_ = 0, finished_rows_ = 0, finished_batches_ = 0;
  bool cancelled_ = false;
};

}  // namespace dflow
