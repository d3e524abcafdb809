#include "dflow/runtime/heap.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dflow {

bool KeepFreedBuffersInHeap() {
#if defined(__GLIBC__)
  const char* opt = std::getenv("DFLOW_KEEP_HEAP");
  if (opt && std::strcmp(opt, "0") == 0) return false;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && (std::strstr(tunables, "malloc.mmap_threshold") || std::strstr(tunables, "malloc.trim_threshold")))
    return false;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) return false;
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 128 << 20) == 1;
#else
  return false;
#endif
}

}  // namespace dflow
