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
  void Release(int64_t bytes);

  // Stops every thread promptly. Threads that have not stopped after a short grace period (the
  // source inside a user's iterable that blocks, a stage inside a user function that takes
  // minutes) are not waited for: they are detached, finish what they are doing on their own,
  // drop their batch and exit; what they use lives until the last of them is gone. Safe to call
  // more than once.
  void Cancel();
  PipelineStats stats() const;
  // How long Cancel waits for the threads before leaving those still busy behind.
  static constexpr std::chrono::milliseconds kCancelGrace{200};
  // Waits up to `timeout` until no thread left behind by any pipeline of the process is still
  // running; returns how many still are. (At interpreter exit: a thread still inside Python when
  // the interpreter finalizes is ended by it mid-call.)
  static int64_t WaitForLeftBehind(std::chrono::milliseconds timeout);

 private:
  struct Shared;  // everything the threads use (pipeline.cc); it outlives a detached thread's work
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;  // the source's first, then the stages'
  std::map<int64_t, std::unique_ptr<Batch>> reorder_;
  int64_t next_seq_ = 0;
  bool started_ = false, ended_ = false;
};

}  // namespace dflow
