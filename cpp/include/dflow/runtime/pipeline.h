// The streaming scheduler: a source thread, one or more worker threads per operator stage, and
// bounded queues between them. Batches carry a sequence number so results can be re-ordered.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dflow/runtime/bounded_queue.h"
#include "dflow/runtime/footprint_estimate.h"
#include "dflow/runtime/memory_budget.h"
#include "dflow/runtime/operator.h"

namespace dflow {

struct StageOptions {
  int concurrency = 1;  // worker threads for this stage (Python stages: 1, the GIL serialises them)
  // Its outputs are much larger than its inputs (a read: URL -> document). The first batch
  // becomes a probe of how large rows get across the whole pipeline; see FootprintEstimate.
  bool expanding = false;
};

struct PipelineOptions {
  int64_t memory_budget = 512ll << 20;
  bool ordered = true;
  size_t queue_capacity = 2;  // batches waiting between two stages
};

struct PipelineStats {
  int64_t batches = 0;
  int64_t peak_budget_bytes = 0;
};

class Pipeline {
 public:
  Pipeline(std::unique_ptr<Source> source, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void AddStage(std::unique_ptr<Operator> op, StageOptions options);
  void Start();

  enum class PollStatus { kBatch, kEnd, kTimeout };
  // Waits up to `timeout` for the next finished batch (in input order when ordered). Rethrows the
  // first error raised by any stage. The caller must Release(batch->bytes) once done with it.
  PollStatus Next(std::chrono::milliseconds timeout, std::unique_ptr<Batch>* out);
  void Release(int64_t bytes) { budget_.Release(bytes); }

  // Stops every thread promptly and waits for the stage threads. A source still inside Next()
  // after a short grace period (a user's iterable that blocks) is not waited for: its thread is
  // detached, finishes on its own, drops what it produced and touches nothing of the pipeline.
  // Safe to call more than once.
  void Cancel();
  PipelineStats stats() const;
  // How long Cancel waits for a source inside Next() before leaving it behind.
  static constexpr std::chrono::milliseconds kSourceGrace{200};

 private:
  // What the source thread shares with the pipeline; it outlives the pipeline when abandoned.
  struct SourceSlot {
    std::mutex mu;
    std::condition_variable left_next;
    std::unique_ptr<Source> source;
    bool in_next = false, abandoned = false;
  };
  void RunSource(const std::shared_ptr<SourceSlot>& slot);
  void RunStage(size_t index);
  void Fail(std::exception_ptr error);
  void Charge(Batch& batch);  // re-measures a batch after a stage and charges its growth
  void Finished(const Batch& batch);  // a batch left the last stage: feeds the footprint estimate

  using Queue = BoundedQueue<std::unique_ptr<Batch>>;
  std::shared_ptr<SourceSlot> source_;
  std::thread source_thread_;
  PipelineOptions options_;
  MemoryBudget budget_;
  FootprintEstimate footprint_;
  bool probing_ = false;  // some stage expands: admit one batch until one has been through
  std::vector<std::unique_ptr<Operator>> ops_;
  std::vector<StageOptions> stage_options_;
  std::vector<std::unique_ptr<Queue>> queues_;  // queues_[i] feeds stage i; the last feeds Next()
  std::vector<std::unique_ptr<std::atomic<int>>> live_workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> cancelled_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
  std::map<int64_t, std::unique_ptr<Batch>> reorder_;
  int64_t next_seq_ = 0;
  bool started_ = false, ended_ = false;
  std::atomic<int64_t> batches_{0};
};

}  // namespace dflow
