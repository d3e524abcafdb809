// The values an expression program works on: one register's rows of one chunk of a batch.
//
// A Vector is a flat, read-mostly view: fixed-width values, one validity byte per row (so kernels
// test validity with a load, not bit arithmetic), strings as string_views (into the batch's Arrow
// buffers for inputs, into an arena for computed strings), lists as offsets over a child Vector.
// Input columns are viewed without copies wherever the layout allows (int64/float64 values,
// string bytes); a chunk is small enough (a few thousand rows) that its registers stay in cache.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dflow::expr {

enum class Kind : uint8_t { kBool, kInt64, kFloat64, kFloat32, kString, kList };

// A physical value type. Logical types map onto these: str/JSON/HTML -> string,
// Embedding -> list<float32> (fixed size when the dimension is known), list[T] -> list<T>.
struct VType {
  Kind kind = Kind::kInt64;
  std::shared_ptr<const VType> element;  // kList
  int32_t fixed_size = 0;                 // kList: elements per row when fixed (Embedding[N]); 0 = variable

  static VType Bool() { return {Kind::kBool, nullptr, 0}; }
  static VType Int64() { return {Kind::kInt64, nullptr, 0}; }
  static VType Float64() { return {Kind::kFloat64, nullptr, 0}; }
  static VType Float32() { return {Kind::kFloat32, nullptr, 0}; }
  static VType String() { return {Kind::kString, nullptr, 0}; }
  static VType List(VType element, int32_t fixed_size = 0) {
    return {Kind::kList, std::make_shared<const VType>(std::move(element)), fixed_size};
  }
  // Parses the daft_flow type names the planner sends: bool, int, float, str, JSON, HTML,
  // list[T], Embedding, Embedding[N]. Throws std::invalid_argument for others.
  static VType Parse(std::string_view name);
  // The Arrow C format of the canonical array for this type ("l", "U", "+L", "+w:384", ...).
  std::string ArrowFormat() const;
  std::string ToString() const;
  bool operator==(const VType& o) const;
  bool operator!=(const VType& o) const { return !(*this == o); }
  bool is_numeric() const { return kind == Kind::kInt64 || kind == Kind::kFloat64; }
};

class Vector;
using VectorPtr = std::shared_ptr<const Vector>;

class Vector {
 public:
  VType type;
  int64_t length = 0;
  // A literal: one value that every row reads (index 0), whatever `length` says.
  bool scalar = false;
  const uint8_t* valid = nullptr;  // one byte per row, 1 = valid; nullptr = every row valid
  const void* values = nullptr;    // int64_t / double / float / uint8_t (bool) / std::string_view per row
  const int64_t* offsets = nullptr;  // kList: length + 1 offsets into `child`
  VectorPtr child;                   // kList: the elements
  // kString: the rows (null rows included) lie in one buffer in row order, each starting at or
  // after the end of the one before. A kernel may then make one pass over the bytes from the first
  // row's start to the last row's end (the bytes between rows are readable but belong to no row),
  // finding rows by address, instead of one call per row. Set by the producers that know it
  // (Arrow input, string builders, gathers in row order), false otherwise.
  bool ordered = false;

  int64_t Index(int64_t i) const { return scalar ? 0 : i; }
  bool IsValid(int64_t i) const { return valid == nullptr || valid[Index(i)] != 0; }
  int64_t Int(int64_t i) const { return static_cast<const int64_t*>(values)[Index(i)]; }
  double Float(int64_t i) const { return static_cast<const double*>(values)[Index(i)]; }
  float Float32(int64_t i) const { return static_cast<const float*>(values)[Index(i)]; }
  bool Bool(int64_t i) const { return static_cast<const uint8_t*>(values)[Index(i)] != 0; }
  std::string_view Str(int64_t i) const { return static_cast<const std::string_view*>(values)[Index(i)]; }
  // kList: the element range of row i in `child`.
  int64_t ListBegin(int64_t i) const { return offsets[Index(i)]; }
  int64_t ListEnd(int64_t i) const { return offsets[Index(i) + 1]; }
  // A numeric value as double, whatever its width.
  double Number(int64_t i) const {
    switch (type.kind) {
      case Kind::kInt64: return static_cast<double>(Int(i));
      case Kind::kFloat32: return Float32(i);
      case Kind::kBool: return Bool(i) ? 1.0 : 0.0;
      default: return Float(i);
    }
  }
  // Whether any row is null (a literal null counts for every row).
  bool MayHaveNulls() const { return valid != nullptr; }

  // Memory the pointers above point into; a Vector keeps it alive.
  std::vector<std::shared_ptr<const void>> owners;

  // --- building (kernels): allocate owned buffers of `length` rows ---
  // Fixed-width values are left uninitialised (kernels write every row they compute; readers only
  // read valid rows), which saves a pass over each buffer.
  template <typename T>
  T* AllocValues() {
    const size_t n = static_cast<size_t>(scalar ? 1 : length);
    std::shared_ptr<T> buf(n ? new T[n] : new T[1], std::default_delete<T[]>());
    T* p = buf.get();
    values = p;
    owners.push_back(std::move(buf));
    return p;
  }
  // Allocates a validity buffer, initialised to `fill`, and returns it.
  uint8_t* AllocValidity(uint8_t fill = 1);
  // The validity buffer, allocated (all valid) if there was none. Only for Vectors being built.
  uint8_t* MutableValidity() { return valid ? const_cast<uint8_t*>(valid) : AllocValidity(1); }
  void SetNull(int64_t i) { MutableValidity()[i] = 0; }
};

// Builds a string Vector row by row: bytes go into one arena, views are made at Finish (the arena
// may move while it grows).
class StringVectorBuilder {
 public:
  // `expected_bytes`: what the rows will probably take (the input's size, for a map), so the arena
  // grows once rather than by doubling.
  explicit StringVectorBuilder(int64_t rows, int64_t expected_bytes = 0);
  void Append(std::string_view s) { arena_->append(s.data(), s.size()); ends_.push_back(arena_->size()); }
  // Appends to the row being written; finish it with EndRow().
  std::string& buffer() { return *arena_; }
  void EndRow() { ends_.push_back(arena_->size()); }
  void AppendNull() { ends_.push_back(arena_->size()); null_rows_.push_back(static_cast<int64_t>(ends_.size()) - 1); }
  int64_t rows() const { return static_cast<int64_t>(ends_.size()); }
  std::shared_ptr<Vector> Finish();

 private:
  std::shared_ptr<std::string> arena_;
  std::vector<size_t> ends_;
  std::vector<int64_t> null_rows_;
};

// Whether string views v[0..n) are in row order without overlap (the `ordered` layout; the caller
// knows they lie in one buffer).
bool InRowOrder(const std::string_view* v, int64_t n);

// A Vector of `n` rows (or a literal) holding the given values.
std::shared_ptr<Vector> MakeVector(VType type, int64_t n);
// Copies rows `index[0..n)` of `v` into a new Vector (strings keep pointing into their arena).
std::shared_ptr<Vector> Gather(const Vector& v, const int64_t* index, int64_t n);

}  // namespace dflow::expr
