// Process heap settings for a runtime that allocates and frees buffers of megabytes per batch.
#pragma once

namespace dflow {

// With glibc's defaults, a freed buffer of a few MB goes back to the kernel (munmap, or a trimmed
// heap) and the next batch's buffer of the same size is faulted in again page by page: on the
// chunking benchmark, more than half of a run's time was page faults and unmapping. This keeps freed
// blocks of up to 32 MB in the heap for reuse (mmap threshold 32 MB, trim threshold 128 MB), which
// bounds what the heap holds beyond its peak use. Applied once; a no-op outside glibc, when the user
// tunes malloc themselves (GLIBC_TUNABLES malloc.mmap_threshold / trim_threshold, or
// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_), or when DFLOW_KEEP_HEAP=0. Returns whether it
// changed the settings.
bool KeepFreedBuffersInHeap();

}  // namespace dflow
