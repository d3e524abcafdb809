// The streaming scheduler: a source thread, one or more worker threads per operator stage, and
// bounded queues between them. Batches carry a sequence number so results can be re-ordered.
#pragma once
#include <atomic>
#include <chrono>
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
  // The levels whose rows the stage reads and writes, for its row counters (a child level's
  // maker reads its parent and writes the child; every other op reads and writes one level).
  // -1: not counted.
  int32_t input_level = -1;
  int32_t output_level = -1;
};

struct PipelineOptions {
  int64_t memory_budget = 512ll << 20;
  bool ordered = true;
  size_t queue_capacity = 2;  // batches waiting between two stages
};

// What one stage did so far. Plain counters that add up across runs and processes (a remote
// worker's stages merge into the same totals); times are nanoseconds since the pipeline started.
struct StageStats {
  int64_t batches = 0;
  int64_t rows_in = 0;      // live rows of the input level when batches arrived
  int64_t rows_out = 0;     // live rows of the output level when batches left
  int64_t rows_failed = 0;  // rows this stage failed
  int64_t busy_ns = 0;      // time inside Process, summed over the stage's workers
  int64_t first_start_ns = -1;  // when the stage started its first batch
  int64_t last_end_ns = -1;     // when it finished its latest one
};

struct SourceStats {
  int64_t batches = 0;
  int64_t rows = 0;             // root rows admitted
  int64_t busy_ns = 0;          // pulling inputs (Source::Next)
  int64_t budget_wait_ns = 0;   // waiting for the memory budget
};

struct PipelineStats {
  int64_t batches = 0;  // batches that left the last stage
  int64_t peak_budget_bytes = 0;
  int64_t budget_bytes = 0;  // charged now
  int64_t elapsed_ns = 0;    // since Start
  SourceStats source;
  std::vector<StageStats> stages;
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

  // Stops every thread promptly and waits for them. Safe to call more than once.
  void Cancel();
  PipelineStats stats() const;

 private:
  void RunSource();
  void RunStage(size_t index);
  void Fail(std::exception_ptr error);
  void Charge(Batch& batch);  // re-measures a batch after a stage and charges its growth
  void Finished(const Batch& batch);  // a batch left the last stage: feeds the footprint estimate
  int64_t Now() const;  // ns since Start

  // Per-stage counters, updated once per batch with relaxed atomics (workers of one stage run
  // concurrently; readers only need a recent value).
  struct StageCounters {
    std::atomic<int64_t> batches{0}, rows_in{0}, rows_out{0}, rows_failed{0}, busy_ns{0};
    std::atomic<int64_t> first_start_ns{-1}, last_end_ns{-1};
  };
  struct SourceCounters {
    std::atomic<int64_t> batches{0}, rows{0}, busy_ns{0}, budget_wait_ns{0};
  };

  using Queue = BoundedQueue<std::unique_ptr<Batch>>;
  std::unique_ptr<Source> source_;
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
  std::chrono::steady_clock::time_point start_time_;
  std::vector<std::unique_ptr<StageCounters>> stage_counters_;
  SourceCounters source_counters_;
};

}  // namespace dflow
