// A small dependency-free thread pool for data-parallel loops in the native operators.
//
// parallel_for(n, threads, fn) calls fn(begin, end) over disjoint ranges covering [0, n), using at most
// `threads` threads including the calling one (threads <= 0: the machine's hardware concurrency). The
// caller takes part, so a nested or concurrent call never deadlocks waiting for a busy pool. The first
// exception thrown by fn is rethrown in the caller after all ranges finished or were abandoned.
#pragma once
#include <cstdint>
#include <functional>

namespace dflow {

// Number of threads used when a caller passes threads <= 0.
int default_threads();

void parallel_for(int64_t n, int threads, const std::function<void(int64_t begin, int64_t end)>& fn,
                  int64_t grain = 0);

}  // namespace dflow
