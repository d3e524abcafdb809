// A byte budget shared by one run. Only the source waits on it: every admitted batch can always
// finish, so the run cannot deadlock on memory, and the source slows down when consumers lag.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace dflow {

class MemoryBudget {
 public:
  explicit MemoryBudget(int64_t limit) : limit_(limit) {}
  // Blocks until `bytes` fit (or nothing is in use, so a single oversized batch still runs).
  // Returns false when cancelled.
  bool Acquire(int64_t bytes);
  void Add(int64_t bytes);  // charge growth of an admitted batch without waiting
  void Release(int64_t bytes);
  void Cancel();
  int64_t used() const;
  int64_t peak() const;
  int64_t limit() const { return limit_; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t limit_, used_ = 0, peak_ = 0;
  bool cancelled_ = false;
};

}  // namespace dflow
