#include "dflow/expr/program.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "dflow/parallel.h"
#include "kernel_util.h"

namespace dflow::expr {

// What one chunk produced: its surviving rows, their outputs, and the rows that failed or were
// filtered out.
struct Program::Chunk {
  int64_t begin = 0, end = 0;
  std::vector<int64_t> sel;                       // level rows left at the end (sorted)
  bool all = true;                                // sel is every row of [begin, end)
  std::vector<std::shared_ptr<Vector>> outputs;   // per outputs_ entry, aligned with sel
  std::vector<int64_t> filtered;                  // level rows a filter dropped
  struct Failure {
    int64_t row;
    int32_t step;
    std::string message;
  };
  std::vector<Failure> failures;
};

Program::Program(ProgramSpec spec, const KernelRegistry& registry) : spec_(std::move(spec)) {
  for (const ProgramInput& in : spec_.inputs) types_.push_back(VType::Parse(in.type));
  for (const auto& [value, type] : spec_.literals) {
    types_.push_back(VType::Parse(type));
    literals_.push_back(ScalarVector(value, types_.back()));
  }
  const int32_t base = static_cast<int32_t>(types_.size());
  last_use_.assign(static_cast<size_t>(base) + spec_.steps.size(), -1);
  for (size_t s = 0; s < spec_.steps.size(); ++s) {
    const ProgramStep& step = spec_.steps[s];
    std::vector<VType> arg_types;
    for (int32_t r : step.args) {
      if (r < 0 || r >= base + static_cast<int32_t>(s))
        throw std::invalid_argument("expression program: step " + std::to_string(s) + " reads register " +
                                    std::to_string(r) + " before it is computed");
      arg_types.push_back(types_[r]);
      last_use_[r] = std::max(last_use_[r], static_cast<int32_t>(s));
    }
    if (step.function == "filter") {
      if (arg_types.size() != 1 || arg_types[0].kind != Kind::kBool)
        throw TypeMismatch("filter needs one bool predicate");
      kernels_.push_back({VType::Bool(), nullptr});
    } else {
      kernels_.push_back(registry.Bind(step.function, arg_types, step.options));
    }
    types_.push_back(kernels_.back().out);
    if (step.output) {
      if (step.function == "filter") throw std::invalid_argument("a filter step has no output column");
      outputs_.push_back(static_cast<int32_t>(s));
      last_use_[base + s] = static_cast<int32_t>(spec_.steps.size());  // kept to the end
    }
  }
}

void Program::RunRange(Batch& batch, const std::vector<std::vector<int64_t>>& ancestors, int64_t begin, int64_t end,
                       Chunk* chunk) const {
  const Level& level = batch.levels.at(spec_.level);
  chunk->begin = begin;
  chunk->end = end;
  chunk->sel.clear();
  for (int64_t r = begin; r < end; ++r) {
    if (!level.Failed(r)) chunk->sel.push_back(r);
  }
  chunk->all = static_cast<int64_t>(chunk->sel.size()) == end - begin;
  const int32_t n_inputs = static_cast<int32_t>(spec_.inputs.size());
  const int32_t base = n_inputs + static_cast<int32_t>(literals_.size());
  std::vector<std::shared_ptr<const Vector>> regs(types_.size());
  for (size_t l = 0; l < literals_.size(); ++l) regs[n_inputs + l] = literals_[l];
  std::vector<int64_t> rows;  // scratch: rows of an input's level for the current selection

  auto load = [&](int32_t r) {
    const ProgramInput& in = spec_.inputs[r];
    const Array& col = *batch.levels.at(in.level).columns.at(in.node);
    const int64_t n = static_cast<int64_t>(chunk->sel.size());
    if (in.level == spec_.level && chunk->all) {
      regs[r] = FromArrow(col, types_[r], begin, n);
      return;
    }
    rows.resize(static_cast<size_t>(n));
    const std::vector<int64_t>* up = in.level == spec_.level ? nullptr : &ancestors[r];
    for (int64_t i = 0; i < n; ++i) rows[i] = up ? (*up)[chunk->sel[i]] : chunk->sel[i];
    regs[r] = FromArrowRows(col, types_[r], rows.data(), n);
  };

  RowErrors errors;
  for (size_t s = 0; s < spec_.steps.size(); ++s) {
    const ProgramStep& step = spec_.steps[s];
    const int64_t n = static_cast<int64_t>(chunk->sel.size());
    for (int32_t r : step.args) {
      if (r < n_inputs && !regs[r]) load(r);
    }
    if (step.function == "filter") {
      const Vector& pred = *regs[step.args[0]];
      std::vector<int64_t> keep;
      keep.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        if (pred.IsValid(i) && pred.Bool(i)) {
          keep.push_back(i);
        } else {
          chunk->filtered.push_back(chunk->sel[i]);
        }
      }
      if (static_cast<int64_t>(keep.size()) != n) {
        // Compact every live register to the rows left; inputs not read yet load them directly.
        for (size_t r = 0; r < regs.size(); ++r) {
          if (!regs[r] || regs[r]->scalar) continue;
          if (last_use_[r] <= static_cast<int32_t>(s)) {
            regs[r].reset();
            continue;
          }
          regs[r] = Gather(*regs[r], keep.data(), static_cast<int64_t>(keep.size()));
        }
        std::vector<int64_t> sel;
        sel.reserve(keep.size());
        for (int64_t i : keep) sel.push_back(chunk->sel[i]);
        chunk->sel.swap(sel);
        chunk->all = false;
      }
      continue;
    }
    std::vector<const Vector*> args;
    args.reserve(step.args.size());
    for (int32_t r : step.args) args.push_back(regs[r].get());
    errors.Clear();
    std::shared_ptr<Vector> result = kernels_[s].exec(KernelArgs{args, n, &errors});
    if (result->scalar || result->length != n)
      throw std::logic_error("kernel " + step.function + " returned " + std::to_string(result->length) +
                             " rows for " + std::to_string(n));
    for (const auto& [row, message] : errors.errors())
      chunk->failures.push_back({chunk->sel[row], static_cast<int32_t>(s), message});
    regs[base + s] = std::move(result);
    // Registers nothing reads any more are dropped now, so a chunk holds only what it still needs.
    for (int32_t r : step.args) {
      if (last_use_[r] == static_cast<int32_t>(s) && r >= n_inputs + static_cast<int32_t>(literals_.size()))
        regs[r].reset();
      else if (last_use_[r] == static_cast<int32_t>(s) && r < n_inputs)
        regs[r].reset();
    }
  }
  chunk->outputs.clear();
  for (int32_t s : outputs_) chunk->outputs.push_back(std::const_pointer_cast<Vector>(regs[base + s]));
}

namespace {

// The output column of one step over the whole level: each chunk's values at its surviving rows,
// null elsewhere. Buffers are sized first, then every chunk writes its own part in parallel.
struct OutputPart {
  const Vector* values;
  const std::vector<int64_t>* sel;
  int64_t begin, end;
};

void SetBit(uint8_t* bits, int64_t i) { bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7)); }

template <typename T>
ArrayPtr AssembleFixed(const std::vector<OutputPart>& parts, int64_t n, const std::string& format, int threads) {
  auto values = std::make_shared<std::vector<T>>(static_cast<size_t>(n));
  auto valid = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>((n + 7) / 8), 0);
  std::vector<int64_t> nulls(parts.size(), 0);
  parallel_for(static_cast<int64_t>(parts.size()), threads, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const OutputPart& part = parts[p];
      // Locals, not member reads per row: the stores below could alias them for the compiler.
      const T* src = static_cast<const T*>(part.values->values);
      const uint8_t* ok = part.values->valid;
      const int64_t* sel = part.sel->data();
      const size_t kept = part.sel->size();
      T* dst = values->data();
      uint8_t* bits = valid->data();
      int64_t valid_rows = 0;
      for (size_t i = 0; i < kept; ++i) {
        if (ok != nullptr && !ok[i]) continue;
        const int64_t row = sel[i];
        dst[row] = src[i];
        SetBit(bits, row);
        ++valid_rows;
      }
      nulls[p] = (part.end - part.begin) - valid_rows;
    }
  }, 1);
  int64_t null_count = 0;
  for (int64_t x : nulls) null_count += x;
  struct Owner {
    std::shared_ptr<std::vector<T>> v;
    std::shared_ptr<std::vector<uint8_t>> b;
  };
  auto owner = std::make_shared<Owner>(Owner{values, valid});
  static const T kEmpty{};
  return Array::Make(format, n, null_count, 0,
                     {null_count ? valid->data() : nullptr, values->empty() ? static_cast<const void*>(&kEmpty) : values->data()},
                     {}, owner, static_cast<int64_t>(values->size() * sizeof(T) + valid->size()));
}

ArrayPtr AssembleBool(const std::vector<OutputPart>& parts, int64_t n, int threads) {
  auto values = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>((n + 7) / 8) + 1, 0);
  auto valid = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>((n + 7) / 8) + 1, 0);
  std::vector<int64_t> nulls(parts.size(), 0);
  // Chunks start at multiples of kChunkRows (a multiple of 8): no two write the same byte.
  parallel_for(static_cast<int64_t>(parts.size()), threads, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const OutputPart& part = parts[p];
      int64_t valid_rows = 0;
      for (size_t i = 0; i < part.sel->size(); ++i) {
        const int64_t row = (*part.sel)[i];
        if (!part.values->IsValid(static_cast<int64_t>(i))) continue;
        if (part.values->Bool(static_cast<int64_t>(i))) SetBit(values->data(), row);
        SetBit(valid->data(), row);
        ++valid_rows;
      }
      nulls[p] = (part.end - part.begin) - valid_rows;
    }
  }, 1);
  int64_t null_count = 0;
  for (int64_t x : nulls) null_count += x;
  struct Owner {
    std::shared_ptr<std::vector<uint8_t>> a, b;
  };
  auto owner = std::make_shared<Owner>(Owner{values, valid});
  return Array::Make("b", n, null_count, 0, {null_count ? valid->data() : nullptr, values->data()}, {}, owner,
                     static_cast<int64_t>(values->size() + valid->size()));
}

ArrayPtr AssembleString(const std::vector<OutputPart>& parts, int64_t n, int threads) {
  // Pass 1 (parallel): bytes per part. Pass 2 (parallel): offsets and bytes, each part in its range.
  std::vector<int64_t> part_bytes(parts.size(), 0);
  parallel_for(static_cast<int64_t>(parts.size()), threads, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const auto* views = static_cast<const std::string_view*>(parts[p].values->values);
      const uint8_t* ok = parts[p].values->valid;
      const size_t rows = parts[p].sel->size();
      int64_t bytes = 0;
      for (size_t i = 0; i < rows; ++i)
        if (ok == nullptr || ok[i]) bytes += static_cast<int64_t>(views[i].size());
      part_bytes[p] = bytes;
    }
  }, 1);
  std::vector<int64_t> part_start(parts.size() + 1, 0);
  for (size_t p = 0; p < parts.size(); ++p) part_start[p + 1] = part_start[p] + part_bytes[p];
  // Offsets and bytes are written in full below: allocated without zero-filling them first.
  std::shared_ptr<int64_t> offsets(new int64_t[static_cast<size_t>(n) + 1], std::default_delete<int64_t[]>());
  offsets.get()[0] = 0;
  std::shared_ptr<char> data(new char[static_cast<size_t>(part_start.back()) + 1], std::default_delete<char[]>());
  auto valid = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>((n + 7) / 8) + 1, 0);
  std::vector<int64_t> nulls(parts.size(), 0);
  parallel_for(static_cast<int64_t>(parts.size()), threads, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const OutputPart& part = parts[p];
      // Locals, not member reads per row: the stores below could alias them for the compiler.
      const auto* views = static_cast<const std::string_view*>(part.values->values);
      const uint8_t* ok = part.values->valid;
      const int64_t* sel = part.sel->data();
      const size_t kept = part.sel->size();
      int64_t* off = offsets.get();
      uint8_t* bits = valid->data();
      char* bytes = data.get();
      int64_t at = part_start[p];
      size_t k = 0;
      int64_t valid_rows = 0;
      // Rows whose bytes follow each other in the chunk's buffer (a kernel's arena) are copied
      // as one run.
      const char* run = nullptr;
      size_t run_bytes = 0;
      int64_t run_at = at;
      for (int64_t row = part.begin; row < part.end; ++row) {
        if (k < kept && sel[k] == row) {
          if (ok == nullptr || ok[k]) {
            const std::string_view s = views[k];
            if (!s.empty()) {
              if (run_bytes && s.data() == run + run_bytes) {
                run_bytes += s.size();
              } else {
                if (run_bytes) std::memcpy(bytes + run_at, run, run_bytes);
                run = s.data();
                run_bytes = s.size();
                run_at = at;
              }
            }
            at += static_cast<int64_t>(s.size());
            SetBit(bits, row);
            ++valid_rows;
          }
          ++k;
        }
        off[row + 1] = at;
      }
      if (run_bytes) std::memcpy(bytes + run_at, run, run_bytes);
      nulls[p] = (part.end - part.begin) - valid_rows;
    }
  }, 1);
  int64_t null_count = 0;
  for (int64_t x : nulls) null_count += x;
  struct Owner {
    std::shared_ptr<int64_t> o;
    std::shared_ptr<char> d;
    std::shared_ptr<std::vector<uint8_t>> v;
  };
  auto owner = std::make_shared<Owner>(Owner{offsets, data, valid});
  return Array::Make("U", n, null_count, 0, {null_count ? valid->data() : nullptr, offsets.get(), data.get()}, {},
                     owner, (n + 1) * 8 + part_start.back() + static_cast<int64_t>(valid->size()));
}

// Lists (split, list.slice, ...): concatenate the parts, then gather the level's rows (nulls for
// rows a chunk did not keep).
ArrayPtr AssembleGeneric(const std::vector<OutputPart>& parts, int64_t n, const VType& type) {
  std::vector<const Vector*> values;
  std::vector<int64_t> index(static_cast<size_t>(n), -1);
  int64_t base = 0;
  for (const OutputPart& part : parts) {
    values.push_back(part.values);
    for (size_t i = 0; i < part.sel->size(); ++i) index[(*part.sel)[i]] = base + static_cast<int64_t>(i);
    base += static_cast<int64_t>(part.sel->size());
  }
  auto all = Concat(values, type);
  if (all->length == 0) return ToArrow(*Materialize(*ScalarVector(Scalar::Null(), type), n));
  std::vector<uint8_t> missing(static_cast<size_t>(n), 0);
  for (int64_t r = 0; r < n; ++r) {
    if (index[r] < 0) {
      index[r] = 0;
      missing[r] = 1;
    }
  }
  auto out = Gather(*all, index.data(), n);
  uint8_t* valid = out->MutableValidity();
  for (int64_t r = 0; r < n; ++r) valid[r] &= !missing[r];
  return ToArrow(*out);
}

}  // namespace

void Program::Finish(Batch& batch, std::vector<Chunk>& chunks) const {
  Level& level = batch.levels.at(spec_.level);
  const int64_t n = level.num_rows;
  const int threads = spec_.threads;
  for (size_t o = 0; o < outputs_.size(); ++o) {
    const int32_t s = outputs_[o];
    std::vector<OutputPart> parts;
    parts.reserve(chunks.size());
    for (const Chunk& c : chunks) parts.push_back({c.outputs[o].get(), &c.sel, c.begin, c.end});
    const VType& type = kernels_[s].out;
    ArrayPtr column;
    switch (type.kind) {
      case Kind::kBool: column = AssembleBool(parts, n, threads); break;
      case Kind::kInt64:
        column = AssembleFixed<int64_t>(parts, n, "l", threads);
        break;
      case Kind::kFloat64:
        column = AssembleFixed<double>(parts, n, "g", threads);
        break;
      case Kind::kString: column = AssembleString(parts, n, threads); break;
      default: column = AssembleGeneric(parts, n, type); break;
    }
    level.columns[spec_.steps[s].node] = std::move(column);
  }
  // Failures first (a failed row is a failure even if a later filter would have dropped it), then
  // filtered rows; both in row order within each chunk.
  for (const Chunk& c : chunks) {
    for (const auto& f : c.failures) {
      const ProgramStep& step = spec_.steps[f.step];
      RowFailure failure;
      failure.row = f.row;
      failure.node = step.node;
      failure.op = step.op.empty() ? step.function : step.op;
      failure.field = step.field;
      failure.message = f.message;
      level.Fail(std::move(failure));
    }
  }
  for (const Chunk& c : chunks)
    for (int64_t row : c.filtered) level.Filter(row);
}

void Program::Run(Batch& batch) const {
  const Level& level = batch.levels.at(spec_.level);
  const int64_t n = level.num_rows;
  std::vector<std::vector<int64_t>> ancestors(spec_.inputs.size());
  for (size_t r = 0; r < spec_.inputs.size(); ++r)
    if (spec_.inputs[r].level != spec_.level) ancestors[r] = batch.AncestorIndex(spec_.level, spec_.inputs[r].level);
  const int64_t n_chunks = (n + kChunkRows - 1) / kChunkRows;
  std::vector<Chunk> chunks(static_cast<size_t>(n_chunks));
  parallel_for(n_chunks, spec_.threads, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c)
      RunRange(batch, ancestors, c * kChunkRows, std::min(n, (c + 1) * kChunkRows), &chunks[c]);
  }, 1);
  Finish(batch, chunks);
}

void Program::RunUnchunked(Batch& batch) const {
  const Level& level = batch.levels.at(spec_.level);
  std::vector<std::vector<int64_t>> ancestors(spec_.inputs.size());
  for (size_t r = 0; r < spec_.inputs.size(); ++r)
    if (spec_.inputs[r].level != spec_.level) ancestors[r] = batch.AncestorIndex(spec_.level, spec_.inputs[r].level);
  std::vector<Chunk> chunks(level.num_rows > 0 ? 1 : 0);
  if (!chunks.empty()) RunRange(batch, ancestors, 0, level.num_rows, &chunks[0]);
  Finish(batch, chunks);
}

}  // namespace dflow::expr
