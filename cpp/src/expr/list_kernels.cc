// .list methods (len, get, slice, join) and .embedding methods (dot, cosine, norm).
#include <cmath>

#include "kernel_util.h"

namespace dflow::expr {
namespace {

void RequireList(const std::string& name, const std::vector<VType>& args, size_t arity = 1) {
  CheckArity(name, args, arity);
  if (args[0].kind != Kind::kList) ThrowSignature(name, args, "expected a list");
}

BoundKernel BindLen(const std::vector<VType>& args, const std::vector<Scalar>&) {
  RequireList("list.len", args);
  return {VType::Int64(), [](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::Int64(), k.args, k.rows);
            int64_t* r = out->AllocValues<int64_t>();
            for (int64_t i = 0; i < k.rows; ++i) r[i] = Live(*out, i) ? a.ListEnd(i) - a.ListBegin(i) : 0;
            return out;
          }};
}

// list.get(i): element i (negative: from the end); out of range gives null (the documented
// default of .list.get), as in Daft and Polars' get(null_on_oob=True).
BoundKernel BindGet(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireList("list.get", args);
  const int64_t index = IntOption(options, 0, "list.get");
  return {*args[0].element, [index](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            std::vector<int64_t> rows(static_cast<size_t>(k.rows), 0);
            std::vector<uint8_t> present(static_cast<size_t>(k.rows), 0);
            bool empty_child = a.child->length == 0;
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!a.IsValid(i)) continue;
              const int64_t b = a.ListBegin(i), n = a.ListEnd(i) - b;
              const int64_t at = index < 0 ? n + index : index;
              if (at < 0 || at >= n) continue;
              rows[i] = b + at;
              present[i] = 1;
            }
            std::shared_ptr<Vector> out;
            if (empty_child) {
              out = MakeVector(*a.type.element, k.rows);
              switch (a.type.element->kind) {
                case Kind::kBool: out->AllocValues<uint8_t>(); break;
                case Kind::kInt64: out->AllocValues<int64_t>(); break;
                case Kind::kFloat64: out->AllocValues<double>(); break;
                case Kind::kFloat32: out->AllocValues<float>(); break;
                case Kind::kString: out->AllocValues<std::string_view>(); break;
                case Kind::kList: throw std::invalid_argument("list.get: lists of lists are not supported");
              }
            } else {
              out = Gather(*a.child, rows.data(), k.rows);
            }
            uint8_t* valid = out->MutableValidity();
            for (int64_t i = 0; i < k.rows; ++i) valid[i] &= present[i];
            return out;
          }};
}

BoundKernel BindSlice(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireList("list.slice", args);
  bool no_start = false, no_stop = false;
  const int64_t start = IntOption(options, 0, "list.slice", &no_start);
  const int64_t stop = IntOption(options, 1, "list.slice", &no_stop);
  return {VType::List(*args[0].element), [=](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            auto out = NullPropagatingResult(VType::List(*a.type.element), k.args, k.rows);
            auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(k.rows) + 1, 0);
            std::vector<int64_t> elements;
            for (int64_t i = 0; i < k.rows; ++i) {
              if (Live(*out, i)) {
                const int64_t b = a.ListBegin(i), n = a.ListEnd(i) - b;
                // Python's list[start:stop]
                int64_t s = no_start ? 0 : (start < 0 ? std::max<int64_t>(0, n + start) : std::min(start, n));
                int64_t e = no_stop ? n : (stop < 0 ? std::max<int64_t>(0, n + stop) : std::min(stop, n));
                for (int64_t x = s; x < e; ++x) elements.push_back(b + x);
              }
              (*offsets)[i + 1] = static_cast<int64_t>(elements.size());
            }
            out->offsets = offsets->data();
            out->owners.push_back(offsets);
            out->child = Gather(*a.child, elements.data(), static_cast<int64_t>(elements.size()));
            return out;
          }};
}

BoundKernel BindJoin(const std::vector<VType>& args, const std::vector<Scalar>& options) {
  RequireList("list.join", args);
  if (args[0].element->kind != Kind::kString) ThrowSignature("list.join", args, "expected a list[str]");
  const std::string sep = StringOption(options, 0, "list.join");
  return {VType::String(), [sep](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            const Vector& c = *a.child;
            StringVectorBuilder out(k.rows);
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!a.IsValid(i)) {
                out.AppendNull();
                continue;
              }
              std::string& buf = out.buffer();
              const size_t mark = buf.size();
              bool ok = true;
              for (int64_t e = a.ListBegin(i); e < a.ListEnd(i); ++e) {
                if (!c.IsValid(e)) {
                  // As str.join: a None element is an error, not an empty string.
                  k.errors->Fail(i, "TypeError: sequence item " + std::to_string(e - a.ListBegin(i)) +
                                        ": expected str instance, NoneType found");
                  ok = false;
                  break;
                }
                if (e > a.ListBegin(i)) buf += sep;
                std::string_view s = c.Str(e);
                buf.append(s.data(), s.size());
              }
              if (ok) {
                out.EndRow();
              } else {
                buf.resize(mark);
                out.AppendNull();
              }
            }
            return out.Finish();
          }};
}

// --- embeddings ---

enum class VecOp { kDot, kCosine, kNorm };

bool IsVectorType(const VType& t) {
  return t.kind == Kind::kList && (t.element->kind == Kind::kFloat32 || t.element->kind == Kind::kFloat64);
}

BoundKernel BindVector(const std::string& name, VecOp op, const std::vector<VType>& args) {
  const size_t arity = op == VecOp::kNorm ? 1 : 2;
  CheckArity(name, args, arity);
  for (const VType& t : args)
    if (!IsVectorType(t)) ThrowSignature(name, args, "expected embeddings (lists of floats)");
  if (arity == 2 && args[0].fixed_size && args[1].fixed_size && args[0].fixed_size != args[1].fixed_size)
    ThrowSignature(name, args, "expected embeddings of the same dimension");
  return {VType::Float64(), [name, op](const KernelArgs& k) {
            const Vector& a = *k.args[0];
            const Vector* b = op == VecOp::kNorm ? nullptr : k.args[1];
            auto out = NullPropagatingResult(VType::Float64(), k.args, k.rows);
            double* r = out->AllocValues<double>();
            const Vector& ca = *a.child;
            for (int64_t i = 0; i < k.rows; ++i) {
              if (!Live(*out, i)) continue;
              const int64_t ab = a.ListBegin(i), n = a.ListEnd(i) - ab;
              if (!b) {
                double ss = 0;
                for (int64_t x = 0; x < n; ++x) {
                  const double v = ca.Number(ab + x);
                  ss += v * v;
                }
                r[i] = std::sqrt(ss);
                continue;
              }
              const Vector& cb = *b->child;
              const int64_t bb = b->ListBegin(i), m = b->ListEnd(i) - bb;
              if (n != m) {
                k.errors->Fail(i, "ValueError: " + name + ": embeddings of dimensions " + std::to_string(n) + " and " +
                                      std::to_string(m));
                out->SetNull(i);
                continue;
              }
              double dot = 0, na = 0, nb = 0;
              for (int64_t x = 0; x < n; ++x) {
                const double u = ca.Number(ab + x), v = cb.Number(bb + x);
                dot += u * v;
                na += u * u;
                nb += v * v;
              }
              // A zero vector has no direction: its cosine is NaN (as 0/0), not 0.
              r[i] = op == VecOp::kDot ? dot : dot / (std::sqrt(na) * std::sqrt(nb));
            }
            return out;
          }};
}

}  // namespace

void RegisterListKernels(KernelRegistry& r) {
  r.Add("list.len", BindLen);
  r.Add("list.get", BindGet);
  r.Add("list.slice", BindSlice);
  r.Add("list.join", BindJoin);
  r.Add("embedding.dot", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindVector("embedding.dot", VecOp::kDot, a); });
  r.Add("embedding.cosine", [](const std::vector<VType>& a, const std::vector<Scalar>&) {
    return BindVector("embedding.cosine", VecOp::kCosine, a);
  });
  r.Add("embedding.norm", [](const std::vector<VType>& a, const std::vector<Scalar>&) { return BindVector("embedding.norm", VecOp::kNorm, a); });
}

}  // namespace dflow::expr
