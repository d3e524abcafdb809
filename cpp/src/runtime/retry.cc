#include "dflow/runtime/retry.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <utility>

#include "dflow/arrow/take.h"

namespace dflow {

namespace {

void EnsureStates(Level& l) {
  if (l.failed.empty()) l.failed.assign(l.num_rows, kRowOk);
}

void MarkRetrying(Level& l, int64_t row) {
  EnsureStates(l);
  if (l.failed[row] == kRowFiltered) --l.filtered;
  l.failed[row] = kRowRetrying;
}

bool IsDescendant(const std::vector<LevelShape>& shape, int32_t level, int32_t ancestor) {
  for (int32_t l = level; l >= 0; l = shape.at(l).parent)
    if (l == ancestor) return true;
  return false;
}

// `rows` (sorted) of `from`, as a new level whose parent rows are `parent_rows` (sorted) of the
// parent level. With `origin` set, only those columns are kept.
Level TakeRows(const Level& from, const std::vector<int64_t>& rows, const std::vector<int64_t>& parent_rows,
               const std::vector<uint64_t>& ids, const std::vector<int32_t>* origin) {
  Level out;
  out.materialized = true;
  out.parent = from.parent;
  out.num_rows = static_cast<int64_t>(rows.size());
  for (int64_t r : rows) {
    if (!from.parent_index.empty()) {
      auto it = std::lower_bound(parent_rows.begin(), parent_rows.end(), from.parent_index[r]);
      out.parent_index.push_back(it - parent_rows.begin());
    }
    if (!from.child_index.empty()) out.child_index.push_back(from.child_index[r]);
    out.row_ids.push_back(ids.at(r));
  }
  for (const auto& [node, column] : from.columns) {
    if (origin != nullptr && std::find(origin->begin(), origin->end(), node) == origin->end()) continue;
    out.columns[node] = Take(*column, rows.data(), static_cast<int64_t>(rows.size()));
  }
  return out;
}

std::unique_ptr<Batch> MakeRetryBatch(Batch& batch, int32_t level, const std::vector<int64_t>& rows, int64_t root,
                                      const std::vector<LevelShape>& shape) {
  const int32_t n = static_cast<int32_t>(batch.levels.size());
  auto out = std::make_unique<Batch>();
  out->first_input = batch.first_input + root;
  out->levels.resize(n);
  // The rows kept on the path from the root to `level`: the retried rows, then their ancestors.
  std::map<int32_t, std::vector<int64_t>> keep;
  keep[level] = rows;
  for (int32_t l = level; shape.at(l).parent >= 0; l = shape.at(l).parent) {
    const Level& child = batch.levels.at(l);
    std::vector<int64_t> up;
    for (int64_t r : keep[l]) up.push_back(child.parent_index.at(r));
    std::sort(up.begin(), up.end());
    up.erase(std::unique(up.begin(), up.end()), up.end());
    keep[shape.at(l).parent] = std::move(up);
  }
  for (int32_t l = 0; l < n; ++l) {
    auto path = keep.find(l);
    if (path != keep.end()) {
      const int32_t parent = shape.at(l).parent;
      static const std::vector<int64_t> none;
      const std::vector<int64_t>& parent_rows = parent >= 0 ? keep.at(parent) : none;
      out->levels[l] = TakeRows(batch.levels.at(l), path->second, parent_rows, batch.RowIds(l),
                                l == level ? &shape.at(l).origin_nodes : nullptr);
      out->levels[l].context = l != level;
    } else if (!IsDescendant(shape, l, level)) {
      Level& empty = out->levels[l];  // beside the path: nothing to redo there
      empty.materialized = true;
      empty.context = true;
      empty.parent = shape.at(l).parent;
    }
  }
  return out;
}

}  // namespace

std::vector<RowFailure> SpawnRetries(Batch& batch, const std::vector<RetryRequest>& requests,
                                     const std::vector<LevelShape>& shape) {
  const int32_t n = static_cast<int32_t>(batch.levels.size());
  if (static_cast<int32_t>(shape.size()) < n) throw std::invalid_argument("SpawnRetries: shape has too few levels");
  // Shallow levels first, so that a row whose ancestor is retried too is seen as already gone.
  std::vector<RetryRequest> sorted = requests;
  std::stable_sort(sorted.begin(), sorted.end(), [](const RetryRequest& a, const RetryRequest& b) {
    return a.level < b.level;  // a parent's id is smaller than its children's
  });
  // (level, root row) -> rows and the longest delay.
  std::map<std::pair<int32_t, int64_t>, std::pair<std::vector<int64_t>, std::chrono::nanoseconds>> groups;
  int32_t current = -1;
  std::vector<int64_t> to_root;
  for (const RetryRequest& req : sorted) {
    if (req.level < 0 || req.level >= n) throw std::invalid_argument("SpawnRetries: no such level");
    Level& l = batch.levels[req.level];
    if (req.row < 0 || req.row >= l.num_rows) throw std::invalid_argument("SpawnRetries: no such row");
    if (req.level != current) {
      // Rows whose ancestors went to retry at shallower levels are marked before their own requests.
      for (int32_t d = 0; d <= req.level; ++d) {
        const int32_t p = shape[d].parent;
        Level& dl = batch.levels[d];
        if (p < 0 || dl.num_rows == 0 || batch.levels[p].failed.empty()) continue;
        for (int64_t r = 0; r < dl.num_rows; ++r)
          if (batch.levels[p].failed[dl.parent_index[r]] == kRowRetrying) MarkRetrying(dl, r);
      }
      current = req.level;
      to_root = batch.AncestorIndex(req.level, 0);
    }
    if (!l.failed.empty() && l.failed[req.row] == kRowRetrying) continue;  // an ancestor's retry redoes it
    auto& group = groups[{req.level, to_root[req.row]}];
    group.first.push_back(req.row);
    group.second = std::max(group.second, req.delay);
    MarkRetrying(l, req.row);
  }
  for (auto& [key, group] : groups) {
    std::vector<int64_t>& rows = group.first;
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    batch.spawned.push_back({group.second, MakeRetryBatch(batch, key.first, rows, key.second, shape)});
  }
  // Descendants of retried rows go with them.
  for (int32_t d = 0; d < n; ++d) {
    const int32_t p = shape[d].parent;
    Level& dl = batch.levels[d];
    if (p < 0 || !dl.materialized || dl.num_rows == 0 || batch.levels[p].failed.empty()) continue;
    for (int64_t r = 0; r < dl.num_rows; ++r)
      if (batch.levels[p].failed[dl.parent_index[r]] == kRowRetrying) MarkRetrying(dl, r);
  }
  std::vector<RowFailure> removed;
  for (Level& l : batch.levels) {
    if (l.failures.empty()) continue;
    std::vector<RowFailure> kept;
    for (RowFailure& f : l.failures) {
      if (l.failed[f.row] == kRowRetrying) removed.push_back(std::move(f));
      else kept.push_back(std::move(f));
    }
    l.failures = std::move(kept);
  }
  return removed;
}

void PropagateDead(Batch& batch) {
  for (Level& l : batch.levels) {
    if (!l.materialized || l.parent < 0 || l.num_rows == 0 || l.context) continue;
    const Level& p = batch.levels.at(l.parent);
    if (p.failed.empty() || p.context) continue;
    for (int64_t r = 0; r < l.num_rows; ++r) {
      if (p.failed[l.parent_index[r]] == kRowOk) continue;
      EnsureStates(l);
      if (l.failed[r] == kRowOk) l.failed[r] = kRowSkipped;
    }
  }
}

}  // namespace dflow
