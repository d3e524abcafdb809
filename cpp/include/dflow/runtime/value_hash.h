// Content hashes of row values, for cache keys: 128 bits of SipHash-2-4 over a typed encoding of
// each value, so equal values hash equally in every process and on every machine, and values of
// different types (the str "1" and the int 1) never share an encoding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dflow/arrow/array.h"

namespace dflow {

// Incremental SipHash-2-4 with a 128-bit result (the reference algorithm's 16-byte output mode).
class SipHash128 {
 public:
  SipHash128(uint64_t k0, uint64_t k1);
  void Update(const void* data, size_t n);
  void UpdateU64(uint64_t x);  // little-endian, as 8 bytes
  void Finish(uint8_t out[16]);

 private:
  void Compress(uint64_t m);
  uint64_t v0_, v1_, v2_, v3_;
  uint8_t tail_[8] = {};
  size_t tail_len_ = 0;
  uint64_t total_ = 0;
};

// One argument of a hashed row: a column and, for columns of an ancestor level, the row of the
// column each row reads (empty: row r reads row r).
struct HashInput {
  const Array* column;
  const std::vector<int64_t>* index;
};

// Writes 16 bytes per row into `out` (rows x 16): the hash of the row's values of every input, in
// order, under key (k0, k1). Rows with skip[r] != 0 (when `skip` is given) are left untouched.
// Throws std::invalid_argument for an Arrow format it cannot encode.
void HashRows(const std::vector<HashInput>& inputs, int64_t rows, uint64_t k0, uint64_t k1, const uint8_t* skip,
              uint8_t* out);

// Feeds the typed encoding of row `row` of `a` into `h` (nulls, strings, numbers, lists, structs).
void HashValue(const Array& a, int64_t row, SipHash128& h);

}  // namespace dflow
