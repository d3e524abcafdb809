// The kernels against Python's semantics, case by case (the Python suite compares them with
// Python itself on random values: tests/expressions/test_properties.py).
#include <cmath>

#include "find.h"
#include "kernel_util.h"
#include "test_util.h"

namespace dflow::expr {
namespace {

using namespace dflow::expr::testing;
using std::nullopt;
using S = std::optional<std::string>;

TEST(KernelRegistry, FindsKernelsByNameAndChecksTypes) {
  const auto& r = KernelRegistry::Global();
  EXPECT_TRUE(r.Has("str.lower"));
  EXPECT_TRUE(r.Has("add"));
  EXPECT_THROW(r.Bind("no.such", {VType::Int64()}, {}), std::invalid_argument);
  EXPECT_THROW(r.Bind("str.lower", {VType::Int64()}, {}), TypeMismatch);
  EXPECT_THROW(r.Bind("add", {VType::String(), VType::Int64()}, {}), TypeMismatch);
  EXPECT_EQ(r.Bind("add", {VType::Int64(), VType::Float64()}, {}).out, VType::Float64());
  EXPECT_EQ(r.Bind("div", {VType::Int64(), VType::Int64()}, {}).out, VType::Float64());
  EXPECT_EQ(r.Bind("add", {VType::String(), VType::String()}, {}).out, VType::String());
  // Options are checked when binding: a bad regex is an error before any row runs.
  EXPECT_THROW(r.Bind("str.extract", {VType::String()}, {Scalar::String("(unclosed"), Scalar::Int(1)}),
               std::invalid_argument);
  EXPECT_THROW(r.Bind("str.extract", {VType::String()}, {Scalar::String("(a)"), Scalar::Int(2)}), std::invalid_argument);
  EXPECT_THROW(r.Bind("json.get", {VType::String()}, {Scalar::String("a..b"), Scalar::String("int")}),
               std::invalid_argument);
}

TEST(ArithmeticKernels, FollowPythonIntSemantics) {
  Batch b = OneLevel({Ints({-7, 7, 7, -7, 5, nullopt}), Ints({2, -2, 2, -2, 0, 1})});
  EXPECT_EQ(IntValues(Call(b, "floordiv", {"int", "int"})), (std::vector<std::optional<int64_t>>{-4, -4, 3, 3, nullopt, nullopt}));
  EXPECT_EQ(Failures(b), std::vector<std::string>{"4: ZeroDivisionError: integer division or modulo by zero"});
  Batch m = OneLevel({Ints({-7, 7, 7, -7}), Ints({2, -2, 2, -2})});
  EXPECT_EQ(IntValues(Call(m, "mod", {"int", "int"})), (std::vector<std::optional<int64_t>>{1, -1, 1, -1}));
  Batch d = OneLevel({Ints({1, 9007199254740993}), Ints({3, 1})});
  auto q = FloatValues(Call(d, "div", {"int", "int"}));
  EXPECT_DOUBLE_EQ(*q[0], 1.0 / 3.0);
  EXPECT_EQ(*q[1], 9007199254740992.0);  // Python: 9007199254740993 / 1 == 9007199254740992.0
}

TEST(ArithmeticKernels, OverflowFailsTheRowInsteadOfWrapping) {
  Batch b = OneLevel({Ints({INT64_MAX, 1, INT64_MIN}), Ints({1, 1, -1})});
  EXPECT_EQ(IntValues(Call(b, "add", {"int", "int"})), (std::vector<std::optional<int64_t>>{nullopt, 2, nullopt}));
  ASSERT_EQ(b.levels[0].failures.size(), 2u);
  EXPECT_EQ(b.levels[0].failures[0].row, 0);
  EXPECT_EQ(b.levels[0].failures[0].message, "OverflowError: int result does not fit in 64 bits");
  Batch f = OneLevel({Ints({INT64_MIN}), Ints({-1})});
  Call(f, "floordiv", {"int", "int"});
  EXPECT_EQ(f.levels[0].failures.size(), 1u);
}

TEST(ArithmeticKernels, FloatFloorDivAndModMatchCPython) {
  Batch b = OneLevel({Floats({-7.5, 7.5, 1e308, 0.0}), Floats({2.0, -2.0, 0.1, 0.0})});
  auto q = FloatValues(Call(b, "floordiv", {"float", "float"}));
  EXPECT_EQ(*q[0], -4.0);
  EXPECT_EQ(*q[1], -4.0);
  EXPECT_FALSE(q[3].has_value());
  Batch m = OneLevel({Floats({-7.5, 7.5}), Floats({2.0, -2.0})});
  auto r = FloatValues(Call(m, "mod", {"float", "float"}));
  EXPECT_EQ(*r[0], 0.5);
  EXPECT_EQ(*r[1], -0.5);
}

TEST(ArithmeticKernels, ComparisonsAreExactAcrossIntAndFloat) {
  // 2**53 + 1 != float(2**53) in Python; a plain double conversion says they are equal.
  Batch b = OneLevel({Ints({9007199254740993, 3}), Floats({9007199254740992.0, 3.0})});
  EXPECT_EQ(BoolValues(Call(b, "eq", {"int", "float"})), (std::vector<std::optional<bool>>{false, true}));
  Batch s = OneLevel({Strings({"a", "é", nullopt}), Strings({"b", "z", "x"})});
  EXPECT_EQ(BoolValues(Call(s, "lt", {"str", "str"})), (std::vector<std::optional<bool>>{true, false, nullopt}));
}

TEST(LogicKernels, AndOrAreThreeValued) {
  Batch b = OneLevel({Bools({true, false, nullopt, nullopt, true}), Bools({nullopt, nullopt, false, true, true})});
  EXPECT_EQ(BoolValues(Call(b, "and", {"bool", "bool"})), (std::vector<std::optional<bool>>{nullopt, false, false, nullopt, true}));
  Batch o = OneLevel({Bools({true, false, nullopt, nullopt}), Bools({nullopt, nullopt, false, true})});
  EXPECT_EQ(BoolValues(Call(o, "or", {"bool", "bool"})), (std::vector<std::optional<bool>>{true, nullopt, nullopt, true}));
}

TEST(LogicKernels, IfElseAndFillNull) {
  Batch b = OneLevel({Bools({true, false, nullopt}), Strings({"a", "b", "c"}), Strings({"x", nullopt, "z"})});
  EXPECT_EQ(StringValues(Call(b, "if_else", {"bool", "str", "str"})), (std::vector<S>{"a", nullopt, nullopt}));
  Batch f = OneLevel({Ints({1, nullopt}), Ints({9, 9})});
  EXPECT_EQ(IntValues(Call(f, "fill_null", {"int", "int"})), (std::vector<std::optional<int64_t>>{1, 9}));
}

TEST(CastKernels, ConvertLikePython) {
  EXPECT_EQ(FloatRepr(0.1), "0.1");
  EXPECT_EQ(FloatRepr(1e16), "1e+16");
  EXPECT_EQ(FloatRepr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(FloatRepr(1e-5), "1e-05");
  EXPECT_EQ(FloatRepr(0.0001), "0.0001");
  EXPECT_EQ(FloatRepr(-0.0), "-0.0");
  EXPECT_EQ(FloatRepr(2.5e-310), "2.5e-310");
  EXPECT_EQ(FloatRepr(1.5), "1.5");
  EXPECT_EQ(FloatRepr(123.0), "123.0");
  Batch b = OneLevel({Strings({" 12 ", "1_000", "-0", "x", "1__0", "99999999999999999999"})});
  EXPECT_EQ(IntValues(Call(b, "cast", {"str"}, {Scalar::String("int")})),
            (std::vector<std::optional<int64_t>>{12, 1000, 0, nullopt, nullopt, nullopt}));
  EXPECT_EQ(Failures(b), (std::vector<std::string>{"3: ValueError: invalid literal for int() with base 10: 'x'",
                                                    "4: ValueError: invalid literal for int() with base 10: '1__0'",
                                                    "5: OverflowError: int too large for 64 bits"}));
  Batch f = OneLevel({Strings({"1.5", " -inf", "1e5", ".5", "nan", "0x10"})});
  auto v = FloatValues(Call(f, "cast", {"str"}, {Scalar::String("float")}));
  EXPECT_EQ(*v[0], 1.5);
  EXPECT_TRUE(std::isinf(*v[1]) && *v[1] < 0);
  EXPECT_EQ(*v[2], 1e5);
  EXPECT_EQ(*v[3], 0.5);
  EXPECT_TRUE(std::isnan(*v[4]));
  EXPECT_FALSE(v[5].has_value());
  Batch i = OneLevel({Floats({2.7, -2.7, std::nan("")})});
  EXPECT_EQ(IntValues(Call(i, "cast", {"float"}, {Scalar::String("int")})), (std::vector<std::optional<int64_t>>{2, -2, nullopt}));
  Batch s = OneLevel({Bools({true, false})});
  EXPECT_EQ(StringValues(Call(s, "cast", {"bool"}, {Scalar::String("str")})), (std::vector<S>{"True", "False"}));
}

TEST(StringKernels, LengthsAndSlicesCountCodePoints) {
  Batch b = OneLevel({Strings({"héllo", "", "日本語", "🙂x", nullopt})});
  EXPECT_EQ(IntValues(Call(b, "str.len", {"str"})), (std::vector<std::optional<int64_t>>{5, 0, 3, 2, nullopt}));
  Batch s = OneLevel({Strings({"héllo", "日本語", "🙂x"})});
  EXPECT_EQ(StringValues(Call(s, "str.slice", {"str"}, {Scalar::Int(1), Scalar::Int(-1)})), (std::vector<S>{"éll", "本", ""}));
  Batch t = OneLevel({Strings({"héllo", "日本語"})});
  EXPECT_EQ(StringValues(Call(t, "str.slice", {"str"}, {Scalar::Int(-2), Scalar::Null()})), (std::vector<S>{"lo", "本語"}));
}

TEST(StringKernels, CaseMappingIsPythons) {
  Batch b = OneLevel({Strings({"HeLLo", "ΟΔΟΣ ΣΑΣ", "ПРИВЕТ", "İ", "Σ", "AΣ.", "AΣb"})});
  EXPECT_EQ(StringValues(Call(b, "str.lower", {"str"})),
            (std::vector<S>{"hello", "οδος σας", "привет", "i\u0307", "σ", "aς.", "aσb"}));
  Batch u = OneLevel({Strings({"straße", "ﬁx", "éa", "ǅ"})});
  EXPECT_EQ(StringValues(Call(u, "str.upper", {"str"})), (std::vector<S>{"STRASSE", "FIX", "ÉA", "Ǆ"}));
}

TEST(StringKernels, StripSplitReplaceAndSearch) {
  Batch b = OneLevel({Strings({"\u00a0 a b\u3000", "\x1c x\t", ""})});
  EXPECT_EQ(StringValues(Call(b, "str.strip", {"str"})), (std::vector<S>{"a b", "x", ""}));
  Batch r = OneLevel({Strings({"ab", "aaa", ""})});
  EXPECT_EQ(StringValues(Call(r, "str.replace", {"str"}, {Scalar::String(""), Scalar::String("-")})),
            (std::vector<S>{"-a-b-", "-a-a-a-", "-"}));
  Batch r2 = OneLevel({Strings({"aaaa"})});
  EXPECT_EQ(StringValues(Call(r2, "str.replace", {"str"}, {Scalar::String("aa"), Scalar::String("b")})), (std::vector<S>{"bb"}));
  Batch c = OneLevel({Strings({"hello world", "world", "", nullopt})});
  EXPECT_EQ(BoolValues(Call(c, "str.contains", {"str"}, {Scalar::String("wor")})),
            (std::vector<std::optional<bool>>{true, true, false, nullopt}));
  Batch e = OneLevel({Strings({"hello", "lo"})});
  EXPECT_EQ(BoolValues(Call(e, "str.ends_with", {"str"}, {Scalar::String("llo")})), (std::vector<std::optional<bool>>{true, false}));
  Batch s = OneLevel({Strings({"a,,b", "", " x  y "})});
  auto list = Call(s, "str.split", {"str"}, {Scalar::String(",")});
  ASSERT_EQ(list->format(), "+L");
  EXPECT_EQ(list->ListRange(0), (std::pair<int64_t, int64_t>{0, 3}));
  EXPECT_EQ(list->ListRange(1), (std::pair<int64_t, int64_t>{3, 4}));  // "".split(",") == ['']
  Batch w = OneLevel({Strings({" x  y ", ""})});
  auto words = Call(w, "str.split", {"str"}, {Scalar::Null()});
  EXPECT_EQ(StringValues(words->children()[0]), (std::vector<S>{"x", "y"}));
  EXPECT_EQ(words->ListRange(1), (std::pair<int64_t, int64_t>{2, 2}));  // "".split() == []
}

TEST(RegexKernels, MatchLikePythonsRe) {
  Batch b = OneLevel({Strings({"abc", "", "xx"})});
  EXPECT_EQ(IntValues(Call(b, "str.count_matches", {"str"}, {Scalar::String("x*")})),
            (std::vector<std::optional<int64_t>>{4, 1, 2}));  // len(re.findall('x*', s))
  Batch e = OneLevel({Strings({"id=42;", "none", "id=;"})});
  EXPECT_EQ(StringValues(Call(e, "str.extract", {"str"}, {Scalar::String("id=(\\d*)"), Scalar::Int(1)})),
            (std::vector<S>{"42", nullopt, ""}));
  Batch o = OneLevel({Strings({"ab", "b"})});
  EXPECT_EQ(StringValues(Call(o, "str.extract", {"str"}, {Scalar::String("(a)?b"), Scalar::Int(1)})), (std::vector<S>{"a", nullopt}));
  Batch r = OneLevel({Strings({"2024-01-02", "x"})});
  EXPECT_EQ(StringValues(Call(r, "str.replace_regex", {"str"}, {Scalar::String("(\\d+)-(\\d+)"), Scalar::String("\\2/\\1")})),
            (std::vector<S>{"01/2024-02", "x"}));
  Batch u = OneLevel({Strings({"héllo wörld"})});
  EXPECT_EQ(IntValues(Call(u, "str.count_matches", {"str"}, {Scalar::String("\\w+")})), (std::vector<std::optional<int64_t>>{2}));
  Batch c = OneLevel({Strings({"Hello", "hey"})});
  EXPECT_EQ(BoolValues(Call(c, "str.contains_regex", {"str"}, {Scalar::String("^H.l")})), (std::vector<std::optional<bool>>{true, false}));
}

TEST(JsonKernels, GetFollowsPathsAndValidates) {
  Batch b = OneLevel({Strings({R"({"a": {"b": [10, 20]}})", R"({"a": {}})", R"({"a": {"b": ["x"]}})", "{bad", R"({"a":1,"a":{"b":[7]}})",
                               R"({"a": {"b": [1.5]}})", R"({"a": {"b": [null]}})"})});
  EXPECT_EQ(IntValues(Call(b, "json.get", {"str"}, {Scalar::String("a.b[0]"), Scalar::String("int")})),
            (std::vector<std::optional<int64_t>>{10, nullopt, nullopt, nullopt, 7, nullopt, nullopt}));
  EXPECT_EQ(Failures(b), (std::vector<std::string>{"2: TypeError: json.get('a.b[0]') is a string, not int",
                                                    "3: ValueError: json.get: invalid JSON (expected a key) at byte 1",
                                                    "5: TypeError: json.get('a.b[0]') is a float, not int"}));
  Batch s = OneLevel({Strings({R"({"k": "caf\u00e9 \ud83d\ude42", "n": [1, {"x": true}]})"})});
  EXPECT_EQ(StringValues(Call(s, "json.get", {"str"}, {Scalar::String("k"), Scalar::String("str")})), (std::vector<S>{"café 🙂"}));
  Batch j = OneLevel({Strings({R"({"k": "v", "n": [1, {"x": true}]})"})});
  EXPECT_EQ(StringValues(Call(j, "json.get", {"str"}, {Scalar::String("n[-1]"), Scalar::String("JSON")})),
            (std::vector<S>{R"({"x": true})"}));
  Batch deep = OneLevel({Strings({std::string(5000, '[') + std::string(5000, ']')})});
  Call(deep, "json.get", {"str"}, {Scalar::String("a"), Scalar::String("int")});
  EXPECT_EQ(deep.levels[0].failures.size(), 1u);  // refused, not a stack overflow
}

TEST(ListKernels, LenGetSliceJoin) {
  Batch s = OneLevel({Strings({"a b c", "", nullopt})});
  auto words = Call(s, "str.split", {"str"}, {Scalar::Null()});
  Batch l = OneLevel({words});
  EXPECT_EQ(IntValues(Call(l, "list.len", {"list[str]"})), (std::vector<std::optional<int64_t>>{3, 0, nullopt}));
  Batch g = OneLevel({words});
  EXPECT_EQ(StringValues(Call(g, "list.get", {"list[str]"}, {Scalar::Int(-1)})), (std::vector<S>{"c", nullopt, nullopt}));
  Batch sl = OneLevel({words});
  auto sliced = Call(sl, "list.slice", {"list[str]"}, {Scalar::Int(1), Scalar::Null()});
  Batch jn = OneLevel({sliced});
  EXPECT_EQ(StringValues(Call(jn, "list.join", {"list[str]"}, {Scalar::String("+")})), (std::vector<S>{"b+c", "", nullopt}));
}

TEST(ListKernels, EmbeddingMath) {
  PrimitiveBuilder<float> values("f");
  for (float v : {1.f, 0.f, 0.f, 1.f, 3.f, 4.f}) values.Append(v);
  auto child = values.Finish();
  auto emb = Array::Make("+w:2", 3, 0, 0, {nullptr}, {child}, nullptr, 24);
  Batch b = OneLevel({emb});
  auto norms = FloatValues(Call(b, "embedding.norm", {"Embedding[2]"}));
  EXPECT_EQ(*norms[2], 5.0);
  Batch c = OneLevel({emb, emb});
  auto cos = FloatValues(Call(c, "embedding.cosine", {"Embedding[2]", "Embedding[2]"}));
  EXPECT_NEAR(*cos[0], 1.0, 1e-12);
  ProgramSpec spec;
  spec.inputs.push_back({0, 0, "Embedding[2]"});
  spec.literals.push_back({Scalar::FloatList({0.f, 2.f}), "Embedding[2]"});
  ProgramStep dot;
  dot.function = "embedding.dot";
  dot.args = {0, 1};
  dot.node = 7;
  dot.output = true;
  spec.steps.push_back(dot);
  Batch d = OneLevel({emb});
  Program(spec).Run(d);
  EXPECT_EQ(FloatValues(d.levels[0].columns.at(7)), (std::vector<std::optional<double>>{0.0, 2.0, 8.0}));
}

}  // namespace
}  // namespace dflow::expr

namespace dflow::expr {
namespace {

TEST(FindBytes, AgreesWithStringViewFind) {
  const std::string hay = "the python package (python3) calls python( and pyt";
  for (std::string needle : {"python", "(", "py", "pyt", "x", "", "python3) calls python( and pyt", "and pytx"}) {
    for (size_t from = 0; from <= hay.size() + 1; ++from) {
      const size_t want = from <= hay.size() ? std::string_view(hay).find(needle, from) : std::string_view::npos;
      ASSERT_EQ(FindBytes(hay, needle, from), want) << needle << " from " << from;
    }
  }
  std::string long_hay(1000, 'a');
  long_hay += "needle";
  EXPECT_EQ(FindBytes(long_hay, "needle"), 1000u);
  EXPECT_EQ(FindBytes(long_hay, "needles"), std::string_view::npos);
}

// Rows cut out of one buffer, in order, with bytes between some of them (as a filter's survivors
// leave them), and null rows that still have bytes.
struct SpanRows {
  std::shared_ptr<std::string> buffer = std::make_shared<std::string>();
  std::vector<std::pair<size_t, size_t>> ranges;
  std::vector<uint8_t> valid;
  void Gap(const std::string& bytes) { *buffer += bytes; }
  void Row(const std::string& bytes, bool is_valid = true) {
    ranges.emplace_back(buffer->size(), bytes.size());
    *buffer += bytes;
    valid.push_back(is_valid);
  }
  std::shared_ptr<Vector> View(bool ordered) const {
    auto v = MakeVector(VType::String(), static_cast<int64_t>(ranges.size()));
    auto* views = v->AllocValues<std::string_view>();
    for (size_t i = 0; i < ranges.size(); ++i) views[i] = std::string_view(buffer->data() + ranges[i].first, ranges[i].second);
    uint8_t* validity = v->AllocValidity(1);
    std::copy(valid.begin(), valid.end(), validity);
    v->owners.push_back(buffer);
    v->ordered = ordered;
    return v;
  }
};

// Runs one kernel over the rows laid out as one span and row by row; the results must agree.
void ExpectSpanAgrees(const SpanRows& rows, const std::string& function, const std::vector<Scalar>& options) {
  SCOPED_TRACE(function + (options.empty() ? "" : " " + options[0].ToString()));
  const BoundKernel k = KernelRegistry::Global().Bind(function, {VType::String()}, options);
  auto ordered = rows.View(true);
  auto plain = rows.View(false);
  const int64_t n = ordered->length;
  RowErrors errors;
  std::vector<const Vector*> a{ordered.get()}, b{plain.get()};
  auto x = k.exec(KernelArgs{a, n, &errors});
  auto y = k.exec(KernelArgs{b, n, &errors});
  ASSERT_EQ(ToArrow(*x)->format(), ToArrow(*y)->format());
  const ArrayPtr ax = ToArrow(*x), ay = ToArrow(*y);
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    ASSERT_EQ(ax->IsValid(i), ay->IsValid(i));
    if (!ax->IsValid(i)) continue;
    switch (k.out.kind) {
      case Kind::kString: EXPECT_EQ(ax->View(i), ay->View(i)); break;
      case Kind::kInt64: EXPECT_EQ(ax->Int64(i), ay->Int64(i)); break;
      case Kind::kBool: EXPECT_EQ(ax->Bool(i), ay->Bool(i)); break;
      default: FAIL() << "unexpected result type";
    }
  }
  // A result that says it is ordered is.
  if (x->ordered) EXPECT_TRUE(InRowOrder(static_cast<const std::string_view*>(x->values), n));
}

void ExpectSpanKernelsAgree(const SpanRows& rows) {
  ExpectSpanAgrees(rows, "str.len", {});
  ExpectSpanAgrees(rows, "str.lower", {});
  ExpectSpanAgrees(rows, "str.upper", {});
  for (const char* needle : {"python", "on", "", "(", "\xc3\xa9", "\xce\xa3"})
    ExpectSpanAgrees(rows, "str.contains", {Scalar::String(needle)});
  ExpectSpanAgrees(rows, "str.extract", {Scalar::String("([a-z_][a-z0-9_]*)\\("), Scalar::Int(1)});
  ExpectSpanAgrees(rows, "str.extract", {Scalar::String("py(th)on"), Scalar::Int(0)});
  ExpectSpanAgrees(rows, "str.contains_regex", {Scalar::String("th.n")});
  ExpectSpanAgrees(rows, "str.count_matches", {Scalar::String("on")});
  ExpectSpanAgrees(rows, "str.replace_regex", {Scalar::String("(o)n"), Scalar::String("<\\1>")});
}

TEST(SpanKernels, AgreeWithRowByRowAtRowEdgesGapsAndUnicode) {
  SpanRows r;
  r.Row("pyth");
  r.Row("on");               // "python" across a row edge: no match in either row
  r.Gap("python f(");        // matches between rows belong to no row
  r.Row("");
  r.Row("\xce\xa3\xce\x91\xce\xa3 OK");  // "ΣΑΣ OK": final sigma, non-ASCII lower in place
  r.Row("\xc4\xb0stanbul");  // "İstanbul": lower grows by a byte
  r.Row("\xe2\x84\xaa""elvin K");  // Kelvin sign: lower shrinks to 'k'
  r.Gap("\xc3\xa9\xc3\xa9");  // continuation bytes between rows count for no row
  r.Row("xPYTHONx call_me(1) and f(2)");
  r.Row("python", false);    // a null row with bytes
  r.Row("(");
  r.Row("\xc3\xa9t\xc3\xa9 Python");
  r.Gap("on");
  r.Row("tail pyth");
  ExpectSpanKernelsAgree(r);
}

TEST(SpanKernels, AgreeWithRowByRowOnRandomLayouts) {
  const std::vector<std::string> pieces = {"a", "A", "p", "y", "th", "o", "n", "pyt", "ho", "on", "ON", "(", "_", "1", " ", "\xc3\xa9",
                                           "\xc3\x89", "\xce\xa3", "\xc4\xb0", "\xe2\x84\xaa", "python", "f("};
  uint64_t seed = 42;
  auto next = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>((seed >> 33) % n);
  };
  for (int round = 0; round < 40; ++round) {
    SpanRows r;
    const size_t rows = next(60);
    for (size_t i = 0; i < rows; ++i) {
      std::string gap, row;
      if (next(3) == 0)
        for (size_t k = next(4); k > 0; --k) gap += pieces[next(pieces.size())];
      for (size_t k = next(8); k > 0; --k) row += pieces[next(pieces.size())];
      r.Gap(gap);
      r.Row(row, next(8) != 0);
    }
    ExpectSpanKernelsAgree(r);
  }
}

TEST(SpanKernels, ArrowInputAndFilterSurvivorsAreOrdered) {
  ArrayPtr a = Strings({"ab", nullopt, "", "cd", "ef"});
  auto v = FromArrow(*a, VType::String(), 0, a->length());
  EXPECT_TRUE(v->ordered);
  const int64_t keep[] = {0, 3, 4};
  EXPECT_TRUE(Gather(*v, keep, 3)->ordered);
  const int64_t repeat[] = {0, 0, 3};
  EXPECT_FALSE(Gather(*v, repeat, 3)->ordered);  // a parent's value repeated for its children
  const int64_t rows[] = {3, 3};
  EXPECT_FALSE(FromArrowRows(*a, VType::String(), rows, 2)->ordered);
}

}  // namespace
}  // namespace dflow::expr
