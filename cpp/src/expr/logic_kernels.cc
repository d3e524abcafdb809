// & | ~ on bools (three-valued: False & null is False, True | null is True, as in SQL, Polars and
// Arrow), is_null / is_not_null, fill_null and if_else.
#include "kernel_util.h"

namespace dflow::expr {
namespace {

std::shared_ptr<Vector> AndOr(const KernelArgs& k, bool is_and) {
  const Vector& a = *k.args[0];
  const Vector& b = *k.args[1];
  auto out = MakeVector(VType::Bool(), k.rows);
  uint8_t* r = out->AllocValues<uint8_t>();
  const bool nulls = a.MayHaveNulls() || b.MayHaveNulls();
  uint8_t* valid = nulls ? out->AllocValidity(1) : nullptr;
  for (int64_t i = 0; i < k.rows; ++i) {
    const bool va = a.IsValid(i), vb = b.IsValid(i);
    const bool x = va && a.Bool(i), y = vb && b.Bool(i);
    if (va && vb) {
      r[i] = is_and ? (x && y) : (x || y);
    } else if (is_and && ((va && !x) || (vb && !y))) {
      r[i] = 0;  // False & anything is False
    } else if (!is_and && (x || y)) {
      r[i] = 1;  // True | anything is True
    } else {
      r[i] = 0;
      valid[i] = 0;
    }
  }
  return out;
}

BoundKernel BindAndOr(const std::string& name, const std::vector<VType>& args, bool is_and) {
  CheckArity(name, args, 2);
  if (args[0].kind != Kind::kBool || args[1].kind != Kind::kBool) ThrowSignature(name, args, "expected two bools");
  return {VType::Bool(), [is_and](const KernelArgs& k) { return AndOr(k, is_and); }};
}

BoundKernel BindNot(const std::vector<VType>& args, const std::vector<Scalar>&) {
  CheckArity("not", args, 1);
  if (args[0].kind != Kind::kBool) ThrowSignature("not", args, "expected a bool");
  return {VType::Bool(), [](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Bool(), k.args, k.rows);
            uint8_t* r = out->AllocValues<uint8_t>();
            for (int64_t i = 0; i < k.rows; ++i) r[i] = !a.Bool(i);
            return out;
          }};
}

BoundKernel BindIsNull(const std::vector<VType>& args, bool want_null) {
  CheckArity(want_null ? "is_null" : "is_not_null", args, 1);
  return {VType::Bool(), [want_null](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = MakeVector(VType::Bool(), k.rows);
            uint8_t* r = out->AllocValues<uint8_t>();
            for (int64_t i = 0; i < k.rows; ++i) r[i] = a.IsValid(i) != want_null;
            return out;
          }};
}

// Row j of the result is row picks[j].second of `y` when picks[j].first, else of `x` (same type);
// `null_row` (if given) forces nulls.
std::shared_ptr<Vector> Interleave(const Vector& x, const Vector& y, const std::vector<std::pair<bool, int64_t>>& picks,
                                   const std::vector<uint8_t>* null_row) {
  const int64_t n = static_cast<int64_t>(picks.size());
  auto out = MakeVector(x.type, n);
  out->owners = x.owners;
  out->owners.insert(out->owners.end(), y.owners.begin(), y.owners.end());
  if (x.MayHaveNulls() || y.MayHaveNulls() || null_row) {
    uint8_t* valid = out->AllocValidity(1);
    for (int64_t j = 0; j < n; ++j) {
      const auto& [from_y, row] = picks[j];
      valid[j] = !(null_row && (*null_row)[j]) && (from_y ? y : x).IsValid(row);
    }
  }
  auto pick = [&](auto* dst, auto read) {
    for (int64_t j = 0; j < n; ++j) dst[j] = read(picks[j].first ? y : x, picks[j].second);
  };
  switch (x.type.kind) {
    case Kind::kBool: pick(out->AllocValues<uint8_t>(), [](const Vector& v, int64_t i) { return uint8_t(v.Bool(i)); }); break;
    case Kind::kInt64: pick(out->AllocValues<int64_t>(), [](const Vector& v, int64_t i) { return v.Int(i); }); break;
    case Kind::kFloat64: pick(out->AllocValues<double>(), [](const Vector& v, int64_t i) { return v.Float(i); }); break;
    case Kind::kFloat32: pick(out->AllocValues<float>(), [](const Vector& v, int64_t i) { return v.Float32(i); }); break;
    case Kind::kString: pick(out->AllocValues<std::string_view>(), [](const Vector& v, int64_t i) { return v.Str(i); }); break;
    case Kind::kList: {
      auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n) + 1, 0);
      std::vector<std::pair<bool, int64_t>> elements;
      for (int64_t j = 0; j < n; ++j) {
        const auto& [from_y, row] = picks[j];
        const Vector& src = from_y ? y : x;
        if (out->IsValid(j))
          for (int64_t e = src.ListBegin(row); e < src.ListEnd(row); ++e) elements.emplace_back(from_y, e);
        (*offsets)[j + 1] = static_cast<int64_t>(elements.size());
      }
      out->offsets = offsets->data();
      out->owners.push_back(offsets);
      out->child = Interleave(*x.child, *y.child, elements, nullptr);
      break;
    }
  }
  return out;
}

BoundKernel BindFillNull(const std::vector<VType>& args, const std::vector<Scalar>&) {
  CheckArity("fill_null", args, 2);
  if (args[0] != args[1]) ThrowSignature("fill_null", args, "expected a replacement of the same type");
  return {args[0], [](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            std::vector<std::pair<bool, int64_t>> picks(static_cast<size_t>(k.rows));
            for (int64_t i = 0; i < k.rows; ++i) picks[i] = {!a.IsValid(i), i};
            return Interleave(a, *k.args[1], picks, nullptr);
          }};
}

BoundKernel BindIfElse(const std::vector<VType>& args, const std::vector<Scalar>&) {
  CheckArity("if_else", args, 3);
  if (args[0].kind != Kind::kBool) ThrowSignature("if_else", args, "expected a bool condition");
  if (args[1] != args[2]) ThrowSignature("if_else", args, "expected both branches of the same type");
  return {args[1], [](const KernelArgs& k) {
            const Vector& c = *k.args[0];
            std::vector<std::pair<bool, int64_t>> picks(static_cast<size_t>(k.rows));
            std::vector<uint8_t> null_row(static_cast<size_t>(k.rows));
            for (int64_t i = 0; i < k.rows; ++i) {
              null_row[i] = !c.IsValid(i);  // a null condition gives a null
              picks[i] = {c.IsValid(i) && !c.Bool(i), i};
            }
            return Interleave(*k.args[1], *k.args[2], picks, &null_row);
          }};
}

}  // namespace

void RegisterLogicKernels(KernelRegistry& r) {
  r.Add("and", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindAndOr("and", a, true); });
  r.Add("or", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindAndOr("or", a, false); });
  r.Add("not", BindNot);
  r.Add("is_null", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindIsNull(a, true); });
  r.Add("is_not_null", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindIsNull(a, false); });
  r.Add("fill_null", BindFillNull);
  r.Add("if_else", BindIfElse);
}

}  // namespace dflow::expr
