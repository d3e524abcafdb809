#include "dflow/runtime/pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dflow {
namespace {

using namespace std::chrono_literals;

// One root row per batch: column 0 holds the batch's index.
class CountingSource : public Source {
 public:
  explicit CountingSource(int64_t batches) : batches_(batches) {}
  std::unique_ptr<Batch> Next() override {
    if (next_ == batches_) return nullptr;
    auto batch = std::make_unique<Batch>();
    batch->seq = next_;
    batch->first_input = next_;
    batch->levels.resize(1);
    Level& root = batch->levels[0];
    root.materialized = true;
    root.num_rows = 1;
    root.row_ids = {static_cast<uint64_t>(next_)};
    PrimitiveBuilder<int64_t> b("l", 1);
    b.Append(next_++);
    root.columns[0] = b.Finish();
    return batch;
  }

 private:
  int64_t batches_, next_ = 0;
};

// Turns each row into `bytes` of text (a read: URL -> document), slower for even batches so
// concurrent workers finish out of order; the first batch may take `first_delay` longer.
class GrowOperator : public Operator {
 public:
  GrowOperator(int64_t bytes, std::atomic<int>* in_flight, std::atomic<int>* max_in_flight,
               std::chrono::milliseconds first_delay = 0ms, int32_t node = 1)
      : bytes_(bytes), in_flight_(in_flight), max_in_flight_(max_in_flight), first_delay_(first_delay),
        node_(node) {}
  std::string name() const override { return "grow"; }
  void Process(Batch& batch) override {
    int now = ++*in_flight_;
    for (int seen = *max_in_flight_; now > seen && !max_in_flight_->compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(batch.seq % 2 ? 1ms : 4ms);
    if (batch.seq == 0) std::this_thread::sleep_for(first_delay_);
    BinaryBuilder b(true, 1);
    b.Append(std::string(static_cast<size_t>(bytes_), 'x'));
    batch.levels[0].columns[node_] = b.Finish();
    --*in_flight_;
  }

 private:
  int64_t bytes_;
  std::atomic<int>*in_flight_, *max_in_flight_;
  std::chrono::milliseconds first_delay_;
  int32_t node_;
};

class ThrowOnBatch : public Operator {
 public:
  explicit ThrowOnBatch(int64_t seq) : seq_(seq) {}
  std::string name() const override { return "throw"; }
  void Process(Batch& batch) override {
    if (batch.seq == seq_) throw std::domain_error("batch " + std::to_string(seq_) + " is bad");
  }

 private:
  int64_t seq_;
};

// Fails the root row of every batch whose value is a multiple of `every`.
class FailEvery : public Operator {
 public:
  explicit FailEvery(int64_t every) : every_(every) {}
  std::string name() const override { return "fail_every"; }
  void Process(Batch& batch) override {
    Level& root = batch.levels[0];
    for (int64_t r = 0; r < root.num_rows; ++r) {
      if (root.Failed(r) || root.columns.at(0)->Int64(r) % every_ != 0) continue;
      RowFailure f;
      f.row = r;
      f.message = "ValueError: bad";
      root.Fail(std::move(f));
    }
  }

 private:
  int64_t every_;
};

// Drains a pipeline (or takes `batches` of it), releasing each batch; returns the sequence numbers
// in the order received.
std::vector<int64_t> Drain(Pipeline& p, size_t batches = SIZE_MAX) {
  std::vector<int64_t> seqs;
  while (seqs.size() < batches) {
    std::unique_ptr<Batch> out;
    auto status = p.Next(50ms, &out);
    if (status == Pipeline::PollStatus::kEnd) return seqs;
    if (status == Pipeline::PollStatus::kTimeout) continue;
    seqs.push_back(out->seq);
    p.Release(out->bytes);
  }
  return seqs;
}

TEST(Pipeline, ConcurrentWorkersStillDeliverInInputOrder) {
  std::atomic<int> in_flight{0}, max_in_flight{0};
  PipelineOptions options;
  Pipeline p(std::make_unique<CountingSource>(40), options);
  StageOptions four;
  four.concurrency = 4;
  p.AddStage(std::make_unique<GrowOperator>(16, &in_flight, &max_in_flight), four);
  p.Start();
  std::vector<int64_t> seqs = Drain(p);
  ASSERT_EQ(seqs.size(), 40u);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(seqs[i], i);
  EXPECT_GT(max_in_flight, 1);
  EXPECT_EQ(p.stats().batches, 40);
}

TEST(Pipeline, AStageErrorReachesTheCallerWithItsType) {
  PipelineOptions options;
  Pipeline p(std::make_unique<CountingSource>(1000), options);
  p.AddStage(std::make_unique<ThrowOnBatch>(7), {});
  p.Start();
  EXPECT_THROW(Drain(p), std::domain_error);
  p.Cancel();  // joins every thread; a second Cancel (the destructor's) is harmless
}

TEST(Pipeline, CancelStopsARunThatIsStillProducing) {
  std::atomic<int> in_flight{0}, max_in_flight{0};
  PipelineOptions options;
  Pipeline p(std::make_unique<CountingSource>(1'000'000), options);
  p.AddStage(std::make_unique<GrowOperator>(8, &in_flight, &max_in_flight), {});
  p.Start();
  std::unique_ptr<Batch> out;
  while (p.Next(50ms, &out) != Pipeline::PollStatus::kBatch) {
  }
  p.Cancel();
  EXPECT_EQ(in_flight, 0);
}

// Each stage counts the live rows it received and passed on, the rows it failed, its batches and
// the time it spent; a later stage receives what an earlier one passed on.
TEST(Pipeline, StagesCountTheirRowsFailuresAndTime) {
  std::atomic<int> in_flight{0}, max_in_flight{0};
  PipelineOptions options;
  Pipeline p(std::make_unique<CountingSource>(30), options);
  StageOptions counted;
  counted.input_level = counted.output_level = 0;
  p.AddStage(std::make_unique<FailEvery>(3), counted);  // 0, 3, ..., 27: 10 rows fail
  StageOptions two = counted;
  two.concurrency = 2;
  p.AddStage(std::make_unique<GrowOperator>(8, &in_flight, &max_in_flight), two);
  p.AddStage(std::make_unique<FailEvery>(1), {});  // not counted: no levels given
  p.Start();
  Drain(p);
  PipelineStats s = p.stats();
  ASSERT_EQ(s.stages.size(), 3u);
  EXPECT_EQ(s.source.rows, 30);
  EXPECT_EQ(s.source.batches, 30);
  const StageStats& a = s.stages[0];
  EXPECT_EQ(a.batches, 30);
  EXPECT_EQ(a.rows_in, 30);
  EXPECT_EQ(a.rows_failed, 10);
  EXPECT_EQ(a.rows_out, 20);
  const StageStats& b = s.stages[1];
  EXPECT_EQ(b.rows_in, 20);
  EXPECT_EQ(b.rows_out, 20);
  EXPECT_EQ(b.rows_failed, 0);
  EXPECT_GE(b.busy_ns, 30 * 1'000'000);  // each batch sleeps at least 1 ms
  EXPECT_LE(0, b.first_start_ns);
  EXPECT_LT(b.first_start_ns, b.last_end_ns);
  EXPECT_LE(b.last_end_ns, s.elapsed_ns);
  const StageStats& c = s.stages[2];
  EXPECT_EQ(c.rows_in, 0);
  EXPECT_EQ(c.rows_out, 0);
  EXPECT_EQ(c.rows_failed, 20);  // failures are counted whatever the levels
}

struct GrowRun {
  int64_t budget, peak_budget;
  int max_in_flight;
};

// 30 batches through a 4-worker stage that grows each row to 1 MB (a read), then optionally a
// stage that adds 2 MB more (a chunker keeping the document and adding its chunks), with a budget
// of 2.5 grown rows.
GrowRun RunGrowing(bool mark_expanding, std::chrono::milliseconds first_delay, int64_t then_add = 0) {
  constexpr int64_t kGrown = 1 << 20;
  std::atomic<int> in_flight{0}, max_in_flight{0}, later{0}, later_max{0};
  PipelineOptions options;
  options.memory_budget = (kGrown + then_add) * 5 / 2;
  Pipeline p(std::make_unique<CountingSource>(30), options);
  StageOptions stage;
  stage.concurrency = 4;
  stage.expanding = mark_expanding;
  p.AddStage(std::make_unique<GrowOperator>(kGrown, &in_flight, &max_in_flight, first_delay), stage);
  if (then_add > 0) p.AddStage(std::make_unique<GrowOperator>(then_add, &later, &later_max, 0ms, 2), {});
  p.Start();
  EXPECT_EQ(Drain(p).size(), 30u);
  return {options.memory_budget, p.stats().peak_budget_bytes, max_in_flight.load()};
}

// Once the first (probe) batch has shown how large rows get, each admitted batch is charged its
// expected size up front, so the budget never overflows although four workers stand ready.
TEST(Pipeline, ExpandingStagesAreChargedBeforeTheyGrow) {
  GrowRun run = RunGrowing(/*mark_expanding=*/true, 200ms);
  EXPECT_LE(run.peak_budget, run.budget);
  EXPECT_LE(run.max_in_flight, 2);
}

// The probe lasts until a batch has been through every stage: growth after the expanding stage
// is part of the charge too.
TEST(Pipeline, GrowthAfterTheExpandingStageIsChargedToo) {
  GrowRun run = RunGrowing(/*mark_expanding=*/true, 200ms, /*then_add=*/2 << 20);
  EXPECT_LE(run.peak_budget, run.budget);
  EXPECT_LE(run.max_in_flight, 2);
}

// The contrast: the same stage, not marked, overflows the budget (the source fills every queue
// slot and worker with tiny batches while the first one is still growing).
TEST(Pipeline, WithoutTheExpandingMarkGrowthIsOnlyChargedAfterwards) {
  GrowRun run = RunGrowing(/*mark_expanding=*/false, 200ms);
  EXPECT_GT(run.peak_budget, run.budget);
}

// A call stuck in user code (an iterable waiting on a queue, a function that takes minutes) until
// released; the object making it reports when it is destroyed.
struct BlockingState {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, entered = false, destroyed = false;

  void Block() {  // the stuck call
    std::unique_lock<std::mutex> lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  }
  void Destroyed() {
    std::lock_guard<std::mutex> lock(mu);
    destroyed = true;
    cv.notify_all();
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
};

class BlockingSource : public Source {
 public:
  BlockingSource(std::shared_ptr<BlockingState> state, int64_t free_batches)
      : state_(std::move(state)), inner_(free_batches) {}
  ~BlockingSource() override { state_->Destroyed(); }
  std::unique_ptr<Batch> Next() override {
    if (std::unique_ptr<Batch> batch = inner_.Next()) return batch;
    state_->Block();
    return std::make_unique<Batch>();  // produced after the pipeline is gone: dropped
  }

 private:
  std::shared_ptr<BlockingState> state_;
  CountingSource inner_;
};

class BlockingOperator : public Operator {
 public:
  explicit BlockingOperator(std::shared_ptr<BlockingState> state) : state_(std::move(state)) {}
  ~BlockingOperator() override { state_->Destroyed(); }
  std::string name() const override { return "blocking"; }
  void Process(Batch& batch) override { state_->Block(); }

 private:
  std::shared_ptr<BlockingState> state_;
};

// Runs `run` (which starts a pipeline, waits until its stuck call has begun and destroys the
// pipeline, cancelling it), then checks that the cancel did not wait for the stuck call and that the
// object making it goes once the call ends. A watchdog releases the call after 10 s in any case, so
// a Cancel that waits fails the test instead of hanging it.
void ExpectCancelLeavesTheStuckCallBehind(const std::shared_ptr<BlockingState>& state,
                                          const std::function<void()>& run) {
  std::thread watchdog([state] {
    std::unique_lock<std::mutex> lock(state->mu);
    state->cv.wait_for(lock, 10s, [&] { return state->release; });
    state->release = true;
    state->cv.notify_all();
  });
  run();
  EXPECT_EQ(Pipeline::WaitForLeftBehind(0ms), 1);  // what interpreter exit waits for
  bool released_before_cancel_returned;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    released_before_cancel_returned = state->release;
    EXPECT_FALSE(state->destroyed);  // still inside the call, owned by the thread left behind
    state->release = true;
    state->cv.notify_all();
  }
  EXPECT_FALSE(released_before_cancel_returned) << "Cancel waited for the stuck call";
  EXPECT_EQ(Pipeline::WaitForLeftBehind(10s), 0);
  {
    std::lock_guard<std::mutex> lock(state->mu);
    EXPECT_TRUE(state->destroyed);  // dropped before the thread counted as gone
  }
  watchdog.join();
}

// Ctrl-C while the input blocks: Cancel does not wait for the input to yield.
TEST(Pipeline, CancelDoesNotWaitForASourceThatBlocks) {
  auto state = std::make_shared<BlockingState>();
  ExpectCancelLeavesTheStuckCallBehind(state, [&] {
    std::atomic<int> in_flight{0}, max_in_flight{0};
    Pipeline p(std::make_unique<BlockingSource>(state, 3), PipelineOptions{});
    p.AddStage(std::make_unique<GrowOperator>(8, &in_flight, &max_in_flight), {});
    p.Start();
    EXPECT_EQ(Drain(p, /*batches=*/3).size(), 3u);
    state->WaitEntered();
  });
}

// Ctrl-C while a stage is inside a long call: Cancel returns without it.
TEST(Pipeline, CancelDoesNotWaitForAStageInALongCall) {
  auto state = std::make_shared<BlockingState>();
  ExpectCancelLeavesTheStuckCallBehind(state, [&] {
    Pipeline p(std::make_unique<CountingSource>(1000), PipelineOptions{});
    p.AddStage(std::make_unique<BlockingOperator>(state), {});
    p.Start();
    state->WaitEntered();
  });
}

class HintRecorder : public CountingSource {
 public:
  HintRecorder(int64_t batches, std::vector<int64_t>* hints) : CountingSource(batches), hints_(hints) {}
  void Hint(int64_t expected_row_bytes) override { hints_->push_back(expected_row_bytes); }

 private:
  std::vector<int64_t>* hints_;
};

// The source learns what a root row grows into, child levels and all, to size its batches.
TEST(Pipeline, TheSourceIsToldHowLargeRowsGrow) {
  std::vector<int64_t> hints;
  std::atomic<int> in_flight{0}, max_in_flight{0};
  Pipeline p(std::make_unique<HintRecorder>(20, &hints), PipelineOptions{});
  StageOptions expanding;
  expanding.expanding = true;  // probe: one batch at a time until one finished
  p.AddStage(std::make_unique<GrowOperator>(100000, &in_flight, &max_in_flight), expanding);
  p.Start();
  Drain(p);
  ASSERT_GE(hints.size(), 20u);
  EXPECT_EQ(hints.front(), 0);  // nothing known yet
  EXPECT_GE(hints.back(), 100000);
}

}  // namespace
}  // namespace dflow
