// Fused programs: several steps over one level, filters, ancestor inputs, and the chunked,
// multi-threaded evaluation giving exactly what one pass over the whole level gives.
#include <random>

#include "test_util.h"

namespace dflow::expr {
namespace {

using namespace dflow::expr::testing;
using std::nullopt;
using S = std::optional<std::string>;

ProgramStep Step(std::string function, std::vector<int32_t> args, int32_t node, bool output = false,
                 std::vector<Scalar> options = {}) {
  ProgramStep s;
  s.function = std::move(function);
  s.args = std::move(args);
  s.node = node;
  s.output = output;
  s.options = std::move(options);
  s.op = s.function;
  s.field = "f" + std::to_string(node);
  return s;
}

// filter(len > 3) -> lower -> contains("b") -> len * 2: registers 0 (text), 1 (literal 3),
// 2 (literal 2), then one per step.
ProgramSpec Pipeline() {
  ProgramSpec spec;
  spec.inputs.push_back({0, 0, "str"});
  spec.literals.push_back({Scalar::Int(3), "int"});
  spec.literals.push_back({Scalar::Int(2), "int"});
  spec.steps.push_back(Step("str.len", {0}, 10));                                      // r3
  spec.steps.push_back(Step("gt", {3, 1}, 11));                                        // r4
  spec.steps.push_back(Step("filter", {4}, 12));                                       // r5
  spec.steps.push_back(Step("str.lower", {0}, 13, true));                              // r6
  spec.steps.push_back(Step("str.contains", {6}, 14, true, {Scalar::String("b")}));    // r7
  spec.steps.push_back(Step("mul", {3, 2}, 15, true));                                 // r8
  return spec;
}

TEST(Program, FiltersThenComputesOnlyTheRowsLeft) {
  Batch b = OneLevel({Strings({"ABCD", "ab", nullopt, "XYZW", "Bébé!"})});
  Program(Pipeline()).Run(b);
  const Level& l = b.levels[0];
  EXPECT_EQ(StringValues(l.columns.at(13)), (std::vector<S>{"abcd", nullopt, nullopt, "xyzw", "bébé!"}));
  EXPECT_EQ(BoolValues(l.columns.at(14)), (std::vector<std::optional<bool>>{true, nullopt, nullopt, false, true}));
  EXPECT_EQ(IntValues(l.columns.at(15)), (std::vector<std::optional<int64_t>>{8, nullopt, nullopt, 8, 10}));
  EXPECT_EQ(l.filtered, 2);  // "ab" (too short) and the null (a null predicate is not true)
  EXPECT_EQ(l.failed, (std::vector<uint8_t>{0, 3, 3, 0, 0}));
  EXPECT_TRUE(l.failures.empty());
  EXPECT_FALSE(l.columns.count(10));  // intermediate values stay inside the program
}

TEST(Program, RowErrorsFailTheirRowWithOpAndField) {
  ProgramSpec spec;
  spec.inputs.push_back({0, 0, "int"});
  spec.inputs.push_back({1, 0, "int"});
  spec.steps.push_back(Step("floordiv", {0, 1}, 5, true));
  Batch b = OneLevel({Ints({6, 1, 9}), Ints({3, 0, 3})});
  b.levels[0].Fail({2, 0, "input", "x", "TypeError: bad input", -1});  // failed before: not evaluated
  Program(spec).Run(b);
  const Level& l = b.levels[0];
  ASSERT_EQ(l.failures.size(), 2u);
  EXPECT_EQ(l.failures[1].row, 1);
  EXPECT_EQ(l.failures[1].op, "floordiv");
  EXPECT_EQ(l.failures[1].field, "f5");
  EXPECT_EQ(l.failures[1].node, 5);
  EXPECT_EQ(IntValues(l.columns.at(5)), (std::vector<std::optional<int64_t>>{2, nullopt, nullopt}));
}

TEST(Program, ReadsAncestorColumnsThroughTheParentIndex) {
  Batch b;
  b.levels.resize(2);
  b.levels[0].materialized = true;
  b.levels[0].num_rows = 2;
  b.levels[0].columns[0] = Strings({"Doc-A", "Doc-B"});
  b.levels[1].materialized = true;
  b.levels[1].parent = 0;
  b.levels[1].num_rows = 3;
  b.levels[1].parent_index = {0, 1, 1};
  b.levels[1].columns[1] = Strings({"x", "y", "z"});
  ProgramSpec spec;
  spec.level = 1;
  spec.inputs.push_back({0, 0, "str"});
  spec.inputs.push_back({1, 1, "str"});
  spec.steps.push_back(Step("add", {1, 0}, 9, true));
  Program(spec).Run(b);
  EXPECT_EQ(StringValues(b.levels[1].columns.at(9)), (std::vector<S>{"xDoc-A", "yDoc-B", "zDoc-B"}));
}

TEST(Program, ChunkedParallelEvaluationEqualsOnePass) {
  std::mt19937 rng(7);
  const char* words[] = {"alpha", "Beta", "ΓΑΜΜΑ", "delta b", "", "日本", "ok"};
  std::vector<std::optional<std::string>> text;
  for (int i = 0; i < 3 * Program::kChunkRows + 17; ++i) {
    if (rng() % 11 == 0) {
      text.push_back(nullopt);
    } else {
      std::string s;
      for (int w = rng() % 5; w >= 0; --w) s += std::string(words[rng() % 7]) + " ";
      text.push_back(s);
    }
  }
  Batch a = OneLevel({Strings(text)});
  Batch b = OneLevel({Strings(text)});
  ProgramSpec spec = Pipeline();
  spec.threads = 2;
  Program program(spec);
  program.Run(a);
  program.RunUnchunked(b);
  for (int32_t node : {13, 14, 15}) {
    const Array& x = *a.levels[0].columns.at(node);
    const Array& y = *b.levels[0].columns.at(node);
    ASSERT_EQ(x.length(), y.length());
    ASSERT_EQ(x.null_count(), y.null_count());
    for (int64_t i = 0; i < x.length(); ++i) {
      ASSERT_EQ(x.IsValid(i), y.IsValid(i)) << i;
      if (!x.IsValid(i)) continue;
      if (x.format() == "U") ASSERT_EQ(x.View(i), y.View(i));
      if (x.format() == "l") ASSERT_EQ(x.Int64(i), y.Int64(i));
      if (x.format() == "b") ASSERT_EQ(x.Bool(i), y.Bool(i));
    }
  }
  EXPECT_EQ(a.levels[0].failed, b.levels[0].failed);
  EXPECT_EQ(a.levels[0].filtered, b.levels[0].filtered);
}

TEST(Program, ListOutputsAndLiteralBranches) {
  ProgramSpec spec;
  spec.inputs.push_back({0, 0, "str"});
  spec.inputs.push_back({1, 0, "bool"});
  spec.literals.push_back({Scalar::String("none"), "str"});
  spec.steps.push_back(Step("str.split", {0}, 5, true, {Scalar::String(",")}));
  spec.steps.push_back(Step("if_else", {1, 0, 2}, 6, true));
  Batch b = OneLevel({Strings({"a,b", nullopt, "c"}), Bools({true, true, false})});
  Program(spec).Run(b);
  const Array& lists = *b.levels[0].columns.at(5);
  EXPECT_EQ(lists.format(), "+L");
  EXPECT_FALSE(lists.IsValid(1));
  EXPECT_EQ(StringValues(lists.children()[0]), (std::vector<S>{"a", "b", "c"}));
  EXPECT_EQ(StringValues(b.levels[0].columns.at(6)), (std::vector<S>{"a,b", nullopt, "none"}));
}

TEST(Program, RejectsProgramsThatDoNotTypeCheck) {
  ProgramSpec spec;
  spec.inputs.push_back({0, 0, "int"});
  spec.steps.push_back(Step("str.lower", {0}, 5, true));
  EXPECT_THROW(Program{spec}, TypeMismatch);
  ProgramSpec order;
  order.inputs.push_back({0, 0, "int"});
  order.steps.push_back(Step("neg", {2}, 5, true));
  EXPECT_THROW(Program{order}, std::invalid_argument);
}

}  // namespace
}  // namespace dflow::expr
