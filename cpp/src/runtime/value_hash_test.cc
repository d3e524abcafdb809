#include "dflow/runtime/value_hash.h"

#include <gtest/gtest.h>

#include <string>

namespace dflow {
namespace {

std::string Hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

std::string Sip(const std::string& data, size_t split) {
  SipHash128 h(0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull);  // key 00..0f
  h.Update(data.data(), split);
  h.Update(data.data() + split, data.size() - split);
  uint8_t out[16];
  h.Finish(out);
  return Hex(out, 16);
}

TEST(SipHash128, ReferenceVectors) {
  // vectors_sip128 of the reference implementation (key 00..0f, message 00 01 02 ...).
  EXPECT_EQ(Sip("", 0), "a3817f04ba25a8e66df67214c7550293");
  EXPECT_EQ(Sip(std::string(1, '\0'), 0), "da87c1d86b99af44347659119b22fc45");
  std::string fifteen;
  for (int i = 0; i < 15; ++i) fifteen += static_cast<char>(i);
  for (size_t split = 0; split <= fifteen.size(); ++split) EXPECT_EQ(Sip(fifteen, split), "5493e99933b0a8117e08ec0f97cfc3d9");
}

TEST(HashRows, TypedAndIndexed) {
  BinaryBuilder s(true);
  s.Append("1");
  s.Append("abc");
  s.AppendNull();
  ArrayPtr strs = s.Finish();
  PrimitiveBuilder<int64_t> i("l");
  i.Append('1');  // the byte of "1" as an int: must not hash like the string
  ArrayPtr ints = i.Finish();
  uint8_t out[3 * 16] = {};
  HashRows({{strs.get(), nullptr}}, 3, 1, 2, nullptr, out);
  uint8_t one[16];
  std::vector<int64_t> index = {0};
  HashRows({{ints.get(), &index}}, 1, 1, 2, nullptr, one);
  EXPECT_NE(Hex(out, 16), Hex(one, 16));
  EXPECT_NE(Hex(out, 16), Hex(out + 16, 16));
  // An ancestor column read through an index hashes like the value itself.
  std::vector<int64_t> idx = {1, 1, 0};
  uint8_t via[3 * 16];
  HashRows({{strs.get(), &idx}}, 3, 1, 2, nullptr, via);
  EXPECT_EQ(Hex(via, 16), Hex(out + 16, 16));
  EXPECT_EQ(Hex(via + 32, 16), Hex(out, 16));
  // Skipped rows are left alone; a different key gives different hashes.
  uint8_t skip[3] = {0, 1, 0}, partial[3 * 16] = {};
  HashRows({{strs.get(), nullptr}}, 3, 1, 2, skip, partial);
  EXPECT_EQ(Hex(partial + 16, 16), std::string(32, '0'));
  uint8_t other[16];
  HashRows({{strs.get(), nullptr}}, 1, 1, 3, nullptr, other);
  EXPECT_NE(Hex(other, 16), Hex(out, 16));
  // A sliced array hashes its own rows.
  uint8_t sliced[16];
  HashRows({{strs->Slice(1, 1).get(), nullptr}}, 1, 1, 2, nullptr, sliced);
  EXPECT_EQ(Hex(sliced, 16), Hex(out + 16, 16));
}

}  // namespace
}  // namespace dflow
