#include "dflow/runtime/batch.h"

#include <gtest/gtest.h>

#include <string>

#include "dflow/runtime/operator.h"

namespace dflow {
namespace {

Batch OneRowOfText(const std::string& text) {
  Batch batch;
  batch.levels.resize(1);
  Level& root = batch.levels[0];
  root.materialized = true;
  root.num_rows = 1;
  root.row_ids = {42};
  BinaryBuilder b(true, 1);
  b.Append(text);
  root.columns[0] = b.Finish();
  return batch;
}

TEST(Batch, ComputeBytesCountsColumnsAndIndexes) {
  Batch batch = OneRowOfText(std::string(1000, 'a'));
  EXPECT_GE(batch.ComputeBytes(), 1000 + 8);
  EXPECT_LT(batch.ComputeBytes(), 1100);
}

TEST(Batch, AColumnSharedByAChainedLevelIsCountedOnce) {
  Batch batch = OneRowOfText(std::string(1 << 20, 'd'));
  int64_t before = batch.ComputeBytes();
  ExplodeOperator chain(/*parent=*/0, /*level=*/1, /*source_node=*/0, /*element_node=*/1, /*one_to_one=*/true);
  chain.Process(batch);
  ASSERT_EQ(batch.levels[1].columns.at(1), batch.levels[0].columns.at(0));  // the same array, not a copy
  EXPECT_LT(batch.ComputeBytes() - before, 64);  // only the child level's indexes and ids
}

TEST(Batch, ChildRowIdsAreComputedOnFirstUse) {
  Batch batch = OneRowOfText("text");
  ExplodeOperator(/*parent=*/0, /*level=*/1, /*source_node=*/0, /*element_node=*/1, /*one_to_one=*/true).Process(batch);
  ExplodeOperator(/*parent=*/1, /*level=*/2, /*source_node=*/1, /*element_node=*/2, /*one_to_one=*/true).Process(batch);
  EXPECT_TRUE(batch.levels[1].row_ids.empty());  // nothing asked for them yet
  EXPECT_TRUE(batch.levels[2].row_ids.empty());
  ASSERT_EQ(batch.RowIds(2).size(), 1u);
  EXPECT_EQ(batch.RowIds(2)[0], ChildRowId(ChildRowId(42, 0), 0));
  EXPECT_EQ(batch.RowIds(1)[0], ChildRowId(42, 0));
}

TEST(Batch, RootRowIdsHashTheRootColumnOnFirstUse) {
  Batch batch = OneRowOfText("text");
  batch.levels[0].row_ids.clear();
  batch.root_id_node = 0;
  ExplodeOperator(/*parent=*/0, /*level=*/1, /*source_node=*/0, /*element_node=*/1, /*one_to_one=*/true).Process(batch);
  EXPECT_TRUE(batch.levels[0].row_ids.empty());
  EXPECT_EQ(batch.RowIds(1)[0], ChildRowId(HashBytes("text", 4), 0));
}

}  // namespace
}  // namespace dflow
