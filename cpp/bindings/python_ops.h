// Operators that call Python: the row-wise fast path (a C++ loop over Arrow buffers calling the
// function with the GIL held only for the loop) and a generic operator that delegates a whole
// batch to a Python runner (batch functions, async functions, types without a fast path).
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dflow/runtime/operator.h"
#include "dflow/runtime/retry.h"
#include "gil.h"

namespace dflow_py {
namespace py = pybind11;

// Python exception objects referenced by RowFailure::handle. Only touched with the GIL held.
class ErrorTable {
 public:
  int64_t Put(py::object error) {
    int64_t h = next_++;
    errors_[h] = std::move(error);
    return h;
  }
  // The object, left in the table (the results still take it later).
  py::object Peek(int64_t handle) const {
    auto it = errors_.find(handle);
    return it == errors_.end() ? py::none() : it->second;
  }
  py::object Take(int64_t handle) {
    auto it = errors_.find(handle);
    if (it == errors_.end()) return py::none();
    py::object e = std::move(it->second);
    errors_.erase(it);
    return e;
  }
  void Clear() { errors_.clear(); }

 private:
  int64_t next_ = 0;
  std::unordered_map<int64_t, py::object> errors_;
};

// Where an operator reads one argument: a node's column at the operator's level or an ancestor.
// Node kInputIndexArg is no column but each row's input index (the batch's first input plus the
// row's root row), for ops that name their output by the inputs rows came from (sinks).
// Node kBatchTagArg: each row's batch tag (0, or the retry batch's number), so sinks name the
// writes of retried rows apart from the first ones.
struct ArgSpec {
  int32_t node;
  int32_t level;
};
inline constexpr int32_t kInputIndexArg = -1;
inline constexpr int32_t kBatchTagArg = -2;

// A batch handed to Python: a finished one (owned), or one a stage lends for the length of a call.
struct PyBatch {
  std::shared_ptr<dflow::Batch> batch;

  const dflow::Level& level(int32_t l) const {
    if (l < 0 || l >= static_cast<int32_t>(batch->levels.size()) || !batch->levels[l].materialized)
      throw py::index_error("level " + std::to_string(l) + " is not materialized in this batch");
    return batch->levels[l];
  }
};

// The row a row-wise function is being called for on this thread (for timeout warnings); -1
// input when none.
struct CurrentRow {
  uint64_t row_id = 0;
  int64_t input = -1;
};
CurrentRow& CurrentRowOfThread();

// Node kRowIdArg stands for each row's 64-bit row id (checkpointed sinks skip rows already committed).
inline constexpr int32_t kRowIdArg = -3;

struct PythonOpInfo {
  int32_t node;    // output node id
  int32_t level;   // level the output column belongs to
  std::vector<ArgSpec> args;
  std::string op;     // for messages: "run_python(fn)"
  std::string field;  // output field name
  std::string flow;   // flow name
};

class PythonRowOperator : public dflow::Operator {
 public:
  // out_format: canonical Arrow format of the result, or "" to hand results to `build` (Python).
  // `convert[k]`: for arguments without a fast conversion, a callable pa.Array -> list.
  // `root_objects(first_input)` may return the Python objects the batch's root inputs were made
  // from (or None); arguments reading root node `root_node` then use them instead of decoding.
  // `track_rows`: publish the row each call is for (CurrentRowOfThread), for ops with a timeout.
  // `keep_results` (with an out_format): the function's own result objects stay with the column
  // (Level::host_values) for rows made into Python objects later (see BatchResultObjects), unless
  // the results that are not also arguments hold more than `keep_results_max_bytes` (-1: no limit).
  PythonRowOperator(PythonOpInfo info, py::object fn, std::string out_format, std::vector<py::object> convert,
                    py::object build, py::object root_objects, int32_t root_node,
                    std::shared_ptr<ErrorTable> errors, bool track_rows = false, bool keep_results = false,
                    int64_t keep_results_max_bytes = -1);
  ~PythonRowOperator() override;
  std::string name() const override { return info_.op; }
  void Process(dflow::Batch& batch) override;

 private:
  PythonOpInfo info_;
  py::object fn_, build_, root_objects_;
  int32_t root_node_;
  std::vector<py::object> convert_;
  std::string out_format_;
  std::shared_ptr<ErrorTable> errors_;
  bool track_rows_;
  bool keep_results_;
  int64_t keep_results_max_bytes_;
};

// The Python objects a row function returned for column `node` of `level` (a list aligned with
// the column; None where a value was not kept), if the column is still the one they were made
// for; else None.
py::object BatchResultObjects(const dflow::Batch& batch, int32_t level, int32_t node);

// Calls runner(args, failed_mask) -> (column, [(row, error_or_message), ...]) with the GIL held.
// args[k] is (pyarrow.Array, ancestor_index pyarrow.Array or None); a kInputIndexArg argument is
// (int64 pyarrow.Array of input indices, None); a kRowIdArg argument is (uint64 pyarrow.Array, None).
class PythonBatchOperator : public dflow::Operator {
 public:
  PythonBatchOperator(PythonOpInfo info, py::object runner, std::shared_ptr<ErrorTable> errors);
  ~PythonBatchOperator() override;
  std::string name() const override { return info_.op; }
  void Process(dflow::Batch& batch) override;

 private:
  PythonOpInfo info_;
  py::object runner_;
  std::shared_ptr<ErrorTable> errors_;
};

// Applies the flows' failure policies to a batch whose every op (but the sinks) has run: calls
// resolver(batch, failures) -> (parent_failures, retries, dead_lettered) with the GIL held, only
// for batches with failures. `failures[level]` lists (row, node, op, field, message, error) per
// failed row; the batch is lent for the call only. Then adds the parents' failures (fail_parent:
// (level, row, op, field, error)), marks the dead-lettered failures ((level, row)), moves the rows
// to retry ((level, row, delay seconds)) into retry batches (dflow::SpawnRetries) and skips the
// descendants of every row that did not survive, so the sinks after it never see them.
class PolicyOperator : public dflow::Operator {
 public:
  PolicyOperator(py::object resolver, std::vector<dflow::LevelShape> shape, std::shared_ptr<ErrorTable> errors);
  ~PolicyOperator() override;
  std::string name() const override { return "policies"; }
  void Process(dflow::Batch& batch) override;

 private:
  py::object resolver_;
  std::vector<dflow::LevelShape> shape_;
  std::shared_ptr<ErrorTable> errors_;
};

}  // namespace dflow_py
