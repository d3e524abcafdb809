// A fused expression stage: a vectorised program over the columns of one level of a batch.
//
// The planner turns consecutive expression nodes of a level into one program: registers for the
// input columns (of this level or an ancestor, read through the ancestor index), for literals and
// for each step's result. A batch is evaluated in chunks of kChunkRows rows on the shared thread
// pool; every step of the program runs over one chunk before the next chunk starts, so a chunk's
// intermediate values stay in cache and each input buffer is read once. A filter step drops rows
// from the chunk's selection: the steps after it only compute the rows that are left.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dflow/expr/kernel.h"
#include "dflow/runtime/batch.h"

namespace dflow::expr {

struct ProgramInput {
  int32_t node = -1;   // IR node id of the column
  int32_t level = 0;   // the level holding it: the program's level or an ancestor
  std::string type;    // daft_flow type name (VType::Parse)
};

struct ProgramStep {
  // A registered kernel name, or "filter" (one bool argument: rows where it is not true leave the level).
  std::string function;
  std::vector<int32_t> args;    // registers: inputs first, then literals, then one per step
  std::vector<Scalar> options;  // kernel options (a regex, a JSON path, a target type)
  int32_t node = -1;            // IR node id of the result
  bool output = false;          // written to the batch as column `node` of the program's level
  std::string op;               // how errors name the op ("str.extract", "/")
  std::string field;            // how errors name the field
};

struct ProgramSpec {
  int32_t level = 0;
  std::vector<ProgramInput> inputs;
  std::vector<std::pair<Scalar, std::string>> literals;  // value and the type name it is used as
  std::vector<ProgramStep> steps;
  int threads = 0;  // <= 0: the machine's cores
};

class Program {
 public:
  static constexpr int64_t kChunkRows = 2048;

  // Binds every step's kernel (throws TypeMismatch / std::invalid_argument as the registry does).
  explicit Program(ProgramSpec spec, const KernelRegistry& registry = KernelRegistry::Global());

  // Evaluates the program over the level: adds the output columns, fails rows whose evaluation
  // raised (Level::Fail, first error wins) and marks rows a filter dropped (Level::Filter).
  // Rows that had already failed or been filtered are not evaluated; their outputs are null.
  void Run(Batch& batch) const;

  const ProgramSpec& spec() const { return spec_; }

  // Evaluation over whole columns (no chunking, no threads): the reference the chunked path is
  // measured and tested against.
  void RunUnchunked(Batch& batch) const;

 private:
  struct Chunk;
  void RunRange(Batch& batch, const std::vector<std::vector<int64_t>>& ancestors, int64_t begin, int64_t end,
                Chunk* out) const;
  void Finish(Batch& batch, std::vector<Chunk>& chunks) const;

  ProgramSpec spec_;
  std::vector<VType> types_;                   // per register
  std::vector<std::shared_ptr<Vector>> literals_;
  std::vector<BoundKernel> kernels_;           // per step (empty exec for filters)
  std::vector<int32_t> last_use_;              // per register: the last step reading it
  std::vector<int32_t> outputs_;               // steps whose result is written out
};

// Turns a Vector into a canonical Arrow array of its type (strings copied into one buffer).
ArrayPtr ToArrow(const Vector& v);
// Views rows [begin, begin + n) of an Arrow array as a Vector (no copy for fixed-width values and
// string bytes).
std::shared_ptr<Vector> FromArrow(const Array& array, const VType& type, int64_t begin, int64_t n);
// The rows `rows[0..n)` of an Arrow array as a Vector.
std::shared_ptr<Vector> FromArrowRows(const Array& array, const VType& type, const int64_t* rows, int64_t n);

}  // namespace dflow::expr
