// Memory regions faulted in ahead of use by a background thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

namespace dflow {

// Fresh anonymous memory costs a page fault per 4 KB page on first touch (trap, zeroing, memory
// cgroup charge): building a million small objects in new memory spent two thirds of its time
// there. This pool keeps regions of one size (`region_bytes`) mapped and faulted in, filled by its
// own thread while sessions are open, so a caller that is about to allocate a lot (the interpreter's
// object arenas, see cpp/bindings/arena_prefault.cc) takes memory that is ready and the faults run
// on another core.
//
// Regions it handed out are tracked: `Owns` tells its own from other memory, and `Unmap` returns
// one to the kernel. Ready regions are unmapped when the last session ends, so no memory is held
// between runs. In a forked child the filler thread does not exist: the pool starts empty there
// (its ready regions are unmapped, open sessions no longer count).
class PrefaultPool {
 public:
  explicit PrefaultPool(size_t region_bytes);
  ~PrefaultPool();
  PrefaultPool(const PrefaultPool&) = delete;
  PrefaultPool& operator=(const PrefaultPool&) = delete;

  // A session: the filler runs while at least one is open. Begin returns a token for End (a session
  // begun before a fork is not ended in the child).
  uint64_t Begin();
  void End(uint64_t token);
  // Keeps at least `bytes` (rounded up to regions, at most kMaxReadyBytes) faulted in ahead while
  // sessions are open; the target only grows until the last session ends.
  void Want(size_t bytes);
  // A ready region (recorded as handed out) when `size` is the pool's region size, or nullptr: none
  // ready, no session open, or another size. The filler starts filling once a region of its size
  // was asked for (a caller that allocates in other sizes costs it nothing).
  void* Take(size_t size);
  bool Owns(void* p) const;
  // Returns `p` to the kernel when it is a region this pool handed out; false (and nothing done)
  // for other memory.
  bool UnmapIfOwned(void* p, size_t size);

  struct Counts {
    size_t ready;    // regions ready now
    uint64_t taken;  // regions taken from the ready list since the pool was made
    uint64_t missed; // requests of its size that found none ready
  };
  Counts counts() const;
  size_t ready() const { return counts().ready; }
  size_t region_bytes() const { return region_bytes_; }

  static constexpr size_t kMaxReadyBytes = size_t{64} << 20;

 private:
  void Fill();
  void StopLocked(std::unique_lock<std::mutex>& lock);
  void ReleaseReadyLocked();
  void AfterForkInChild();
  static void* MapFaulted(size_t bytes);

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::thread filler_;
  bool stopping_ = false;
  const size_t region_bytes_;
  size_t target_regions_ = 0;
  int sessions_ = 0;
  uint64_t generation_ = 1;  // bumped by fork: tokens of the parent's sessions go stale
  std::vector<void*> ready_;
  std::unordered_set<void*> handed_out_;
  uint64_t taken_ = 0, missed_ = 0;
  bool asked_ = false;  // a region of this size was asked for (the caller allocates in such regions)

  friend struct PrefaultPoolForkHooks;
};

}  // namespace dflow
