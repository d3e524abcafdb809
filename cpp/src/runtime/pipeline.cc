#include "dflow/runtime/pipeline.h"

#include <cxxabi.h>

#include <algorithm>
#include <stdexcept>

namespace dflow {

Pipeline::Pipeline(std::unique_ptr<Source> source, PipelineOptions options)
    : source_(std::make_shared<SourceSlot>()), options_(options), budget_(options.memory_budget) {
  source_->source = std::move(source);
}

Pipeline::~Pipeline() { Cancel(); }

void Pipeline::AddStage(std::unique_ptr<Operator> op, StageOptions options) {
  if (started_) throw std::logic_error("Pipeline::AddStage after Start");
  op->set_cancel_flag(&cancelled_);
  ops_.push_back(std::move(op));
  stage_options_.push_back(options);
}

void Pipeline::Start() {
  if (started_) throw std::logic_error("Pipeline::Start called twice");
  started_ = true;
  for (size_t i = 0; i <= ops_.size(); ++i) {
    size_t cap = options_.queue_capacity;
    if (i < ops_.size()) cap += stage_options_[i].concurrency;  // keep every worker busy
    queues_.push_back(std::make_unique<Queue>(cap));
  }
  for (size_t i = 0; i < ops_.size(); ++i)
    live_workers_.push_back(std::make_unique<std::atomic<int>>(std::max(1, stage_options_[i].concurrency)));
  for (const StageOptions& o : stage_options_) probing_ = probing_ || o.expanding;
  source_thread_ = std::thread([this, slot = source_] { RunSource(slot); });
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

void Pipeline::RunSource(const std::shared_ptr<SourceSlot>& slot) {
  try {
    int64_t admitted = 0;
    while (true) {
      if (probing_ && admitted > 0 && !footprint_.WaitForProbe(admitted)) break;
      {
        // Under the slot's lock: Cancel either sees this thread inside Next() or has already
        // set cancelled_ (it sets it before taking the lock), never neither.
        std::lock_guard<std::mutex> lock(slot->mu);
        if (cancelled_) break;
        slot->in_next = true;
      }
      slot->source->Hint(footprint_.Expected(1));
      std::unique_ptr<Batch> batch;
      std::exception_ptr error;
      try {
        batch = slot->source->Next();
      } catch (abi::__forced_unwind&) {
        throw;  // thread cancellation (e.g. at interpreter exit) must unwind, never be swallowed
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(slot->mu);
        slot->in_next = false;
        slot->left_next.notify_all();
        if (slot->abandoned) return;  // the pipeline may be gone: drop the batch, touch nothing else
      }
      if (error) std::rethrow_exception(error);
      if (!batch) break;
      batch->peak = batch->ComputeBytes();
      batch->reserved = footprint_.Expected(batch->levels[0].num_rows);
      batch->bytes = std::max(batch->peak, batch->reserved);
      if (!budget_.Acquire(batch->bytes)) break;
      ++admitted;
      if (!queues_[0]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;
  } catch (...) {
    Fail(std::current_exception());
  }
  queues_[0]->Close();
}

void Pipeline::RunStage(size_t index) {
  Operator& op = *ops_[index];
  try {
    while (auto item = queues_[index]->Pop()) {
      std::unique_ptr<Batch> batch = std::move(*item);
      if (cancelled_) break;
      op.Process(*batch);
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
  if (source_thread_.joinable()) {
    bool abandon;
    {
      std::unique_lock<std::mutex> lock(source_->mu);
      source_->left_next.wait_for(lock, kSourceGrace, [&] { return !source_->in_next; });
      abandon = source_->abandoned = source_->in_next;
    }
    if (abandon) source_thread_.detach(); else source_thread_.join();
  }
}

PipelineStats Pipeline::stats() const {
  PipelineStats s;
  s.batches = batches_;
  s.peak_budget_bytes = budget_.peak();
  return s;
}

}  // namespace dflow
