#include "dflow/runtime/pipeline.h"

#include <cxxabi.h>

#include <algorithm>
#include <stdexcept>

namespace dflow {

namespace {

// Rows of `level` that have not failed (0 when the batch has no such level yet).
int64_t LiveRows(const Batch& batch, int32_t level) {
  if (level < 0 || level >= static_cast<int32_t>(batch.levels.size())) return 0;
  const Level& l = batch.levels[level];
  if (!l.materialized) return 0;
  if (l.failed.empty()) return l.num_rows;
  return static_cast<int64_t>(std::count(l.failed.begin(), l.failed.end(), uint8_t{0}));
}

int64_t FailureCount(const Batch& batch) {
  int64_t n = 0;
  for (const Level& l : batch.levels) n += static_cast<int64_t>(l.failures.size());
  return n;
}

void StoreMin(std::atomic<int64_t>& a, int64_t v) {
  int64_t seen = a.load(std::memory_order_relaxed);
  while ((seen < 0 || v < seen) && !a.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void StoreMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t seen = a.load(std::memory_order_relaxed);
  while (v > seen && !a.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

Pipeline::Pipeline(std::unique_ptr<Source> source, PipelineOptions options)
    : source_(std::move(source)), options_(options), budget_(options.memory_budget) {}

Pipeline::~Pipeline() { Cancel(); }

void Pipeline::AddStage(std::unique_ptr<Operator> op, StageOptions options) {
  if (started_) throw std::logic_error("Pipeline::AddStage after Start");
  op->set_cancel_flag(&cancelled_);
  ops_.push_back(std::move(op));
  stage_options_.push_back(options);
  stage_counters_.push_back(std::make_unique<StageCounters>());
}

int64_t Pipeline::Now() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_time_).count();
}

void Pipeline::Start() {
  if (started_) throw std::logic_error("Pipeline::Start called twice");
  started_ = true;
  start_time_ = std::chrono::steady_clock::now();
  for (size_t i = 0; i <= ops_.size(); ++i) {
    size_t cap = options_.queue_capacity;
    if (i < ops_.size()) cap += stage_options_[i].concurrency;  // keep every worker busy
    queues_.push_back(std::make_unique<Queue>(cap));
  }
  for (size_t i = 0; i < ops_.size(); ++i)
    live_workers_.push_back(std::make_unique<std::atomic<int>>(std::max(1, stage_options_[i].concurrency)));
  for (const StageOptions& o : stage_options_) probing_ = probing_ || o.expanding;
  threads_.emplace_back([this] { RunSource(); });
  for (size_t i = 0; i < ops_.size(); ++i)
    for (int w = 0; w < std::max(1, stage_options_[i].concurrency); ++w)
      threads_.emplace_back([this, i] { RunStage(i); });
}

void Pipeline::Fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!error_) error_ = error;
  }
  cancelled_ = true;
  budget_.Cancel();
  footprint_.Cancel();
  for (auto& q : queues_) q->Close(/*discard=*/true);
}

void Pipeline::RunSource() {
  try {
    int64_t admitted = 0;
    while (!cancelled_) {
      if (probing_ && admitted > 0 && !footprint_.WaitForProbe(admitted)) break;
      int64_t pull_start = Now();
      std::unique_ptr<Batch> batch = source_->Next();
      int64_t pulled = Now();
      source_counters_.busy_ns.fetch_add(pulled - pull_start, std::memory_order_relaxed);
      if (!batch) break;
      batch->peak = batch->ComputeBytes();
      batch->reserved = footprint_.Expected(batch->levels[0].num_rows);
      batch->bytes = std::max(batch->peak, batch->reserved);
      if (!budget_.Acquire(batch->bytes)) break;
      source_counters_.budget_wait_ns.fetch_add(Now() - pulled, std::memory_order_relaxed);
      source_counters_.batches.fetch_add(1, std::memory_order_relaxed);
      source_counters_.rows.fetch_add(batch->levels[0].num_rows, std::memory_order_relaxed);
      ++admitted;
      if (!queues_[0]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;  // thread cancellation (e.g. at interpreter exit) must unwind, never be swallowed
  } catch (...) {
    Fail(std::current_exception());
  }
  queues_[0]->Close();
}

void Pipeline::RunStage(size_t index) {
  Operator& op = *ops_[index];
  StageCounters& counters = *stage_counters_[index];
  const StageOptions& options = stage_options_[index];
  try {
    while (auto item = queues_[index]->Pop()) {
      std::unique_ptr<Batch> batch = std::move(*item);
      if (cancelled_) break;
      int64_t rows_in = LiveRows(*batch, options.input_level);
      int64_t failures_before = FailureCount(*batch);
      int64_t start = Now();
      StoreMin(counters.first_start_ns, start);
      op.Process(*batch);
      int64_t end = Now();
      counters.busy_ns.fetch_add(end - start, std::memory_order_relaxed);
      StoreMax(counters.last_end_ns, end);
      counters.batches.fetch_add(1, std::memory_order_relaxed);
      counters.rows_in.fetch_add(rows_in, std::memory_order_relaxed);
      counters.rows_out.fetch_add(LiveRows(*batch, options.output_level), std::memory_order_relaxed);
      counters.rows_failed.fetch_add(FailureCount(*batch) - failures_before, std::memory_order_relaxed);
      Charge(*batch);
      if (index + 1 == ops_.size()) {
        ++batches_;
        Finished(*batch);  // after Charge: a source woken by the report must see this batch's growth
      }
      if (!queues_[index + 1]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;
  } catch (...) {
    Fail(std::current_exception());
  }
  if (--*live_workers_[index] == 0) queues_[index + 1]->Close();
}

void Pipeline::Charge(Batch& batch) {
  int64_t measured = batch.ComputeBytes();
  batch.peak = std::max(batch.peak, measured);
  int64_t bytes = std::max(measured, batch.reserved);
  budget_.Add(bytes - batch.bytes);
  batch.bytes = bytes;
}

void Pipeline::Finished(const Batch& batch) {
  const Level& root = batch.levels[0];
  int64_t ok_rows = 0;
  for (int64_t r = 0; r < root.num_rows; ++r) ok_rows += !root.Failed(r);
  footprint_.ObserveFinished(batch.peak, ok_rows);
}

Pipeline::PollStatus Pipeline::Next(std::chrono::milliseconds timeout, std::unique_ptr<Batch>* out) {
  if (!started_) throw std::logic_error("Pipeline::Next before Start");
  auto rethrow_if_failed = [&] {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (error_) std::rethrow_exception(error_);
  };
  rethrow_if_failed();
  if (ended_) return PollStatus::kEnd;
  Queue& results = *queues_.back();
  while (true) {
    if (!options_.ordered || ops_.empty()) {
      // Unordered (or nothing to reorder): hand over whatever finished first.
    } else {
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
      if (options_.ordered && !reorder_.empty()) {
        // Drain in order; a gap can only mean a cancelled run, which rethrow_if_failed reported.
        auto it = reorder_.begin();
        *out = std::move(it->second);
        reorder_.erase(it);
        return PollStatus::kBatch;
      }
      ended_ = true;
      return PollStatus::kEnd;
    }
    if (!options_.ordered || ops_.empty()) {
      *out = std::move(*item);
      return PollStatus::kBatch;
    }
    int64_t seq = (*item)->seq;
    reorder_[seq] = std::move(*item);
  }
}

void Pipeline::Cancel() {
  cancelled_ = true;
  budget_.Cancel();
  footprint_.Cancel();
  for (auto& q : queues_) q->Close(/*discard=*/true);
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

PipelineStats Pipeline::stats() const {
  PipelineStats s;
  s.batches = batches_;
  s.peak_budget_bytes = budget_.peak();
  s.budget_bytes = budget_.used();
  s.elapsed_ns = started_ ? Now() : 0;
  s.source.batches = source_counters_.batches.load(std::memory_order_relaxed);
  s.source.rows = source_counters_.rows.load(std::memory_order_relaxed);
  s.source.busy_ns = source_counters_.busy_ns.load(std::memory_order_relaxed);
  s.source.budget_wait_ns = source_counters_.budget_wait_ns.load(std::memory_order_relaxed);
  for (const auto& c : stage_counters_) {
    StageStats st;
    st.batches = c->batches.load(std::memory_order_relaxed);
    st.rows_in = c->rows_in.load(std::memory_order_relaxed);
    st.rows_out = c->rows_out.load(std::memory_order_relaxed);
    st.rows_failed = c->rows_failed.load(std::memory_order_relaxed);
    st.busy_ns = c->busy_ns.load(std::memory_order_relaxed);
    st.first_start_ns = c->first_start_ns.load(std::memory_order_relaxed);
    st.last_end_ns = c->last_end_ns.load(std::memory_order_relaxed);
    s.stages.push_back(st);
  }
  return s;
}

}  // namespace dflow
