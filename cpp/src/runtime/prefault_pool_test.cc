#include "dflow/runtime/prefault_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace dflow {
namespace {

constexpr size_t kRegion = 1 << 20;

// Waits (at most ~10 s) until the filler has `n` regions ready.
bool WaitReady(const PrefaultPool& pool, size_t n) {
  for (int i = 0; i < 10000 && pool.ready() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return pool.ready() >= n;
}

TEST(PrefaultPool, HandsOutZeroedRegionsFilledAheadWhileASessionIsOpen) {
  PrefaultPool pool(kRegion);
  EXPECT_EQ(pool.Take(kRegion), nullptr);  // no session: nothing, and nothing is filled
  uint64_t session = pool.Begin();
  pool.Want(3 * kRegion);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool.ready(), 0u);  // nothing until a region of its size is asked for
  EXPECT_EQ(pool.Take(kRegion), nullptr);
  EXPECT_EQ(pool.counts().missed, 1u);
  ASSERT_TRUE(WaitReady(pool, 3));
  EXPECT_EQ(pool.ready(), 3u);  // no more than asked for
  char* p = static_cast<char*>(pool.Take(kRegion));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(pool.Owns(p));
  EXPECT_FALSE(pool.Owns(p + 4096));
  for (size_t i = 0; i < kRegion; i += 512) ASSERT_EQ(p[i], 0);
  p[kRegion - 1] = 7;  // writable, all of it
  ASSERT_TRUE(WaitReady(pool, 3));  // taking one makes the filler top the pool up
  int other = 0;
  EXPECT_FALSE(pool.UnmapIfOwned(&other, sizeof other));
  EXPECT_TRUE(pool.UnmapIfOwned(p, kRegion));
  EXPECT_FALSE(pool.Owns(p));
  EXPECT_EQ(pool.counts().taken, 1u);
  pool.End(session);
  EXPECT_EQ(pool.ready(), 0u);  // the last session's end gives the ready regions back
  EXPECT_EQ(pool.Take(kRegion), nullptr);
}

TEST(PrefaultPool, TheFillerRunsUntilTheLastSessionEnds) {
  PrefaultPool pool(kRegion);
  uint64_t a = pool.Begin(), b = pool.Begin();
  pool.Want(2 * kRegion);
  pool.Take(kRegion);
  ASSERT_TRUE(WaitReady(pool, 2));
  pool.End(a);
  EXPECT_EQ(pool.ready(), 2u);
  void* p = pool.Take(kRegion);
  EXPECT_NE(p, nullptr);
  pool.End(b);
  pool.End(b);  // ending twice is harmless
  EXPECT_EQ(pool.ready(), 0u);
  EXPECT_TRUE(pool.Owns(p));  // handed out before the end: still the pool's to unmap
  EXPECT_TRUE(pool.UnmapIfOwned(p, kRegion));
  uint64_t c = pool.Begin();  // and it starts again
  pool.Want(kRegion);
  ASSERT_TRUE(WaitReady(pool, 1));
  pool.End(c);
}

TEST(PrefaultPool, ServesItsOwnSizeOnlyAndCapsWhatItHoldsAhead) {
  PrefaultPool pool(kRegion);
  uint64_t s = pool.Begin();
  pool.Want(size_t{1} << 40);  // capped at kMaxReadyBytes
  pool.Want(kRegion);           // the target does not shrink
  EXPECT_EQ(pool.Take(kRegion / 4), nullptr);  // another size: passed over, and filling does not start
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool.ready(), 0u);
  EXPECT_EQ(pool.Take(kRegion), nullptr);
  ASSERT_TRUE(WaitReady(pool, 2));
  EXPECT_EQ(pool.Take(kRegion / 4), nullptr);
  EXPECT_EQ(pool.region_bytes(), kRegion);
  void* p = pool.Take(kRegion);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(pool.UnmapIfOwned(p, kRegion));
  ASSERT_TRUE(WaitReady(pool, PrefaultPool::kMaxReadyBytes / kRegion));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool.ready() * kRegion, PrefaultPool::kMaxReadyBytes);
  pool.End(s);
}

TEST(PrefaultPool, AForkedChildStartsWithAnEmptyPoolAndCanUseItAgain) {
  PrefaultPool pool(kRegion);
  uint64_t s = pool.Begin();
  pool.Want(2 * kRegion);
  pool.Take(kRegion);
  ASSERT_TRUE(WaitReady(pool, 2));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool ok = pool.ready() == 0 && pool.Take(kRegion) == nullptr;
    pool.End(s);  // the parent's session: ignored here
    uint64_t mine = pool.Begin();
    pool.Want(kRegion);
    ok = ok && WaitReady(pool, 1);
    void* p = pool.Take(kRegion);
    ok = ok && p != nullptr && pool.Owns(p);
    pool.End(mine);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(pool.ready(), 2u);  // the parent's pool is untouched
  pool.End(s);
}

}  // namespace
}  // namespace dflow
