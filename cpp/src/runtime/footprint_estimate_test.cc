#include "dflow/runtime/footprint_estimate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace dflow {
namespace {

using namespace std::chrono_literals;

TEST(FootprintEstimate, NothingObservedExpectsNothing) {
  FootprintEstimate estimate;
  EXPECT_EQ(estimate.Expected(10), 0);
}

TEST(FootprintEstimate, ScalesTheMeanPeakPerRowToTheRows) {
  FootprintEstimate estimate;
  estimate.ObserveFinished(150'000'000, 1);  // one URL became a document and its chunks
  EXPECT_EQ(estimate.Expected(2), 300'000'000);
  estimate.ObserveFinished(50'000'000, 1);  // means, not maxima
  EXPECT_EQ(estimate.Expected(1), 100'000'000);
}

TEST(FootprintEstimate, BatchesWhoseRowsAllFailedSayNothing) {
  FootprintEstimate estimate;
  estimate.ObserveFinished(1'000, 0);
  EXPECT_EQ(estimate.Expected(5), 0);
}

TEST(FootprintEstimate, TheProbeEndsWithTheFirstRealRows) {
  FootprintEstimate estimate;
  std::atomic<bool> released{false};
  std::thread source([&] {
    EXPECT_TRUE(estimate.WaitForProbe(1));
    released = true;
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(released);
  estimate.ObserveFinished(10, 1);
  source.join();
  EXPECT_TRUE(released);
  EXPECT_TRUE(estimate.WaitForProbe(5));  // sizes are known: never waits again
}

TEST(FootprintEstimate, AFailedProbeLetsTheNextOneIn) {
  FootprintEstimate estimate;
  estimate.ObserveFinished(0, 0);         // the first probe's rows all failed
  EXPECT_TRUE(estimate.WaitForProbe(1));  // so a second batch may be admitted...
  std::thread source([&] { EXPECT_TRUE(estimate.WaitForProbe(2)); });  // ...but not a third yet
  std::this_thread::sleep_for(20ms);
  estimate.ObserveFinished(0, 0);
  source.join();
}

TEST(FootprintEstimate, ProbingStopsAfterManyBatchesWithoutRows) {
  FootprintEstimate estimate;
  for (int64_t i = 0; i < FootprintEstimate::kMaxProbes; ++i) estimate.ObserveFinished(0, 0);
  EXPECT_TRUE(estimate.WaitForProbe(1000));  // every row failed so far: stop probing
  EXPECT_EQ(estimate.Expected(10), 0);
}

TEST(FootprintEstimate, CancelEndsTheProbe) {
  FootprintEstimate estimate;
  std::thread source([&] { EXPECT_FALSE(estimate.WaitForProbe(1)); });
  std::this_thread::sleep_for(20ms);
  estimate.Cancel();
  source.join();
}

}  // namespace
}  // namespace dflow
