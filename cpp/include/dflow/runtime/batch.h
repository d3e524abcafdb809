// A Batch is a morsel of root input rows plus every child row derived from them so far.
// Each flow level (root, chunks of the root, ...) is a table whose columns are keyed by IR node id;
// child rows point at their parent row by index, so ancestor values are read by reference, never copied.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dflow/arrow/array.h"

namespace dflow {

// Why one row did not produce output. `handle` refers to an error object owned by the embedding
// layer (the original Python exception, say); the core never interprets it.
struct RowFailure {
  int64_t row = 0;
  int32_t node = -1;
  std::string op;
  std::string field;
  std::string message;
  int64_t handle = -1;
  bool dead_lettered = false;  // the row's failure was written to its flow's dead-letter sink
};

// Row states (Level::failed). 4: the row failed and went to a retry batch with its descendants
// (see retry.h): not an output, not a failure, not counted in this batch.
constexpr uint8_t kRowOk = 0, kRowFailed = 1, kRowSkipped = 2, kRowFiltered = 3, kRowRetrying = 4;

struct Level {
  bool materialized = false;
  int32_t parent = -1;
  int64_t num_rows = 0;
  std::vector<int64_t> parent_index;  // row -> row of the parent level (empty for the root)
  std::vector<int64_t> child_index;   // row -> its position among its parent's children
  std::vector<uint64_t> row_ids;  // empty until Batch::RowIds computes them (or a source sets them)
  // Per row: 0 ok, 1 failed (listed in failures), 2 skipped because an ancestor failed or was
  // filtered out, 3 filtered out (a filter() predicate was not true: not a failure, no output),
  // 4 retrying (gone to a retry batch). Empty means every row is ok.
  std::vector<uint8_t> failed;
  int64_t filtered = 0;  // rows marked 3
  std::vector<RowFailure> failures;
  std::map<int32_t, ArrayPtr> columns;
  // Values the embedding language already holds for a column, made by the op that computed it (a
  // Python row function's own result objects): whoever turns that column back into such values may
  // use them instead of decoding it, as long as `column` is still the level's column of that node
  // (an op that replaces or re-gathers a column makes a new array, which has none). Opaque to the
  // core; `bytes` is what they keep alive beyond the column, charged to the batch.
  struct HostValues {
    ArrayPtr column;
    std::shared_ptr<void> values;
    int64_t bytes = 0;
  };
  std::map<int32_t, HostValues> host_values;
  // In a retry batch: rows carried only so the retried rows can read their ancestors (or a level
  // beside them, left empty). Stages never compute a context level; its rows are never output
  // or counted again.
  bool context = false;

  bool Failed(int64_t row) const { return !failed.empty() && failed[row]; }
  void Fail(RowFailure f) {
    if (failed.empty()) failed.assign(num_rows, 0);
    if (failed[f.row]) return;  // first failure wins; skipped rows stay skipped
    failed[f.row] = 1;
    failures.push_back(std::move(f));
  }
  void Filter(int64_t row) {
    if (failed.empty()) failed.assign(num_rows, 0);
    if (failed[row]) return;
    failed[row] = 3;
    ++filtered;
  }
};

struct Batch {
  int64_t seq = 0;          // position of this batch in the input stream
  int64_t first_input = 0;  // input index of the first root row
  int64_t bytes = 0;        // bytes charged against the memory budget
  int64_t reserved = 0;     // expected footprint charged at admission: `bytes` never drops below it
  int64_t peak = 0;         // the largest measured size so far (feeds the footprint estimate)
  std::vector<Level> levels;
  // When >= 0, root row ids are computed on first use by hashing this root column: flows that
  // never need ids (no failures, no lineage, no cache) never pay for them.
  int32_t root_id_node = -1;
  // 0 for a batch of inputs; > 0 for a retry batch (unique within the run, given by the pipeline
  // when it schedules it). Retry batches are handed over when they finish, never re-ordered.
  int64_t tag = 0;
  // Retry batches an operator made from this batch: the pipeline schedules each after its delay.
  struct Spawned {
    std::chrono::nanoseconds delay{0};
    std::unique_ptr<Batch> batch;
  };
  std::vector<Spawned> spawned;

  // Row ids of `level`, computed on first use: the root's by hashing root_id_node, a child level's
  // from its parent's ids and its child_index (levels made by an operator fill parent_index and
  // child_index; ids are never computed eagerly, so hashing documents is paid only when needed).
  const std::vector<uint64_t>& RowIds(int32_t level);

  // Maps every row of `level` to the row of ancestor level `ancestor` it descends from.
  std::vector<int64_t> AncestorIndex(int32_t level, int32_t ancestor) const;
  int64_t ComputeBytes() const;
};

// Stable 64-bit row ids: root ids hash the input value; child ids mix the parent id and child index.
uint64_t HashBytes(const void* data, size_t n, uint64_t seed = 0x9E3779B97F4A7C15ull);
uint64_t ChildRowId(uint64_t parent, int64_t index);
// Hashes each value of a str/bytes/int/float/bool column. A null hashes its input position
// (`first_input` + its index), so distinct inputs always get distinct ids.
std::vector<uint64_t> HashColumn(const Array& a, int64_t first_input = 0);
constexpr uint64_t kNullRowSeed = 0x6E756C6C6E756C6Cull;  // "nullnull"

// Creates level `level` as children of `parent`: one row per element of the large-list column
// `lists` (one_to_one=false) or one row per parent row whose value is `lists` itself (one_to_one=true).
// Children of failed parents are marked skipped. Returns the element column of the new level.
ArrayPtr ExplodeInto(Batch& batch, int32_t parent, int32_t level, const ArrayPtr& lists, bool one_to_one);

}  // namespace dflow
