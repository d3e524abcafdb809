#include "dflow/runtime/retry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dflow/runtime/operator.h"
#include "dflow/runtime/pipeline.h"

namespace dflow {
namespace {

using namespace std::chrono_literals;

ArrayPtr Ints(const std::vector<int64_t>& v) {
  PrimitiveBuilder<int64_t> b("l", static_cast<int64_t>(v.size()));
  for (int64_t x : v) b.Append(x);
  return b.Finish();
}

ArrayPtr Lists(const std::vector<std::vector<int64_t>>& lists) {
  std::vector<int64_t> offsets{0}, values;
  for (const auto& l : lists) {
    values.insert(values.end(), l.begin(), l.end());
    offsets.push_back(static_cast<int64_t>(values.size()));
  }
  return MakeLargeList(offsets, Ints(values), {}, static_cast<int64_t>(lists.size()));
}

// Level 0: inputs 10, 11 (node 0) with lists (node 1) [1, 2, 3] and [4, 5]; level 1 made from
// them (element node 2) with a computed column (node 3); level 2 (element node 4) one row per
// level-1 row.
Batch TwoLevels() {
  Batch batch;
  batch.first_input = 10;
  batch.levels.resize(1);
  Level& root = batch.levels[0];
  root.materialized = true;
  root.num_rows = 2;
  root.row_ids = {100, 101};
  root.columns[0] = Ints({10, 11});
  root.columns[1] = Lists({{1, 2, 3}, {4, 5}});
  ExplodeOperator(0, 1, 1, 2, false).Process(batch);
  batch.levels[1].columns[3] = Ints({10, 20, 30, 40, 50});
  ExplodeOperator(1, 2, 2, 4, true).Process(batch);
  return batch;
}

const std::vector<LevelShape> kShape = {{-1, {0}}, {0, {2}}, {1, {4}}};

RowFailure FailureOf(int64_t row, int64_t handle) {
  RowFailure f;
  f.row = row;
  f.handle = handle;
  return f;
}

TEST(Retry, ARetriedChildComesBackUnderItsAncestorsAsContext) {
  Batch batch = TwoLevels();
  batch.levels[1].Fail(FailureOf(1, 7));
  batch.levels[1].Fail(FailureOf(4, 8));
  std::vector<RowFailure> removed = SpawnRetries(batch, {{1, 1, 50ms}, {1, 4, 20ms}}, kShape);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_TRUE(batch.levels[1].failures.empty());
  EXPECT_EQ(batch.levels[1].failed[1], kRowRetrying);
  EXPECT_EQ(batch.levels[2].failed[1], kRowRetrying);  // its descendant went with it
  EXPECT_EQ(batch.levels[2].failed[0], kRowOk);
  ASSERT_EQ(batch.spawned.size(), 2u);  // one per root row

  const Batch& first = *batch.spawned[0].batch;
  EXPECT_EQ(batch.spawned[0].delay, 50ms);
  EXPECT_EQ(first.first_input, 10);
  ASSERT_EQ(first.levels.size(), 3u);
  EXPECT_TRUE(first.levels[0].context);
  EXPECT_EQ(first.levels[0].num_rows, 1);
  EXPECT_EQ(first.levels[0].row_ids, std::vector<uint64_t>{100});
  EXPECT_EQ(first.levels[0].columns.at(0)->Int64(0), 10);
  EXPECT_EQ(first.levels[0].columns.size(), 2u);  // every column of a context row
  const Level& retried = first.levels[1];
  EXPECT_FALSE(retried.context);
  EXPECT_EQ(retried.num_rows, 1);
  EXPECT_EQ(retried.parent_index, std::vector<int64_t>{0});
  EXPECT_EQ(retried.child_index, std::vector<int64_t>{1});
  EXPECT_EQ(retried.row_ids, std::vector<uint64_t>{batch.levels[1].row_ids[1]});
  EXPECT_EQ(retried.columns.size(), 1u);  // only what the row is made of: computed columns are redone
  EXPECT_EQ(retried.columns.at(2)->Int64(0), 2);
  EXPECT_FALSE(first.levels[2].materialized);  // made again

  const Batch& second = *batch.spawned[1].batch;
  EXPECT_EQ(second.first_input, 11);
  EXPECT_EQ(second.levels[1].columns.at(2)->Int64(0), 5);
  EXPECT_EQ(second.levels[1].child_index, std::vector<int64_t>{1});
}

TEST(Retry, ARowWhoseAncestorIsRetriedGoesWithIt) {
  Batch batch = TwoLevels();
  batch.levels[0].Fail(FailureOf(0, 1));
  batch.levels[2].Fail(FailureOf(2, 2));  // under root 0
  batch.levels[2].Fail(FailureOf(3, 3));  // under root 1
  std::vector<RowFailure> removed = SpawnRetries(batch, {{2, 2, 0ms}, {0, 0, 0ms}, {2, 3, 0ms}}, kShape);
  EXPECT_EQ(removed.size(), 3u);
  ASSERT_EQ(batch.spawned.size(), 2u);
  const Batch& root = *batch.spawned[0].batch;  // the root row: every level below it is made again
  EXPECT_FALSE(root.levels[0].context);
  EXPECT_EQ(root.levels[0].columns.size(), 1u);
  EXPECT_FALSE(root.levels[1].materialized);
  const Batch& grandchild = *batch.spawned[1].batch;
  EXPECT_EQ(grandchild.first_input, 11);
  EXPECT_TRUE(grandchild.levels[0].context);
  EXPECT_TRUE(grandchild.levels[1].context);
  EXPECT_EQ(grandchild.levels[2].num_rows, 1);
  for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(batch.levels[1].failed[r], kRowRetrying);
  EXPECT_EQ(batch.levels[1].failed[3], kRowOk);
}

TEST(Retry, ALevelBesideTheRetriedOneIsEmptyContext) {
  Batch batch = TwoLevels();
  const std::vector<LevelShape> beside = {{-1, {0}}, {0, {2}}, {0, {4}}};  // level 2 hangs off the root
  batch.levels[2].parent = 0;
  batch.levels[1].Fail(FailureOf(0, 1));
  SpawnRetries(batch, {{1, 0, 0ms}}, beside);
  const Batch& retry = *batch.spawned[0].batch;
  EXPECT_TRUE(retry.levels[2].materialized);
  EXPECT_TRUE(retry.levels[2].context);
  EXPECT_EQ(retry.levels[2].num_rows, 0);
}

TEST(Retry, PropagateDeadSkipsChildrenOfRowsThatDidNotSurvive) {
  Batch batch = TwoLevels();
  batch.levels[0].Fail(FailureOf(1, 1));  // after its children were made
  batch.levels[1].Filter(0);
  PropagateDead(batch);
  EXPECT_EQ(batch.levels[1].failed, (std::vector<uint8_t>{3, 0, 0, 2, 2}));
  EXPECT_EQ(batch.levels[2].failed, (std::vector<uint8_t>{2, 0, 0, 2, 2}));
}

// One root row per batch (column 0: its input index), a child level of three rows per root.
class Inputs : public Source {
 public:
  explicit Inputs(int64_t n) : n_(n) {}
  std::unique_ptr<Batch> Next() override {
    if (next_ == n_) return nullptr;
    auto batch = std::make_unique<Batch>();
    batch->seq = batch->first_input = next_;
    batch->levels.resize(1);
    Level& root = batch->levels[0];
    root.materialized = true;
    root.num_rows = 1;
    root.row_ids = {static_cast<uint64_t>(next_)};
    root.columns[0] = Ints({next_});
    root.columns[1] = Lists({{0, 1, 2}});
    ++next_;
    return batch;
  }

 private:
  int64_t n_, next_ = 0;
};

// Computes node 3 of level 1 (value * 10), failing each child row with value 1 the first
// `fail_times` times it is computed (counted per input).
class Flaky : public Operator {
 public:
  explicit Flaky(int fail_times) : fail_times_(fail_times) {}
  std::string name() const override { return "flaky"; }
  void Process(Batch& batch) override {
    Level& l = batch.levels[1];
    std::vector<int64_t> out;
    for (int64_t r = 0; r < l.num_rows; ++r) {
      int64_t v = l.columns.at(2)->Int64(r);
      out.push_back(v * 10);
      if (l.Failed(r) || v != 1) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (tries_[batch.first_input]++ < fail_times_) l.Fail(FailureOf(r, batch.first_input));
    }
    l.columns[3] = Ints(out);
    ++computed_;
  }
  std::atomic<int> computed_{0};

 private:
  int fail_times_;
  std::mutex mu_;
  std::map<int64_t, int> tries_;
};

// Sends every failed child row to retry (at most `max_retries` times per input).
class RetryFailed : public Operator {
 public:
  explicit RetryFailed(int max_retries) : max_retries_(max_retries) {}
  std::string name() const override { return "retry"; }
  void Process(Batch& batch) override {
    std::vector<RetryRequest> requests;
    for (const RowFailure& f : batch.levels[1].failures)
      if (retries_[batch.first_input]++ < max_retries_) requests.push_back({1, f.row, 5ms});
    SpawnRetries(batch, requests, {{-1, {0}}, {0, {2}}});
  }

 private:
  int max_retries_;
  std::map<int64_t, int> retries_;
};

// Counts how often the root level's op runs (it must not run again for retry batches).
class RootOp : public Operator {
 public:
  std::string name() const override { return "root"; }
  void Process(Batch& batch) override {
    ++runs_;
    batch.levels[0].columns[5] = Ints({batch.first_input});
  }
  std::atomic<int> runs_{0};
};

TEST(Retry, APipelineRunsRetryBatchesAndEndsOnlyWhenNoneIsLeft) {
  for (bool ordered : {true, false}) {
    PipelineOptions options;
    options.retries = true;
    options.ordered = ordered;
    Pipeline p(std::make_unique<Inputs>(20), options);
    auto root = std::make_unique<RootOp>();
    auto flaky = std::make_unique<Flaky>(2);
    RootOp* root_op = root.get();
    Flaky* flaky_op = flaky.get();
    StageOptions explode{1};
    explode.input_level = 0;
    explode.output_level = 1;
    StageOptions at_root{1}, at_child{1};
    at_root.input_level = at_root.output_level = 0;
    at_child.input_level = at_child.output_level = 1;
    p.AddStage(std::make_unique<ExplodeOperator>(0, 1, 1, 2, false), explode);
    p.AddStage(std::move(root), at_root);
    p.AddStage(std::move(flaky), at_child);
    p.AddStage(std::make_unique<RetryFailed>(5), StageOptions{1});
    p.Start();
    std::map<int64_t, std::set<int64_t>> children;  // input -> child values that came out
    int retry_batches = 0;
    std::unique_ptr<Batch> b;
    while (true) {
      auto status = p.Next(1000ms, &b);
      ASSERT_NE(status, Pipeline::PollStatus::kTimeout);
      if (status == Pipeline::PollStatus::kEnd) break;
      retry_batches += b->tag != 0;
      const Level& l = b->levels[1];
      ASSERT_FALSE(l.context);
      for (int64_t r = 0; r < l.num_rows; ++r) {
        if (l.Failed(r)) continue;
        EXPECT_TRUE(children[b->first_input].insert(l.columns.at(2)->Int64(r)).second);
        EXPECT_EQ(l.columns.at(3)->Int64(r), l.columns.at(2)->Int64(r) * 10);
      }
      p.Release(b->bytes);
    }
    EXPECT_EQ(retry_batches, 40);  // each input's row 1 failed twice
    ASSERT_EQ(children.size(), 20u);
    for (const auto& [input, values] : children) EXPECT_EQ(values, (std::set<int64_t>{0, 1, 2})) << input;
    EXPECT_EQ(root_op->runs_, 20);       // context levels are never computed again
    EXPECT_EQ(flaky_op->computed_, 60);  // 20 batches + 40 retry batches
    EXPECT_EQ(p.stats().retry_batches, 40);
  }
}

}  // namespace
}  // namespace dflow
