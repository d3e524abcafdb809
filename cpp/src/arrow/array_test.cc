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
