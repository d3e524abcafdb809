// A closeable, bounded multi-producer multi-consumer queue.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace dflow {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // Returns false if the queue was closed before the item could be added.
  bool Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // Blocks until an item arrives; nullopt once the queue is closed and drained.
  std::optional<T> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    return TakeLocked();
  }

  // Like Pop, but gives up after `timeout` (timed_out is set) so the caller can poll for signals.
  std::optional<T> PopFor(std::chrono::milliseconds timeout, bool* timed_out) {
    std::unique_lock<std::mutex> lock(mu_);
    *timed_out = !not_empty_.wait_for(lock, timeout, [&] { return !items_.empty() || closed_; });
    if (*timed_out) return std::nullopt;
    return TakeLocked();
  }

  // No more pushes; consumers drain what is left. With discard, pending items are dropped too.
  void Close(bool discard = false) {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    if (discard) items_.clear();
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::optional<T> TakeLocked() {
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> items_;
  size_t capacity_;
  bool closed_ = false;
};

}  // namespace dflow
