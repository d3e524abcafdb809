#include "dflow/runtime/batch.h"

#include <algorithm>
#include <stdexcept>

#include "dflow/runtime/operator.h"

namespace dflow {

std::vector<int64_t> Batch::AncestorIndex(int32_t level, int32_t ancestor) const {
  const Level& start = levels.at(level);
  std::vector<int64_t> index(start.num_rows);
  for (int64_t i = 0; i < start.num_rows; ++i) index[i] = i;
  int32_t current = level;
  while (current != ancestor) {
    const Level& l = levels.at(current);
    if (l.parent < 0) throw std::logic_error("AncestorIndex: level is not a descendant");
    for (auto& i : index) i = l.parent_index[i];
    current = l.parent;
  }
  return index;
}

const std::vector<uint64_t>& Batch::RowIds(int32_t level) {
  Level& l = levels.at(level);
  if (!l.row_ids.empty() || l.num_rows == 0) return l.row_ids;
  if (level == 0) {
    if (root_id_node >= 0) l.row_ids = HashColumn(*l.columns.at(root_id_node), first_input);
  } else if (l.parent >= 0 && static_cast<int64_t>(l.child_index.size()) == l.num_rows) {
    // A child's id mixes its parent's id and its index among the parent's children.
    const std::vector<uint64_t>& parent_ids = RowIds(l.parent);  // levels is not resized here
    if (!parent_ids.empty()) {
      std::vector<uint64_t> ids(static_cast<size_t>(l.num_rows));
      for (int64_t i = 0; i < l.num_rows; ++i) ids[i] = ChildRowId(parent_ids[l.parent_index[i]], l.child_index[i]);
      l.row_ids = std::move(ids);
    }
  }
  return l.row_ids;
}

std::vector<uint64_t> HashColumn(const Array& a, int64_t first_input) {
  std::vector<uint64_t> out(a.length());
  for (int64_t i = 0; i < a.length(); ++i) {
    if (!a.IsValid(i)) {
      // A null (a None input, or an input that failed conversion) has no content to hash: its
      // position tells it apart from every other input.
      uint64_t key[2] = {kNullRowSeed, static_cast<uint64_t>(first_input + i)};
      out[i] = HashBytes(key, sizeof(key));
    } else if (a.is_string_like()) {
      auto v = a.View(i);
      out[i] = HashBytes(v.data(), v.size());
    } else if (a.format() == "l") {
      int64_t x = a.Int64(i);
      out[i] = HashBytes(&x, 8);
    } else if (a.format() == "g") {
      double x = a.Float64(i);
      out[i] = HashBytes(&x, 8);
    } else if (a.format() == "b") {
      uint8_t x = a.Bool(i);
      out[i] = HashBytes(&x, 1);
    } else {
      throw std::invalid_argument("row ids: cannot hash Arrow format '" + a.format() + "'");
    }
  }
  return out;
}

int64_t Batch::ComputeBytes() const {
  int64_t bytes = 0;
  // A column can sit in several levels (chain() makes a one-to-one child level whose element
  // column is the parent's array): it is held once, so it is counted once.
  std::vector<const Array*> seen;
  for (const auto& l : levels) {
    bytes += static_cast<int64_t>(l.parent_index.size() * 8 + l.child_index.size() * 8 + l.row_ids.size() * 8 +
                                  l.failed.size());
    for (const auto& [id, col] : l.columns) {
      if (std::find(seen.begin(), seen.end(), col.get()) != seen.end()) continue;
      seen.push_back(col.get());
      bytes += col->nbytes();
    }
    for (const auto& [id, host] : l.host_values) bytes += host.bytes;
  }
  return bytes;
}

// FNV-1a over 8-byte words with a final avalanche: fast, stable across runs and platforms.
uint64_t HashBytes(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed ^ (n * 0x100000001B3ull);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

uint64_t ChildRowId(uint64_t parent, int64_t index) {
  uint64_t buf[2] = {parent, static_cast<uint64_t>(index)};
  return HashBytes(buf, sizeof(buf), 0xC2B2AE3D27D4EB4Full);
}

ArrayPtr ExplodeInto(Batch& batch, int32_t parent, int32_t level, const ArrayPtr& lists, bool one_to_one) {
  if (static_cast<int32_t>(batch.levels.size()) <= level) batch.levels.resize(level + 1);
  const Level& p = batch.levels.at(parent);
  Level out;
  out.materialized = true;
  out.parent = parent;
  // Children of failed parents (or of null lists) are created but marked skipped (2): operators
  // pass over them and they never reach the output, which keeps the element column zero-copy.
  auto add_child = [&](int64_t parent_row, int64_t index, bool skipped) {
    out.parent_index.push_back(parent_row);
    out.child_index.push_back(index);
    if (skipped) {
      out.failed.resize(out.parent_index.size(), 0);
      out.failed.back() = 2;
    }
  };
  ArrayPtr element;
  if (one_to_one) {
    for (int64_t i = 0; i < p.num_rows; ++i) add_child(i, 0, p.Failed(i));
    element = lists;
  } else {
    if (lists->format() != "+L") throw std::invalid_argument("flat_map source column must be a large_list");
    if (p.num_rows == 0) {
      element = lists->children().at(0)->Slice(0, 0);
    } else {
      for (int64_t i = 0; i < p.num_rows; ++i) {
        auto [begin, end] = lists->ListRange(i);
        bool skipped = p.Failed(i) || !lists->IsValid(i);
        for (int64_t k = begin; k < end; ++k) add_child(i, k - begin, skipped);
      }
      int64_t first = lists->ListRange(0).first, last = lists->ListRange(p.num_rows - 1).second;
      element = lists->children().at(0)->Slice(first, last - first);
    }
  }
  out.num_rows = static_cast<int64_t>(out.parent_index.size());
  if (!out.failed.empty()) out.failed.resize(out.num_rows, 0);
  batch.levels[level] = std::move(out);
  return element;
}

void ExplodeOperator::Process(Batch& batch) {
  const ArrayPtr& source = batch.levels.at(parent_).columns.at(source_node_);
  ArrayPtr element = ExplodeInto(batch, parent_, level_, source, one_to_one_);
  batch.levels[level_].columns[element_node_] = element;
}

}  // namespace dflow
