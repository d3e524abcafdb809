#include "dflow/runtime/batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(Batch, ValuesAnEmbeddingKeepsForAColumnAreChargedToTheBatch) {
  Batch batch = OneRowOfText(std::string(1000, 'a'));
  const int64_t before = batch.ComputeBytes();
  bool freed = false;
  {
    std::shared_ptr<void> values(new int(0), [&freed](void* p) {
      delete static_cast<int*>(p);
      freed = true;
    });
    batch.levels[0].host_values[0] = {batch.levels[0].columns.at(0), std::move(values), 500};
  }
  EXPECT_EQ(batch.ComputeBytes(), before + 500);
  batch.levels[0].host_values.clear();  // dropped with the level, by the embedding's own deleter
  EXPECT_TRUE(freed);
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

// Nulls have no content to hash: each gets an id from its input position, never one shared id.
TEST(Batch, NullRowsGetDistinctIdsFromTheirPosition) {
  BinaryBuilder b(true, 4);
  b.AppendNull();
  b.Append(std::string("a"));
  b.AppendNull();
  b.AppendNull();
  ArrayPtr column = b.Finish();
  std::vector<uint64_t> ids = HashColumn(*column, /*first_input=*/100);
  EXPECT_NE(ids[0], ids[2]);
  EXPECT_NE(ids[2], ids[3]);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(ids, HashColumn(*column, 100));                 // stable
  EXPECT_EQ(HashColumn(*column, 98)[2], ids[0]);            // the position is what is hashed
  EXPECT_EQ(ids[1], HashColumn(*column, 0)[1]);             // values still hash their content only
}

}  // namespace
}  // namespace dflow
