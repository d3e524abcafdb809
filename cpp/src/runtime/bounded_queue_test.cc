#include "dflow/runtime/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace dflow {
namespace {

using namespace std::chrono_literals;

TEST(BoundedQueue, PushBlocksAtCapacity) {
  BoundedQueue<int> q(2);
  ASSERT_TRUE(q.Push(1));
  ASSERT_TRUE(q.Push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    EXPECT_TRUE(q.Push(3));
    pushed = true;
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(pushed);
  EXPECT_EQ(q.Pop(), 1);
  producer.join();
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), 3);
}

TEST(BoundedQueue, CloseDrainsThenEnds) {
  BoundedQueue<int> q(4);
  q.Push(1);
  q.Push(2);
  q.Close();
  EXPECT_FALSE(q.Push(3));
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), std::nullopt);
}

TEST(BoundedQueue, CloseWithDiscardDropsPendingItemsAndWakesProducers) {
  BoundedQueue<int> q(1);
  q.Push(1);
  std::thread producer([&] { EXPECT_FALSE(q.Push(2)); });
  std::this_thread::sleep_for(20ms);
  q.Close(/*discard=*/true);
  producer.join();
  EXPECT_EQ(q.Pop(), std::nullopt);
}

TEST(BoundedQueue, PopForTimesOut) {
  BoundedQueue<int> q(1);
  bool timed_out = false;
  EXPECT_EQ(q.PopFor(10ms, &timed_out), std::nullopt);
  EXPECT_TRUE(timed_out);
  q.Push(7);
  EXPECT_EQ(q.PopFor(10ms, &timed_out), 7);
  EXPECT_FALSE(timed_out);
}

TEST(BoundedQueue, ManyProducersAndConsumersLoseNothing) {
  BoundedQueue<int> q(3);
  std::atomic<long> sum{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < 4; ++p)
    threads.emplace_back([&, p] {
      for (int i = 1; i <= 1000; ++i) q.Push(p * 1000 + i);
    });
  std::vector<std::thread> consumers;
  for (int c = 0; c < 3; ++c)
    consumers.emplace_back([&] {
      while (auto v = q.Pop()) sum += *v;
    });
  for (auto& t : threads) t.join();
  q.Close();
  for (auto& t : consumers) t.join();
  long expected = 0;
  for (int p = 0; p < 4; ++p)
    for (int i = 1; i <= 1000; ++i) expected += p * 1000 + i;
  EXPECT_EQ(sum, expected);
}

}  // namespace
}  // namespace dflow
