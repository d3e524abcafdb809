#include "dflow/runtime/prefault_pool.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace dflow {

// pthread_atfork hooks for every live pool: a fork while a filler thread holds a pool's lock (or
// while a thread is in the middle of Take) must leave the child a usable pool.
struct PrefaultPoolForkHooks {
  static std::mutex& Mutex() {
    static auto* m = new std::mutex();  // leaked: hooks may run during exit
    return *m;
  }
  static std::vector<PrefaultPool*>& Pools() {
    static auto* v = new std::vector<PrefaultPool*>();
    return *v;
  }
  static void Prepare() {
    Mutex().lock();
    for (PrefaultPool* p : Pools()) p->mu_.lock();
  }
  static void Parent() {
    for (PrefaultPool* p : Pools()) p->mu_.unlock();
    Mutex().unlock();
  }
  static void Child() {
    for (PrefaultPool* p : Pools()) {
      p->AfterForkInChild();
      p->mu_.unlock();
    }
    Mutex().unlock();
  }
  static void Register(PrefaultPool* pool) {
    static const bool registered = [] { return pthread_atfork(&Prepare, &Parent, &Child) == 0; }();
    (void)registered;
    std::lock_guard<std::mutex> lock(Mutex());
    Pools().push_back(pool);
  }
  static void Unregister(PrefaultPool* pool) {
    std::lock_guard<std::mutex> lock(Mutex());
    auto& v = Pools();
    v.erase(std::remove(v.begin(), v.end(), pool), v.end());
  }
};

PrefaultPool::PrefaultPool(size_t region_bytes) : region_bytes_(region_bytes) { PrefaultPoolForkHooks::Register(this); }

PrefaultPool::~PrefaultPool() {
  PrefaultPoolForkHooks::Unregister(this);
  std::unique_lock<std::mutex> lock(mu_);
  StopLocked(lock);
}

void* PrefaultPool::MapFaulted(size_t bytes) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_POPULATE
  flags |= MAP_POPULATE;  // faulted in by the one call
#endif
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#ifndef MAP_POPULATE
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t off = 0; off < bytes; off += page) static_cast<volatile char*>(p)[off] = 0;
#endif
  return p;
}

uint64_t PrefaultPool::Begin() {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait(lock, [this] { return !stopping_; });  // a last session ending elsewhere finishes first
  if (sessions_++ == 0 && !filler_.joinable()) filler_ = std::thread([this] { Fill(); });
  return generation_;
}

void PrefaultPool::End(uint64_t token) {
  std::unique_lock<std::mutex> lock(mu_);
  if (token != generation_ || sessions_ == 0) return;
  if (--sessions_ == 0) StopLocked(lock);
}

void PrefaultPool::StopLocked(std::unique_lock<std::mutex>& lock) {
  if (filler_.joinable()) {
    stopping_ = true;
    wake_.notify_all();
    std::thread filler = std::move(filler_);
    lock.unlock();
    filler.join();
    lock.lock();
    stopping_ = false;
  }
  ReleaseReadyLocked();
  target_regions_ = 0;
  wake_.notify_all();
}

void PrefaultPool::ReleaseReadyLocked() {
  for (void* p : ready_) munmap(p, region_bytes_);
  ready_.clear();
}

void PrefaultPool::Want(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_ == 0) return;
  const size_t most = std::max<size_t>(1, kMaxReadyBytes / region_bytes_);
  const size_t regions = std::min(most, (bytes + region_bytes_ - 1) / region_bytes_);
  if (regions > target_regions_) {
    target_regions_ = regions;
    wake_.notify_all();
  }
}

void PrefaultPool::Fill() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (!asked_ || ready_.size() >= target_regions_) {
      wake_.wait(lock);
      continue;
    }
    const size_t bytes = region_bytes_;
    lock.unlock();
    void* p = MapFaulted(bytes);
    lock.lock();
    if (p == nullptr) {  // out of address space or memory: stop trying until asked again
      target_regions_ = ready_.size();
      continue;
    }
    if (stopping_) {
      munmap(p, bytes);
      continue;
    }
    ready_.push_back(p);
  }
}

void* PrefaultPool::Take(size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_ == 0 || size != region_bytes_) return nullptr;
  if (!asked_) {  // the first request of the pool's size: filling starts now
    asked_ = true;
    wake_.notify_all();
  }
  if (ready_.empty()) {
    ++missed_;
    return nullptr;
  }
  void* p = ready_.back();
  ready_.pop_back();
  handed_out_.insert(p);
  ++taken_;
  wake_.notify_all();
  return p;
}

bool PrefaultPool::Owns(void* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  return handed_out_.count(p) != 0;
}

bool PrefaultPool::UnmapIfOwned(void* p, size_t size) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (handed_out_.erase(p) == 0) return false;
  }
  munmap(p, size);
  return true;
}

void PrefaultPool::AfterForkInChild() {
  // The filler thread was not copied: forget it without joining (its handle is leaked), and
  // sessions of the parent's runs no longer count here.
  if (filler_.joinable()) new std::thread(std::move(filler_));
  // A waiter the parent's filler was in the condition variable's state is gone too: start afresh
  // (the old one is not destroyed: its state refers to that waiter).
  new (&wake_) std::condition_variable();
  ReleaseReadyLocked();
  stopping_ = false;
  sessions_ = 0;
  target_regions_ = 0;
  ++generation_;
}

PrefaultPool::Counts PrefaultPool::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {ready_.size(), taken_, missed_};
}

}  // namespace dflow
