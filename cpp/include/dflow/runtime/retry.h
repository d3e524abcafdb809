// Retrying failed rows without holding up their batch.
//
// A failed row whose flow's policy retries it leaves its batch: it and its descendants are marked
// retrying (kRowRetrying: not output, not failed, not counted there) and the row comes back later
// in a retry batch of its own. A retry batch holds every level of the plan:
//   - the retried rows' ancestors, with every column they had (carried as context: stages never
//     compute them again, sinks never write them again, readers never output them);
//   - the retried rows' level, with only the columns its rows are made with (their input, the
//     chunk offsets): every op of that level runs again for them;
//   - the descendants' levels not made yet, so their makers make them again;
//   - every other level empty (context), so nothing beside the retried rows is redone.
// Rows keep their row ids and child positions, and the batch's first_input is their input's
// index, so a retried row is read like any other.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "dflow/runtime/batch.h"

namespace dflow {

struct RetryRequest {
  int32_t level = 0;
  int64_t row = 0;
  std::chrono::nanoseconds delay{0};
};

// The plan's shape, which a batch alone does not tell: each level's parent (-1 for the root) and
// the columns a level's rows are made with (its input node and its origin's attributes).
struct LevelShape {
  int32_t parent = -1;
  std::vector<int32_t> origin_nodes;
};

// Moves the requested rows (with their descendants) out of `batch` into retry batches, one per
// (level, root row), appended to `batch.spawned` with the longest delay of their rows. A request
// for a row whose ancestor is retried as well is dropped: the ancestor's retry redoes it. Returns
// the failures removed from `batch` (rows that went to retry), so the caller can release what
// their handles refer to.
std::vector<RowFailure> SpawnRetries(Batch& batch, const std::vector<RetryRequest>& requests,
                                     const std::vector<LevelShape>& shape);

// Marks every ok row whose parent row did not survive (failed, skipped, filtered, retrying) as
// skipped, top down, so that a stage reading only its own level (a sink) never sees it.
void PropagateDead(Batch& batch);

}  // namespace dflow
