#include "dflow/runtime/pipeline.h"

#include <cxxabi.h>

#include <algorithm>
#include <stdexcept>

namespace dflow {

// What the pipeline's threads use. Each thread holds a reference, so a thread left behind by
// Cancel (busy in user code) can finish its work against live state after the Pipeline is gone.
struct Pipeline::Shared {
  using Queue = BoundedQueue<std::unique_ptr<Batch>>;

  Shared(std::unique_ptr<Source> s, PipelineOptions o)
      : source(std::move(s)), options(o), budget(o.memory_budget) {}

  std::unique_ptr<Source> source;
  PipelineOptions options;
  MemoryBudget budget;
  FootprintEstimate footprint;
  bool probing = false;  // some stage expands: admit one batch until one has been through
  std::vector<std::unique_ptr<Operator>> ops;
  std::vector<StageOptions> stage_options;
  std::vector<std::unique_ptr<Queue>> queues;  // queues[i] feeds stage i; the last feeds Next()
  std::vector<std::unique_ptr<std::atomic<int>>> live_workers;
  std::atomic<bool> cancelled{false};
  std::mutex error_mu;
  std::exception_ptr error;
  std::atomic<int64_t> batches{0};

  // Which threads have finished (index as in Pipeline::threads_), for Cancel.
  std::mutex exit_mu;
  std::condition_variable exit_cv;
  std::vector<char> exited;

  void Stop() {
    cancelled = true;
    budget.Cancel();
    footprint.Cancel();
    for (auto& q : queues) q->Close(/*discard=*/true);
  }
  void Fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = e;
    }
    Stop();
  }
  void Exited(size_t thread) {
    std::lock_guard<std::mutex> lock(exit_mu);
    exited[thread] = 1;
    exit_cv.notify_all();
  }
  void RunSource();
  void RunStage(size_t index);
  void Charge(Batch& batch);          // re-measures a batch after a stage and charges its growth
  void Finished(const Batch& batch);  // a batch left the last stage: feeds the footprint estimate
};

Pipeline::Pipeline(std::unique_ptr<Source> source, PipelineOptions options)
    : shared_(std::make_shared<Shared>(std::move(source), options)) {}

Pipeline::~Pipeline() { Cancel(); }

void Pipeline::AddStage(std::unique_ptr<Operator> op, StageOptions options) {
  if (started_) throw std::logic_error("Pipeline::AddStage after Start");
  op->set_cancel_flag(&shared_->cancelled);
  shared_->ops.push_back(std::move(op));
  shared_->stage_options.push_back(options);
}

void Pipeline::Start() {
  if (started_) throw std::logic_error("Pipeline::Start called twice");
  started_ = true;
  Shared& s = *shared_;
  for (size_t i = 0; i <= s.ops.size(); ++i) {
    size_t cap = s.options.queue_capacity;
    if (i < s.ops.size()) cap += s.stage_options[i].concurrency;  // keep every worker busy
    s.queues.push_back(std::make_unique<Shared::Queue>(cap));
  }
  size_t workers = 0;
  for (size_t i = 0; i < s.ops.size(); ++i) {
    int n = std::max(1, s.stage_options[i].concurrency);
    s.live_workers.push_back(std::make_unique<std::atomic<int>>(n));
    workers += n;
  }
  for (const StageOptions& o : s.stage_options) s.probing = s.probing || o.expanding;
  s.exited.assign(1 + workers, 0);
  threads_.emplace_back([shared = shared_] {
    shared->RunSource();
    shared->Exited(0);
  });
  size_t thread = 1;
  for (size_t i = 0; i < s.ops.size(); ++i)
    for (int w = 0; w < std::max(1, s.stage_options[i].concurrency); ++w, ++thread)
      threads_.emplace_back([shared = shared_, i, thread] {
        shared->RunStage(i);
        shared->Exited(thread);
      });
}

void Pipeline::Shared::RunSource() {
  try {
    int64_t admitted = 0;
    while (!cancelled) {
      if (probing && admitted > 0 && !footprint.WaitForProbe(admitted)) break;
      source->Hint(footprint.Expected(1));
      std::unique_ptr<Batch> batch = source->Next();  // may block in user code: see Cancel
      if (!batch || cancelled) break;
      batch->peak = batch->ComputeBytes();
      batch->reserved = footprint.Expected(batch->levels[0].num_rows);
      batch->bytes = std::max(batch->peak, batch->reserved);
      if (!budget.Acquire(batch->bytes)) break;
      ++admitted;
      if (!queues[0]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;  // thread cancellation (e.g. at interpreter exit) must unwind, never be swallowed
  } catch (...) {
    Fail(std::current_exception());
  }
  queues[0]->Close();
}

void Pipeline::Shared::RunStage(size_t index) {
  Operator& op = *ops[index];
  try {
    while (auto item = queues[index]->Pop()) {
      std::unique_ptr<Batch> batch = std::move(*item);
      if (cancelled) break;
      op.Process(*batch);
      Charge(*batch);
      if (index + 1 == ops.size()) {
        ++batches;
        Finished(*batch);  // after Charge: a source woken by the report must see this batch's growth
      }
      if (!queues[index + 1]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;
  } catch (...) {
    Fail(std::current_exception());
  }
  if (--*live_workers[index] == 0) queues[index + 1]->Close();
}

void Pipeline::Shared::Charge(Batch& batch) {
  int64_t measured = batch.ComputeBytes();
  batch.peak = std::max(batch.peak, measured);
  int64_t bytes = std::max(measured, batch.reserved);
  budget.Add(bytes - batch.bytes);
  batch.bytes = bytes;
}

void Pipeline::Shared::Finished(const Batch& batch) {
  const Level& root = batch.levels[0];
  int64_t ok_rows = 0;
  for (int64_t r = 0; r < root.num_rows; ++r) ok_rows += !root.Failed(r);
  footprint.ObserveFinished(batch.peak, ok_rows);
}

void Pipeline::Release(int64_t bytes) { shared_->budget.Release(bytes); }

Pipeline::PollStatus Pipeline::Next(std::chrono::milliseconds timeout, std::unique_ptr<Batch>* out) {
  if (!started_) throw std::logic_error("Pipeline::Next before Start");
  Shared& s = *shared_;
  auto rethrow_if_failed = [&] {
    std::lock_guard<std::mutex> lock(s.error_mu);
    if (s.error) std::rethrow_exception(s.error);
  };
  rethrow_if_failed();
  if (ended_) return PollStatus::kEnd;
  Shared::Queue& results = *s.queues.back();
  const bool reorder = s.options.ordered && !s.ops.empty();
  while (true) {
    if (reorder) {
      auto it = reorder_.find(next_seq_);
      if (it != reorder_.end()) {
        *out = std::move(it->second);
        reorder_.erase(it);
        ++next_seq_;
        return PollStatus::kBatch;
      }
    }
    bool timed_out = false;
    auto item = results.PopFor(timeout, &timed_out);
    if (timed_out) return PollStatus::kTimeout;
    rethrow_if_failed();
    if (!item) {
      if (reorder && !reorder_.empty()) {
        // Drain in order; a gap can only mean a cancelled run, which rethrow_if_failed reported.
        auto it = reorder_.begin();
        *out = std::move(it->second);
        reorder_.erase(it);
        return PollStatus::kBatch;
      }
      ended_ = true;
      return PollStatus::kEnd;
    }
    if (!reorder) {
      *out = std::move(*item);
      return PollStatus::kBatch;
    }
    int64_t seq = (*item)->seq;
    reorder_[seq] = std::move(*item);
  }
}

void Pipeline::Cancel() {
  shared_->Stop();
  if (threads_.empty()) return;
  std::vector<char> exited;
  {
    std::unique_lock<std::mutex> lock(shared_->exit_mu);
    shared_->exit_cv.wait_for(lock, kCancelGrace, [&] {
      return std::all_of(shared_->exited.begin(), shared_->exited.end(), [](char e) { return e != 0; });
    });
    exited = shared_->exited;
  }
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (exited[i]) threads_[i].join();
    else threads_[i].detach();  // still inside user code: it holds `shared_` and ends on its own
  }
  threads_.clear();
}

PipelineStats Pipeline::stats() const {
  PipelineStats s;
  s.batches = shared_->batches;
  s.peak_budget_bytes = shared_->budget.peak();
  return s;
}

}  // namespace dflow
