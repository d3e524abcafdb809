// Immutable Arrow arrays shared between operators, and builders for the types the runtime produces.
//
// Canonical physical types (see daft_flow/types.py): str -> "U" (large_utf8), bytes -> "Z"
// (large_binary), int -> "l" (int64), float -> "g" (float64), bool -> "b", list -> "+L"
// (large_list), embedding -> "+w:N" (fixed_size_list<float32>), struct -> "+s".
// Arrays imported from Python are normalised to these formats on the Python side before import,
// so kernels only ever read canonical layouts.
#pragma once
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dflow/arrow/c_data.h"

namespace dflow {

class Array;
using ArrayPtr = std::shared_ptr<const Array>;

class Array : public std::enable_shared_from_this<Array> {
 public:
  // Takes ownership of a C array/schema pair (both are moved from and left released).
  static ArrayPtr Import(ArrowSchema* schema, ArrowArray* array);

  // Exports a reference to this array; the consumer's release drops the reference.
  void Export(ArrowSchema* schema, ArrowArray* array) const;

  const std::string& format() const { return format_; }
  const std::string& name() const { return name_; }
  int64_t length() const { return length_; }
  int64_t null_count() const { return null_count_; }
  int64_t offset() const { return offset_; }
  const void* buffer(size_t i) const { return i < buffers_.size() ? buffers_[i] : nullptr; }
  const std::vector<ArrayPtr>& children() const { return children_; }

  bool IsValid(int64_t i) const {
    return validity_ == nullptr || ((validity_[(offset_ + i) >> 3] >> ((offset_ + i) & 7)) & 1);
  }
  // "U"/"Z" (64-bit offsets) and "u"/"z" (32-bit offsets) are all readable as bytes.
  std::string_view View(int64_t i) const {
    if (wide_offsets_) {
      const int64_t* o = static_cast<const int64_t*>(buffers_[1]) + offset_ + i;
      return {static_cast<const char*>(buffers_[2]) + o[0], static_cast<size_t>(o[1] - o[0])};
    }
    const int32_t* o = static_cast<const int32_t*>(buffers_[1]) + offset_ + i;
    return {static_cast<const char*>(buffers_[2]) + o[0], static_cast<size_t>(o[1] - o[0])};
  }
  int64_t Int64(int64_t i) const { return static_cast<const int64_t*>(buffers_[1])[offset_ + i]; }
  double Float64(int64_t i) const { return static_cast<const double*>(buffers_[1])[offset_ + i]; }
  bool Bool(int64_t i) const {
    const uint8_t* b = static_cast<const uint8_t*>(buffers_[1]);
    return (b[(offset_ + i) >> 3] >> ((offset_ + i) & 7)) & 1;
  }
  // Large list: element range of row i in children()[0].
  std::pair<int64_t, int64_t> ListRange(int64_t i) const {
    const int64_t* o = static_cast<const int64_t*>(buffers_[1]) + offset_ + i;
    return {o[0], o[1]};
  }
  bool is_string_like() const { return format_ == "U" || format_ == "u" || format_ == "Z" || format_ == "z"; }

  // Bytes referenced by this array (buffers and children); used for memory budgeting.
  int64_t nbytes() const { return nbytes_; }

  // Builds an array over buffers owned by `owner` (kept alive as long as the array).
  static ArrayPtr Make(std::string format, int64_t length, int64_t null_count, int64_t offset,
                       std::vector<const void*> buffers, std::vector<ArrayPtr> children,
                       std::shared_ptr<void> owner, int64_t nbytes, std::string name = "");
  ArrayPtr Slice(int64_t offset, int64_t length) const;
  // The same array under another name (struct fields are named by their child arrays).
  ArrayPtr Renamed(std::string name) const;

 private:
  std::string format_;
  std::string name_;
  int64_t length_ = 0, null_count_ = 0, offset_ = 0, nbytes_ = 0;
  bool wide_offsets_ = false;
  const uint8_t* validity_ = nullptr;
  std::vector<const void*> buffers_;
  std::vector<ArrayPtr> children_;
  std::shared_ptr<void> owner_;
  void Init();
};

// Growable validity bitmap shared by the builders. The bitmap is only materialised once a null
// arrives, so all-valid columns (the common case) pay one increment per value.
class ValidityBuilder {
 public:
  void Append(bool valid) {
    if (valid && null_count_ == 0) {
      ++length_;
      return;
    }
    if (null_count_ == 0 && !valid) Materialize();
    if ((length_ & 7) == 0) bits_.push_back(0);
    if (valid) bits_.back() |= static_cast<uint8_t>(1u << (length_ & 7)); else ++null_count_;
    ++length_;
  }
  int64_t length() const { return length_; }
  int64_t null_count() const { return null_count_; }
  std::vector<uint8_t>& bits() { return bits_; }

 private:
  void Materialize() {
    bits_.assign(static_cast<size_t>((length_ + 7) / 8), 0xFF);
    if (length_ & 7) bits_.back() = static_cast<uint8_t>((1u << (length_ & 7)) - 1);
  }
  std::vector<uint8_t> bits_;
  int64_t length_ = 0, null_count_ = 0;
};

// Builds "U" (large_utf8) or "Z" (large_binary) arrays. Values are appended into one growing
// buffer with inline copies for short values (most values are a few bytes: a call to memcpy and a
// std::string append per value cost more than the copy itself).
class BinaryBuilder {
 public:
  explicit BinaryBuilder(bool utf8 = true, int64_t expected_rows = 0) : utf8_(utf8) {
    offsets_.reserve(expected_rows + 1);
    offsets_.push_back(0);
  }
  ~BinaryBuilder() { std::free(data_); }
  BinaryBuilder(const BinaryBuilder&) = delete;
  BinaryBuilder& operator=(const BinaryBuilder&) = delete;
  void Append(const char* data, size_t n) {
    if (size_ + n > capacity_) Grow(n);
    CopyShort(data_ + size_, data, n);
    size_ += n;
    offsets_.push_back(static_cast<int64_t>(size_));
    validity_.Append(true);
  }
  void Append(std::string_view v) { Append(v.data(), v.size()); }
  void AppendNull() { offsets_.push_back(static_cast<int64_t>(size_)); validity_.Append(false); }
  void Reserve(int64_t rows, int64_t bytes) {
    offsets_.reserve(rows + 1);
    if (static_cast<size_t>(bytes) > capacity_) Resize(static_cast<size_t>(bytes));
  }
  int64_t length() const { return validity_.length(); }
  ArrayPtr Finish();
 private:
  // Copies n bytes reading and writing only [src, src + n) and [dst, dst + n).
  static void CopyShort(char* dst, const char* src, size_t n) {
    if (n >= 8 && n <= 16) {
      uint64_t a, b;
      std::memcpy(&a, src, 8);
      std::memcpy(&b, src + n - 8, 8);
      std::memcpy(dst, &a, 8);
      std::memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
      uint32_t a, b;
      std::memcpy(&a, src, 4);
      std::memcpy(&b, src + n - 4, 4);
      std::memcpy(dst, &a, 4);
      std::memcpy(dst + n - 4, &b, 4);
    } else if (n < 4) {
      for (size_t i = 0; i < n; ++i) dst[i] = src[i];
    } else {
      std::memcpy(dst, src, n);
    }
  }
  void Grow(size_t n) { Resize(std::max(size_ + n, capacity_ * 2 + 64)); }
  void Resize(size_t capacity) {
    char* grown = static_cast<char*>(std::realloc(data_, capacity));
    if (!grown) throw std::bad_alloc();
    data_ = grown;
    capacity_ = capacity;
  }
  bool utf8_;
  std::vector<int64_t> offsets_;
  char* data_ = nullptr;  // malloc'd; handed to the array by Finish
  size_t size_ = 0, capacity_ = 0;
  ValidityBuilder validity_;
};

// Builds fixed-width primitive arrays: "l" (int64), "g" (float64), "f" (float32), "Q" (uint64).
template <typename T>
class PrimitiveBuilder {
 public:
  explicit PrimitiveBuilder(std::string format, int64_t expected_rows = 0) : format_(std::move(format)) {
    values_.reserve(expected_rows);
  }
  void Append(T v) { values_.push_back(v); validity_.Append(true); }
  void AppendNull() { values_.push_back(T{}); validity_.Append(false); }
  int64_t length() const { return validity_.length(); }
  ArrayPtr Finish();
 private:
  std::string format_;
  std::vector<T> values_;
  ValidityBuilder validity_;
};

class BoolBuilder {
 public:
  void Append(bool v) {
    if ((values_.length() & 7) == 0) bits_.push_back(0);
    if (v) bits_.back() |= static_cast<uint8_t>(1u << (values_.length() & 7));
    values_.Append(true);
  }
  void AppendNull() {
    if ((values_.length() & 7) == 0) bits_.push_back(0);
    values_.Append(false);
  }
  ArrayPtr Finish();
 private:
  std::vector<uint8_t> bits_;
  ValidityBuilder values_;  // doubles as the validity bitmap
};

// Wraps an owned vector as an array buffer without copying.
template <typename T>
std::shared_ptr<std::vector<T>> Own(std::vector<T>&& v) { return std::make_shared<std::vector<T>>(std::move(v)); }

// Large list array over an existing child array.
ArrayPtr MakeLargeList(std::vector<int64_t> offsets, ArrayPtr values, std::vector<uint8_t> validity,
                       int64_t null_count);

}  // namespace dflow
