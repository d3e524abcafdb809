// Private: helpers for the expression engine's unit tests.
#pragma once
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "dflow/expr/api.h"

namespace dflow::expr::testing {

inline ArrayPtr Strings(const std::vector<std::optional<std::string>>& values) {
  BinaryBuilder b(true);
  for (const auto& v : values) v ? b.Append(*v) : b.AppendNull();
  return b.Finish();
}
inline ArrayPtr Ints(const std::vector<std::optional<int64_t>>& values) {
  PrimitiveBuilder<int64_t> b("l");
  for (const auto& v : values) v ? b.Append(*v) : b.AppendNull();
  return b.Finish();
}
inline ArrayPtr Floats(const std::vector<std::optional<double>>& values) {
  PrimitiveBuilder<double> b("g");
  for (const auto& v : values) v ? b.Append(*v) : b.AppendNull();
  return b.Finish();
}
inline ArrayPtr Bools(const std::vector<std::optional<bool>>& values) {
  BoolBuilder b;
  for (const auto& v : values) v ? b.Append(*v) : b.AppendNull();
  return b.Finish();
}

// A batch with one level whose columns are `columns` (node ids 0, 1, ...).
inline Batch OneLevel(const std::vector<ArrayPtr>& columns) {
  Batch b;
  b.levels.resize(1);
  Level& l = b.levels[0];
  l.materialized = true;
  l.num_rows = columns.empty() ? 0 : columns[0]->length();
  for (size_t i = 0; i < columns.size(); ++i) l.columns[static_cast<int32_t>(i)] = columns[i];
  return b;
}

// Runs `function` over the columns (typed `types`) and returns the result column (node 100).
inline ArrayPtr Call(Batch& batch, const std::string& function, const std::vector<std::string>& types,
                     std::vector<Scalar> options = {}, bool unchunked = false) {
  ProgramSpec spec;
  ProgramStep step;
  step.function = function;
  for (size_t i = 0; i < types.size(); ++i) {
    spec.inputs.push_back({static_cast<int32_t>(i), 0, types[i]});
    step.args.push_back(static_cast<int32_t>(i));
  }
  step.options = std::move(options);
  step.node = 100;
  step.output = true;
  step.op = function;
  step.field = "out";
  spec.steps.push_back(step);
  Program program(spec);
  unchunked ? program.RunUnchunked(batch) : program.Run(batch);
  return batch.levels[0].columns.at(100);
}

inline std::vector<std::optional<std::string>> StringValues(const ArrayPtr& a) {
  std::vector<std::optional<std::string>> out;
  for (int64_t i = 0; i < a->length(); ++i)
    out.push_back(a->IsValid(i) ? std::optional<std::string>(std::string(a->View(i))) : std::nullopt);
  return out;
}
inline std::vector<std::optional<int64_t>> IntValues(const ArrayPtr& a) {
  std::vector<std::optional<int64_t>> out;
  for (int64_t i = 0; i < a->length(); ++i) out.push_back(a->IsValid(i) ? std::optional<int64_t>(a->Int64(i)) : std::nullopt);
  return out;
}
inline std::vector<std::optional<double>> FloatValues(const ArrayPtr& a) {
  std::vector<std::optional<double>> out;
  for (int64_t i = 0; i < a->length(); ++i) out.push_back(a->IsValid(i) ? std::optional<double>(a->Float64(i)) : std::nullopt);
  return out;
}
inline std::vector<std::optional<bool>> BoolValues(const ArrayPtr& a) {
  std::vector<std::optional<bool>> out;
  for (int64_t i = 0; i < a->length(); ++i) out.push_back(a->IsValid(i) ? std::optional<bool>(a->Bool(i)) : std::nullopt);
  return out;
}
// "row: message" of each failure of level 0.
inline std::vector<std::string> Failures(const Batch& b) {
  std::vector<std::string> out;
  for (const auto& f : b.levels[0].failures) out.push_back(std::to_string(f.row) + ": " + f.message);
  return out;
}

}  // namespace dflow::expr::testing
