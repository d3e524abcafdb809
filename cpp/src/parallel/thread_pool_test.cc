#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "dflow/parallel.h"

namespace dflow {
namespace {

// How many distinct threads took part in a parallel loop of slow ranges.
size_t ThreadsUsed() {
  std::mutex mu;
  std::set<std::thread::id> seen;
  parallel_for(256, 2, [&](int64_t, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
  }, /*grain=*/1);
  return seen.size();
}

// A forked child has none of the parent's pool workers: it must make its own pool rather than
// queue work for threads that do not exist (or wait on a mutex one of them held).
TEST(ThreadPool, AForkedChildGetsWorkingWorkers) {
  if (default_threads() < 2) GTEST_SKIP() << "needs two hardware threads";
  ASSERT_EQ(ThreadsUsed(), 2u);  // the parent's pool exists and helps
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(ThreadsUsed() == 2 ? 0 : 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's loop ran on its calling thread only";
}

}  // namespace
}  // namespace dflow
