#include "dflow/arrow/array.h"

#include <gtest/gtest.h>

#include <string>

namespace dflow {
namespace {

// A slice of a large array (how pyarrow hands over a table read in batches) is charged the bytes of
// its own rows: offsets and data of the slice, not of the buffers from their start.
TEST(ArrayImport, SlicesAreChargedTheirOwnRows) {
  BinaryBuilder b(true);
  for (int i = 0; i < 100000; ++i) b.Append(std::string(10, 'x'));
  ArrayPtr whole = b.Finish();
  ArrowSchema schema;
  ArrowArray array;
  whole->Export(&schema, &array);
  array.offset = 99000;  // the last 1,000 rows
  array.length = 1000;
  ArrayPtr slice = Array::Import(&schema, &array);
  EXPECT_EQ(slice->length(), 1000);
  EXPECT_EQ(slice->View(0), std::string(10, 'x'));
  EXPECT_EQ(slice->nbytes(), 8 * 1001 + 10 * 1000);
}

}  // namespace
}  // namespace dflow

#include "dflow/arrow/take.h"

namespace dflow {
namespace {

TEST(Take, GathersEveryLayout) {
  BinaryBuilder s(true);
  s.Append("a");
  s.AppendNull();
  s.Append("ccc");
  ArrayPtr strings = s.Finish();
  const int64_t rows[] = {2, 1, 0, 2};
  ArrayPtr t = Take(*strings, rows, 4);
  EXPECT_EQ(t->format(), "U");
  EXPECT_EQ(t->View(0), "ccc");
  EXPECT_FALSE(t->IsValid(1));
  EXPECT_EQ(t->View(2), "a");
  EXPECT_EQ(t->null_count(), 1);
  PrimitiveBuilder<int64_t> ints("l");
  for (int64_t v : {10, 20, 30}) ints.Append(v);
  ArrayPtr sliced = ints.Finish()->Slice(1, 2);  // 20, 30
  const int64_t two[] = {1, 0};
  ArrayPtr ti = Take(*sliced, two, 2);
  EXPECT_EQ(ti->Int64(0), 30);
  EXPECT_EQ(ti->Int64(1), 20);
  BoolBuilder bools;
  bools.Append(true);
  bools.Append(false);
  ArrayPtr tb = Take(*bools.Finish(), two, 2);
  EXPECT_FALSE(tb->Bool(0));
  EXPECT_TRUE(tb->Bool(1));
  ArrayPtr lists = MakeLargeList({0, 1, 1, 3}, strings, {}, 0);  // [a], [], [None, ccc]
  const int64_t pick[] = {2, 0};
  ArrayPtr tl = Take(*lists, pick, 2);
  EXPECT_EQ(tl->ListRange(0), (std::pair<int64_t, int64_t>{0, 2}));
  EXPECT_EQ(tl->children()[0]->View(1), "ccc");
  EXPECT_EQ(tl->children()[0]->View(2), "a");
  ArrayPtr url = strings->Renamed("url");
  ArrayPtr files = Array::Make("+s", 3, 0, 0, {nullptr}, {url}, nullptr, url->nbytes());
  ArrayPtr tf = Take(*files, pick, 2);
  EXPECT_EQ(tf->children()[0]->name(), "url");  // struct fields keep their names
  EXPECT_EQ(tf->children()[0]->View(0), "ccc");
}

}  // namespace
}  // namespace dflow
