// The interpreter's object arenas from memory faulted in ahead of use (dflow::PrefaultPool), while
// a run turns many rows into Python objects. CPython's object allocator takes its memory in arenas
// (1 MB, fresh from mmap), and a million row dicts fault in ~190 MB page by page while holding the
// GIL: two thirds of the time a loop of dicts takes. A pool thread faults the next arenas in on
// another core meanwhile.
//
// Installed with the first session and kept for the process (arenas it handed out may be freed at
// any later time): an arena request outside sessions, of another size, or with nothing ready goes
// to the allocator that was installed before, and only arenas this pool handed out are unmapped by
// it. Off with DFLOW_PREFAULT_ARENAS=0.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <cstring>

#include "dflow/runtime/prefault_pool.h"
#include "registry.h"

namespace py = pybind11;

namespace dflow_py {
namespace {

PyObjectArenaAllocator previous;
// Leaked: the hook may be called until the interpreter's last object is freed.
dflow::PrefaultPool* pool = nullptr;

void* AllocArena(void*, size_t size) {
  if (void* p = pool->Take(size)) return p;
  return previous.alloc(previous.ctx, size);
}

void FreeArena(void*, void* p, size_t size) {
  if (!pool->UnmapIfOwned(p, size)) previous.free(previous.ctx, p, size);
}

bool Enabled() {
  const char* opt = std::getenv("DFLOW_PREFAULT_ARENAS");
  return !(opt && std::strcmp(opt, "0") == 0);
}

// GIL held: the object allocator calls the hook with it held, so it is swapped with it held.
dflow::PrefaultPool* Pool() {
  if (pool == nullptr) {
    // CPython's arena size (obmalloc's ARENA_SIZE with its radix tree: 1 MB on 64-bit). Other
    // requests (3.11+ also takes the frames' data stack chunks of threads from this allocator) pass.
    pool = new dflow::PrefaultPool(sizeof(void*) == 8 ? size_t{1} << 20 : size_t{256} << 10);
    PyObject_GetArenaAllocator(&previous);
    PyObjectArenaAllocator hook{nullptr, &AllocArena, &FreeArena};
    PyObject_SetArenaAllocator(&hook);
  }
  return pool;
}

// One run's use of the pool (see results.py): open from the first reserve() to close().
class ArenaPrefault {
 public:
  void Reserve(size_t bytes) {
    if (!Enabled()) return;
    if (!open_) {
      token_ = Pool()->Begin();
      open_ = true;
    }
    pool->Want(bytes);
  }
  void Close() {
    if (!open_) return;
    open_ = false;
    py::gil_scoped_release release;  // joins the pool's thread (which never takes the GIL)
    pool->End(token_);
  }
  ~ArenaPrefault() {
    if (open_) pool->End(token_);
  }

 private:
  bool open_ = false;
  uint64_t token_ = 0;
};

}  // namespace

void init_arena_prefault(py::module_& m) {
  py::class_<ArenaPrefault>(m, "ArenaPrefault",
                            "While open, a thread keeps the interpreter's next object arenas faulted in.")
      .def(py::init<>())
      .def("reserve", &ArenaPrefault::Reserve, py::arg("nbytes"),
           "Opens the session (first call) and keeps at least nbytes of arenas ready ahead (capped).")
      .def("close", &ArenaPrefault::Close, "Ends the session; the last one gives the ready arenas back.");
  m.def("arena_prefault_stats", [] {
        py::dict d;
        const dflow::PrefaultPool::Counts c = pool ? pool->counts() : dflow::PrefaultPool::Counts{0, 0, 0};
        d["installed"] = pool != nullptr;
        d["taken"] = c.taken;
        d["missed"] = c.missed;
        d["ready"] = c.ready;
        return d;
      },
        "{'installed', 'taken', 'missed', 'ready'}: whether the arena hook is installed, arenas taken from the "
        "pool and requests that found it empty since then, arenas ready now.");
}

}  // namespace dflow_py
