#include "dflow/runtime/value_hash.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace dflow {
namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
  v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
  v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
  v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i) x = (x << 8) | p[i];  // little-endian on every host
  return x;
}

inline void Store64(uint8_t* p, uint64_t x) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(x >> (8 * i));
}

// Type tags: one byte before each value, so encodings of different types never coincide.
enum Tag : uint8_t { kNull = 0, kBytes = 1, kInt = 2, kFloat = 3, kBool = 4, kList = 5, kStruct = 6, kF32 = 7 };

std::pair<int64_t, int64_t> Elements(const Array& a, int64_t row) {
  const std::string& f = a.format();
  if (f == "+L") return a.ListRange(row);
  if (f == "+l") {
    const int32_t* o = static_cast<const int32_t*>(a.buffer(1)) + a.offset() + row;
    return {o[0], o[1]};
  }
  const int64_t k = std::stoll(f.substr(3));  // "+w:N"
  return {(a.offset() + row) * k, (a.offset() + row + 1) * k};
}

}  // namespace

SipHash128::SipHash128(uint64_t k0, uint64_t k1)
    : v0_(0x736f6d6570736575ull ^ k0),
      v1_(0x646f72616e646f6dull ^ k1 ^ 0xee),
      v2_(0x6c7967656e657261ull ^ k0),
      v3_(0x7465646279746573ull ^ k1) {}

void SipHash128::Compress(uint64_t m) {
  v3_ ^= m;
  SipRound(v0_, v1_, v2_, v3_);
  SipRound(v0_, v1_, v2_, v3_);
  v0_ ^= m;
}

void SipHash128::Update(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (tail_len_) {
    while (n && tail_len_ < 8) {
      tail_[tail_len_++] = *p++;
      --n;
    }
    if (tail_len_ < 8) return;
    Compress(Load64(tail_));
    tail_len_ = 0;
  }
  for (; n >= 8; n -= 8, p += 8) Compress(Load64(p));
  std::memcpy(tail_, p, n);
  tail_len_ = n;
}

void SipHash128::UpdateU64(uint64_t x) {
  uint8_t b[8];
  Store64(b, x);
  Update(b, 8);
}

void SipHash128::Finish(uint8_t out[16]) {
  uint64_t b = total_ << 56;
  for (size_t i = 0; i < tail_len_; ++i) b |= static_cast<uint64_t>(tail_[i]) << (8 * i);
  Compress(b);
  v2_ ^= 0xee;
  for (int i = 0; i < 4; ++i) SipRound(v0_, v1_, v2_, v3_);
  Store64(out, v0_ ^ v1_ ^ v2_ ^ v3_);
  v1_ ^= 0xdd;
  for (int i = 0; i < 4; ++i) SipRound(v0_, v1_, v2_, v3_);
  Store64(out + 8, v0_ ^ v1_ ^ v2_ ^ v3_);
}

void HashValue(const Array& a, int64_t row, SipHash128& h) {
  uint8_t tag;
  if (!a.IsValid(row)) {
    tag = kNull;
    h.Update(&tag, 1);
    return;
  }
  const std::string& f = a.format();
  if (a.is_string_like()) {
    std::string_view v = a.View(row);
    tag = kBytes;
    h.Update(&tag, 1);
    h.UpdateU64(v.size());
    h.Update(v.data(), v.size());
  } else if (f == "l") {
    tag = kInt;
    h.Update(&tag, 1);
    h.UpdateU64(static_cast<uint64_t>(a.Int64(row)));
  } else if (f == "g") {
    double x = a.Float64(row);
    uint64_t bits;
    std::memcpy(&bits, &x, 8);
    tag = kFloat;
    h.Update(&tag, 1);
    h.UpdateU64(bits);
  } else if (f == "f") {
    float x = static_cast<const float*>(a.buffer(1))[a.offset() + row];
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    tag = kF32;
    h.Update(&tag, 1);
    h.UpdateU64(bits);
  } else if (f == "b") {
    uint8_t v[2] = {kBool, static_cast<uint8_t>(a.Bool(row))};
    h.Update(v, 2);
  } else if (f == "+L" || f == "+l" || f.rfind("+w:", 0) == 0) {
    auto [begin, end] = Elements(a, row);
    tag = kList;
    h.Update(&tag, 1);
    h.UpdateU64(static_cast<uint64_t>(end - begin));
    const Array& child = *a.children().at(0);
    bool packed = child.format() == "f";  // embeddings: the float32 values as they are, when none is null
    for (int64_t k = begin; packed && child.null_count() > 0 && k < end; ++k) packed = child.IsValid(k);
    if (packed) {
      const float* v = static_cast<const float*>(child.buffer(1)) + child.offset();
      tag = kF32;
      h.Update(&tag, 1);
      h.Update(v + begin, static_cast<size_t>(end - begin) * sizeof(float));
    } else {
      for (int64_t k = begin; k < end; ++k) HashValue(child, k, h);
    }
  } else if (f == "+s") {
    tag = kStruct;
    h.Update(&tag, 1);
    h.UpdateU64(a.children().size());
    for (const ArrayPtr& c : a.children()) HashValue(*c, row + a.offset(), h);  // children share the offset
  } else {
    throw std::invalid_argument("cannot hash values of Arrow format '" + f + "'");
  }
}

void HashRows(const std::vector<HashInput>& inputs, int64_t rows, uint64_t k0, uint64_t k1, const uint8_t* skip,
              uint8_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    if (skip != nullptr && skip[r]) continue;
    SipHash128 h(k0, k1);
    h.UpdateU64(inputs.size());
    for (const HashInput& in : inputs) {
      const int64_t row = (in.index == nullptr || in.index->empty()) ? r : (*in.index)[r];
      HashValue(*in.column, row, h);
    }
    h.Finish(out + r * 16);
  }
}

}  // namespace dflow
