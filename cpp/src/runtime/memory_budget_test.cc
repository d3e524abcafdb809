#include "dflow/runtime/memory_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace dflow {
namespace {

using namespace std::chrono_literals;

TEST(MemoryBudget, AcquireWaitsForRelease) {
  MemoryBudget budget(100);
  ASSERT_TRUE(budget.Acquire(60));
  std::atomic<bool> admitted{false};
  std::thread waiter([&] {
    EXPECT_TRUE(budget.Acquire(60));
    admitted = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(admitted);  // 60 + 60 > 100
  budget.Release(60);
  waiter.join();
  EXPECT_TRUE(admitted);
  EXPECT_EQ(budget.used(), 60);
  EXPECT_EQ(budget.peak(), 60);
}

TEST(MemoryBudget, AnOversizedBatchRunsAlone) {
  MemoryBudget budget(100);
  ASSERT_TRUE(budget.Acquire(500));  // nothing in use: admitted, or the run could never progress
  EXPECT_EQ(budget.used(), 500);
  budget.Release(500);
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryBudget, AddChargesGrowthWithoutWaiting) {
  MemoryBudget budget(100);
  ASSERT_TRUE(budget.Acquire(90));
  budget.Add(50);  // an admitted batch grew: never blocks, so admitted work always finishes
  EXPECT_EQ(budget.used(), 140);
  EXPECT_EQ(budget.peak(), 140);
  budget.Add(-50);
  EXPECT_EQ(budget.used(), 90);
}

TEST(MemoryBudget, CancelWakesWaiters) {
  MemoryBudget budget(10);
  ASSERT_TRUE(budget.Acquire(10));
  std::thread waiter([&] { EXPECT_FALSE(budget.Acquire(5)); });
  std::this_thread::sleep_for(20ms);
  budget.Cancel();
  waiter.join();
}

}  // namespace
}  // namespace dflow
