#include "dflow/runtime/pipeline.h"

#include <cxxabi.h>
#include <pthread.h>

#include <algorithm>
#include <new>
#include <stdexcept>

namespace dflow {

namespace {
// Threads left behind by Cancel that have not finished yet, process-wide.
std::mutex g_left_mu;
std::condition_variable g_left_cv;
int64_t g_left_running = 0;

// Whether a stage has nothing to do for a retry batch: its level is carried as context, or it
// makes a level the retry batch already holds (the retried rows' own level).
bool SkipInRetry(const Batch& batch, const StageOptions& stage) {
  const int32_t out = stage.output_level;
  if (out < 0 || out >= static_cast<int32_t>(batch.levels.size())) return false;
  const Level& l = batch.levels[out];
  return l.context || (stage.input_level != out && l.materialized);
}

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

// A forked child has none of those threads (and the lock may have been held at the fork).
const bool g_fork_handler = [] {
  pthread_atfork(nullptr, nullptr, [] {
    new (&g_left_mu) std::mutex();
    new (&g_left_cv) std::condition_variable();
    g_left_running = 0;
  });
  return true;
}();
}  // namespace

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

  // Per-stage counters, updated once per batch with relaxed atomics (workers of one stage run
  // concurrently; readers only need a recent value).
  struct StageCounters {
    std::atomic<int64_t> batches{0}, rows_in{0}, rows_out{0}, rows_failed{0}, busy_ns{0};
    std::atomic<int64_t> first_start_ns{-1}, last_end_ns{-1};
  };
  struct SourceCounters {
    std::atomic<int64_t> batches{0}, rows{0}, busy_ns{0}, budget_wait_ns{0};
  };
  std::chrono::steady_clock::time_point start_time;
  std::vector<std::unique_ptr<StageCounters>> stage_counters;
  SourceCounters source_counters;
  int64_t Now() const {  // ns since Start
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_time)
        .count();
  }

  // Retries (PipelineOptions::retries): batches waiting for their delay, by due time, and what
  // decides when the input ends. `in_flight` counts batches admitted that have not left the last
  // stage: any of them may still spawn retries.
  mutable std::mutex retry_mu;
  std::condition_variable retry_cv;
  std::multimap<std::chrono::steady_clock::time_point, std::unique_ptr<Batch>> waiting;
  int64_t in_flight = 0;
  bool source_done = false, input_closed = false;
  int64_t next_tag = 1;
  std::atomic<int64_t> retry_batches{0};

  // Which threads have finished, and which Cancel left behind (index as in Pipeline::threads_).
  std::mutex exit_mu;
  std::condition_variable exit_cv;
  std::vector<char> exited, left_behind;

  void Stop() {
    cancelled = true;
    budget.Cancel();
    footprint.Cancel();
    for (auto& q : queues) q->Close(/*discard=*/true);
    if (options.retries) {
      { std::lock_guard<std::mutex> lock(retry_mu); }  // a waiting retry thread sees `cancelled`
      retry_cv.notify_all();
    }
  }
  void Fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = e;
    }
    Stop();
  }
  // Marks `thread` finished and drops its reference to the state (which it may be the last to
  // hold: the operators and source are then destroyed here, Python ones taking the GIL). A thread
  // left behind counts as gone only after that, so waiting at interpreter exit covers it.
  static void Exited(std::shared_ptr<Shared> shared, size_t thread) {
    bool left_behind;
    {
      std::lock_guard<std::mutex> lock(shared->exit_mu);
      shared->exited[thread] = 1;
      shared->exit_cv.notify_all();
      left_behind = shared->left_behind[thread];
    }
    shared.reset();
    if (left_behind) {
      std::lock_guard<std::mutex> left(g_left_mu);
      --g_left_running;
      g_left_cv.notify_all();
    }
  }
  void RunSource();
  void RunStage(size_t index);
  void RunRetries();
  // With retries, the input ends when the source has, nothing is in flight and nothing waits.
  void CloseInputIfDone() {  // under retry_mu
    if (input_closed || !source_done || in_flight > 0 || !waiting.empty()) return;
    input_closed = true;
    queues[0]->Close();
    retry_cv.notify_all();
  }
  void Admitted() {
    if (!options.retries) return;
    std::lock_guard<std::mutex> lock(retry_mu);
    ++in_flight;
  }
  void Schedule(Batch& batch);   // takes the retry batches a stage made from `batch`
  void LeftLastStage() {
    if (!options.retries) return;
    std::lock_guard<std::mutex> lock(retry_mu);
    --in_flight;
    CloseInputIfDone();
  }
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
  shared_->stage_counters.push_back(std::make_unique<Shared::StageCounters>());
}

void Pipeline::Start() {
  if (started_) throw std::logic_error("Pipeline::Start called twice");
  started_ = true;
  Shared& s = *shared_;
  s.start_time = std::chrono::steady_clock::now();
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
  const size_t retry_threads = s.options.retries ? 1 : 0;
  s.exited.assign(1 + workers + retry_threads, 0);
  s.left_behind.assign(1 + workers + retry_threads, 0);
  threads_.emplace_back([shared = shared_]() mutable {
    shared->RunSource();
    Shared::Exited(std::move(shared), 0);
  });
  size_t thread = 1;
  if (retry_threads) {
    threads_.emplace_back([shared = shared_, thread]() mutable {
      shared->RunRetries();
      Shared::Exited(std::move(shared), thread);
    });
    ++thread;
  }
  for (size_t i = 0; i < s.ops.size(); ++i)
    for (int w = 0; w < std::max(1, s.stage_options[i].concurrency); ++w, ++thread)
      threads_.emplace_back([shared = shared_, i, thread]() mutable {
        shared->RunStage(i);
        Shared::Exited(std::move(shared), thread);
      });
}

void Pipeline::Shared::RunSource() {
  try {
    int64_t admitted = 0;
    while (!cancelled) {
      if (probing && admitted > 0 && !footprint.WaitForProbe(admitted)) break;
      source->Hint(footprint.Expected(1));
      int64_t pull_start = Now();
      std::unique_ptr<Batch> batch = source->Next();  // may block in user code: see Cancel
      int64_t pulled = Now();
      source_counters.busy_ns.fetch_add(pulled - pull_start, std::memory_order_relaxed);
      if (!batch || cancelled) break;
      batch->peak = batch->ComputeBytes();
      batch->reserved = footprint.Expected(batch->levels[0].num_rows);
      batch->bytes = std::max(batch->peak, batch->reserved);
      if (!budget.Acquire(batch->bytes)) break;
      source_counters.budget_wait_ns.fetch_add(Now() - pulled, std::memory_order_relaxed);
      source_counters.batches.fetch_add(1, std::memory_order_relaxed);
      source_counters.rows.fetch_add(batch->levels[0].num_rows, std::memory_order_relaxed);
      ++admitted;
      Admitted();
      if (!queues[0]->Push(std::move(batch))) break;
    }
  } catch (abi::__forced_unwind&) {
    throw;  // thread cancellation (e.g. at interpreter exit) must unwind, never be swallowed
  } catch (...) {
    Fail(std::current_exception());
  }
  if (options.retries) {
    std::lock_guard<std::mutex> lock(retry_mu);
    source_done = true;
    CloseInputIfDone();
  } else {
    queues[0]->Close();
  }
}

void Pipeline::Shared::Schedule(Batch& batch) {
  if (batch.spawned.empty()) return;
  if (!options.retries) throw std::logic_error("a stage spawned retry batches in a pipeline without retries");
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(retry_mu);
    for (Batch::Spawned& s : batch.spawned) {
      s.batch->tag = next_tag++;
      waiting.emplace(now + s.delay, std::move(s.batch));
    }
  }
  retry_batches.fetch_add(static_cast<int64_t>(batch.spawned.size()), std::memory_order_relaxed);
  batch.spawned.clear();
  retry_cv.notify_all();
}

// Waits for the earliest due retry batch and admits it like the source does (it takes its bytes
// from the budget only now: a row waiting for its retry holds none).
void Pipeline::Shared::RunRetries() {
  try {
    std::unique_lock<std::mutex> lock(retry_mu);
    while (!cancelled && !input_closed) {
      if (waiting.empty()) {
        retry_cv.wait(lock);
        continue;
      }
      auto due = waiting.begin()->first;
      if (std::chrono::steady_clock::now() < due) {
        retry_cv.wait_until(lock, due);
        continue;
      }
      std::unique_ptr<Batch> batch = std::move(waiting.begin()->second);
      waiting.erase(waiting.begin());
      ++in_flight;
      lock.unlock();
      batch->peak = batch->ComputeBytes();
      batch->bytes = batch->peak;
      if (!budget.Acquire(batch->bytes)) break;
      if (!queues[0]->Push(std::move(batch))) break;
      lock.lock();
    }
  } catch (abi::__forced_unwind&) {
    throw;
  } catch (...) {
    Fail(std::current_exception());
  }
}

void Pipeline::Shared::RunStage(size_t index) {
  Operator& op = *ops[index];
  StageCounters& counters = *stage_counters[index];
  const StageOptions& stage = stage_options[index];
  try {
    while (auto item = queues[index]->Pop()) {
      std::unique_ptr<Batch> batch = std::move(*item);
      if (cancelled) break;
      if (!(batch->tag != 0 && SkipInRetry(*batch, stage))) {
        int64_t rows_in = LiveRows(*batch, stage.input_level);
        int64_t failures_before = FailureCount(*batch);
        int64_t start = Now();
        StoreMin(counters.first_start_ns, start);
        op.Process(*batch);
        int64_t end = Now();
        counters.busy_ns.fetch_add(end - start, std::memory_order_relaxed);
        StoreMax(counters.last_end_ns, end);
        counters.batches.fetch_add(1, std::memory_order_relaxed);
        counters.rows_in.fetch_add(rows_in, std::memory_order_relaxed);
        counters.rows_out.fetch_add(LiveRows(*batch, stage.output_level), std::memory_order_relaxed);
        // (A stage resolving policies removes the failures of rows it sends to retry.)
        counters.rows_failed.fetch_add(std::max<int64_t>(0, FailureCount(*batch) - failures_before),
                                       std::memory_order_relaxed);
        Schedule(*batch);
        Charge(*batch);
      }
      if (index + 1 == ops.size()) {
        ++batches;
        // After Charge: a source woken by the report must see this batch's growth. Retry batches
        // hold a few rows under their ancestors: they say nothing about how large rows grow.
        if (batch->tag == 0) Finished(*batch);
        LeftLastStage();
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
    if (!reorder || (*item)->tag != 0) {  // retry batches are handed over as they finish
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
    int64_t left = 0;
    for (size_t i = 0; i < exited.size(); ++i) {
      if (!exited[i]) {
        shared_->left_behind[i] = 1;
        ++left;
      }
    }
    std::lock_guard<std::mutex> left_lock(g_left_mu);  // under exit_mu: Exited() sees the mark
    g_left_running += left;
  }
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (exited[i]) threads_[i].join();
    else threads_[i].detach();  // still inside user code: it holds `shared_` and ends on its own
  }
  threads_.clear();
}

int64_t Pipeline::WaitForLeftBehind(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(g_left_mu);
  g_left_cv.wait_for(lock, timeout, [] { return g_left_running == 0; });
  return g_left_running;
}

PipelineStats Pipeline::stats() const {
  const Shared& sh = *shared_;
  PipelineStats s;
  s.batches = sh.batches;
  s.retry_batches = sh.retry_batches.load(std::memory_order_relaxed);
  if (sh.options.retries) {
    std::lock_guard<std::mutex> lock(sh.retry_mu);
    s.retries_waiting = static_cast<int64_t>(sh.waiting.size());
  }
  s.peak_budget_bytes = sh.budget.peak();
  s.budget_bytes = sh.budget.used();
  s.elapsed_ns = started_ ? sh.Now() : 0;
  s.source.batches = sh.source_counters.batches.load(std::memory_order_relaxed);
  s.source.rows = sh.source_counters.rows.load(std::memory_order_relaxed);
  s.source.busy_ns = sh.source_counters.busy_ns.load(std::memory_order_relaxed);
  s.source.budget_wait_ns = sh.source_counters.budget_wait_ns.load(std::memory_order_relaxed);
  for (const auto& c : sh.stage_counters) {
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
