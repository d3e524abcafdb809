#include "dflow/runtime/heap.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace dflow {
namespace {

TEST(KeepFreedBuffersInHeap, StepsAsideWhenTheUserTunesMallocOrOptsOut) {
  setenv("DFLOW_KEEP_HEAP", "0", 1);
  EXPECT_FALSE(KeepFreedBuffersInHeap());
  unsetenv("DFLOW_KEEP_HEAP");
  setenv("MALLOC_TRIM_THRESHOLD_", "1000000", 1);
  EXPECT_FALSE(KeepFreedBuffersInHeap());
  unsetenv("MALLOC_TRIM_THRESHOLD_");
  setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536", 1);
  EXPECT_FALSE(KeepFreedBuffersInHeap());
  unsetenv("GLIBC_TUNABLES");
#if defined(__GLIBC__)
  EXPECT_TRUE(KeepFreedBuffersInHeap());
#else
  EXPECT_FALSE(KeepFreedBuffersInHeap());
#endif
}

}  // namespace
}  // namespace dflow
