#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "dflow/parallel.h"

namespace dflow {
namespace {

struct Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, grain;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable done_cv;
  int helpers_running = 0;  // guarded by mu
  std::exception_ptr error;  // guarded by mu

  void run() {
    for (;;) {
      if (failed.load(std::memory_order_relaxed)) return;
      const int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) return;
      try {
        (*fn)(b, std::min(n, b + grain));
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  }
};

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Offers `helpers` helper slots of `job` to idle workers.
  void offer(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (int i = 0; i < helpers; ++i) queue_.push_back(job);
      queued_.fetch_add(helpers, std::memory_order_release);
    }
    if (helpers == 1) cv_.notify_one(); else cv_.notify_all();
  }

 private:
  // After a job a worker polls the queue for a short while before sleeping on the condition variable:
  // back-to-back parallel loops (a batch per call) then start without a futex wake-up, which on a busy
  // machine can cost as much as a small loop itself.
  void spin_for_work() {
    using clock = std::chrono::steady_clock;
    const auto until = clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int i = 1;; ++i) {
      if (queued_.load(std::memory_order_acquire) > 0) return;
      if ((i & 63) == 0) {
        if (clock::now() >= until) return;
        std::this_thread::yield();
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      spin_for_work();
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        queued_.fetch_sub(1, std::memory_order_relaxed);
      }
      {
        std::lock_guard<std::mutex> lk(job->mu);
        ++job->helpers_running;
      }
      job->run();
      {
        std::lock_guard<std::mutex> lk(job->mu);
        --job->helpers_running;
      }
      job->done_cv.notify_all();
    }
  }

  static constexpr int kSpinMicros = 2000;
  std::vector<std::thread> threads_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::atomic<int> queued_{0};  // queue_.size(), readable without the lock
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// The shared pool. Leaked on purpose: joining workers from a static destructor at interpreter
// exit can deadlock.
std::atomic<ThreadPool*> g_pool{nullptr};
std::mutex g_pool_mu;  // guards creating it

// In a forked child the parent's workers do not exist (and a worker may have held one of the
// pool's mutexes at the moment of the fork): forget that pool, leaking it, and make a new one on
// first use. Only plain stores here, as a fork handler must.
void ForgetPoolInChild() {
  g_pool.store(nullptr, std::memory_order_relaxed);
  new (&g_pool_mu) std::mutex();
}

ThreadPool& shared_pool() {
  ThreadPool* pool = g_pool.load(std::memory_order_acquire);
  if (pool != nullptr) return *pool;
  static std::once_flag registered;
  std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, ForgetPoolInChild); });
  std::lock_guard<std::mutex> lk(g_pool_mu);
  pool = g_pool.load(std::memory_order_acquire);
  if (pool == nullptr) {
    pool = new ThreadPool(std::max(1, default_threads() - 1));
    g_pool.store(pool, std::memory_order_release);
  }
  return *pool;
}

}  // namespace

int default_threads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

void parallel_for(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  if (threads <= 0) threads = default_threads();
  if (grain <= 0) grain = std::max<int64_t>(1, n / (int64_t(threads) * 8));
  if (threads == 1 || n <= grain) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->grain = grain;
  ThreadPool& pool = shared_pool();
  const int helpers = static_cast<int>(std::min<int64_t>({threads - 1, pool.workers(), (n + grain - 1) / grain - 1}));
  if (helpers > 0) pool.offer(job, helpers);
  job->run();
  // Helpers that have not started yet find no work left and return at once; wait for running ones.
  // Mark the range exhausted so late helpers exit immediately.
  job->next.store(n);
  std::unique_lock<std::mutex> lk(job->mu);
  job->done_cv.wait(lk, [&] { return job->helpers_running == 0; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace dflow
