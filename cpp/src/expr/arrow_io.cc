// Arrow arrays <-> Vectors: how a program reads the batch's columns and writes its results.
#include <cstring>
#include <stdexcept>

#include "dflow/expr/program.h"

namespace dflow::expr {
namespace {

void CheckFormat(const Array& a, const VType& type) {
  const std::string& f = a.format();
  bool ok = false;
  switch (type.kind) {
    case Kind::kBool: ok = f == "b"; break;
    case Kind::kInt64: ok = f == "l"; break;
    case Kind::kFloat64: ok = f == "g"; break;
    case Kind::kFloat32: ok = f == "f"; break;
    case Kind::kString: ok = f == "U" || f == "u"; break;
    case Kind::kList: ok = f == "+L" || f == "+l" || f.rfind("+w:", 0) == 0; break;
  }
  if (!ok) throw std::logic_error("expression input of type " + type.ToString() + " has Arrow format '" + f + "'");
}

int64_t FixedSize(const Array& a) { return a.format().rfind("+w:", 0) == 0 ? std::stoll(a.format().substr(3)) : 0; }

// Element range of list row `row` (an absolute row of `a`, offset not applied).
std::pair<int64_t, int64_t> ListRange(const Array& a, int64_t row) {
  if (int64_t k = FixedSize(a)) return {(a.offset() + row) * k, (a.offset() + row + 1) * k};
  if (a.format() == "+l") {
    const int32_t* o = static_cast<const int32_t*>(a.buffer(1)) + a.offset() + row;
    return {o[0], o[1]};
  }
  return a.ListRange(row);
}

void LoadValidity(const Array& a, const int64_t* rows, int64_t begin, int64_t n, Vector* v) {
  if (a.null_count() == 0) return;
  uint8_t* valid = v->AllocValidity(1);
  for (int64_t i = 0; i < n; ++i) valid[i] = a.IsValid(rows ? rows[i] : begin + i);
}

// The child array of a list viewed from its first element (the list's child may be sliced).
std::shared_ptr<Vector> LoadList(const Array& a, const VType& type, const int64_t* rows, int64_t begin, int64_t n,
                                 Vector* v) {
  auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n) + 1, 0);
  const Array& child = *a.children().at(0);
  std::vector<int64_t> elements;
  bool contiguous = rows == nullptr;
  int64_t first = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto [b, e] = ListRange(a, rows ? rows[i] : begin + i);
    if (i == 0) first = b;
    if (contiguous) {
      (*offsets)[i + 1] = e - first;
    } else {
      for (int64_t k = b; k < e; ++k) elements.push_back(k);
      (*offsets)[i + 1] = static_cast<int64_t>(elements.size());
    }
  }
  v->offsets = offsets->data();
  v->owners.push_back(offsets);
  // List offsets are logical positions in the child array (its own offset still applies).
  if (contiguous) return FromArrow(child, *type.element, first, (*offsets)[n]);
  return FromArrowRows(child, *type.element, elements.data(), static_cast<int64_t>(elements.size()));
}

}  // namespace

std::shared_ptr<Vector> FromArrow(const Array& a, const VType& type, int64_t begin, int64_t n) {
  CheckFormat(a, type);
  auto v = MakeVector(type, n);
  LoadValidity(a, nullptr, begin, n, v.get());
  const int64_t at = a.offset() + begin;
  switch (type.kind) {
    case Kind::kBool: {
      uint8_t* dst = v->AllocValues<uint8_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.Bool(begin + i);
      break;
    }
    case Kind::kInt64: v->values = static_cast<const int64_t*>(a.buffer(1)) + at; break;
    case Kind::kFloat64: v->values = static_cast<const double*>(a.buffer(1)) + at; break;
    case Kind::kFloat32: v->values = static_cast<const float*>(a.buffer(1)) + at; break;
    case Kind::kString: {
      auto* dst = v->AllocValues<std::string_view>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.View(begin + i);
      // Consecutive rows of one data buffer; checked rather than assumed (offsets are monotonic
      // in any array that passed validation, but not every array in a batch came from outside).
      v->ordered = InRowOrder(dst, n);
      break;
    }
    case Kind::kList: v->child = LoadList(a, type, nullptr, begin, n, v.get()); break;
  }
  v->owners.push_back(a.shared_from_this());
  return v;
}

std::shared_ptr<Vector> FromArrowRows(const Array& a, const VType& type, const int64_t* rows, int64_t n) {
  CheckFormat(a, type);
  auto v = MakeVector(type, n);
  LoadValidity(a, rows, 0, n, v.get());
  switch (type.kind) {
    case Kind::kBool: {
      uint8_t* dst = v->AllocValues<uint8_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.Bool(rows[i]);
      break;
    }
    case Kind::kInt64: {
      int64_t* dst = v->AllocValues<int64_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.Int64(rows[i]);
      break;
    }
    case Kind::kFloat64: {
      double* dst = v->AllocValues<double>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.Float64(rows[i]);
      break;
    }
    case Kind::kFloat32: {
      float* dst = v->AllocValues<float>();
      const float* src = static_cast<const float*>(a.buffer(1)) + a.offset();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[rows[i]];
      break;
    }
    case Kind::kString: {
      auto* dst = v->AllocValues<std::string_view>();
      for (int64_t i = 0; i < n; ++i) dst[i] = a.View(rows[i]);
      v->ordered = InRowOrder(dst, n);  // false where a parent row repeats for its children
      break;
    }
    case Kind::kList: v->child = LoadList(a, type, rows, 0, n, v.get()); break;
  }
  v->owners.push_back(a.shared_from_this());
  return v;
}

ArrayPtr ToArrow(const Vector& v) {
  const int64_t n = v.length;
  switch (v.type.kind) {
    case Kind::kBool: {
      BoolBuilder b;
      for (int64_t i = 0; i < n; ++i) v.IsValid(i) ? b.Append(v.Bool(i)) : b.AppendNull();
      return b.Finish();
    }
    case Kind::kInt64: {
      PrimitiveBuilder<int64_t> b("l", n);
      for (int64_t i = 0; i < n; ++i) v.IsValid(i) ? b.Append(v.Int(i)) : b.AppendNull();
      return b.Finish();
    }
    case Kind::kFloat64: {
      PrimitiveBuilder<double> b("g", n);
      for (int64_t i = 0; i < n; ++i) v.IsValid(i) ? b.Append(v.Float(i)) : b.AppendNull();
      return b.Finish();
    }
    case Kind::kFloat32: {
      PrimitiveBuilder<float> b("f", n);
      for (int64_t i = 0; i < n; ++i) v.IsValid(i) ? b.Append(v.Float32(i)) : b.AppendNull();
      return b.Finish();
    }
    case Kind::kString: {
      BinaryBuilder b(true, n);
      for (int64_t i = 0; i < n; ++i) v.IsValid(i) ? b.Append(v.Str(i)) : b.AppendNull();
      return b.Finish();
    }
    case Kind::kList: {
      std::vector<uint8_t> validity((n + 7) / 8, 0);
      int64_t nulls = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (v.IsValid(i)) validity[i >> 3] |= static_cast<uint8_t>(1u << (i & 7)); else ++nulls;
      }
      const int32_t fixed = v.type.fixed_size;
      // The child holds exactly the elements of rows 0..n, in order (fixed-size rows included).
      std::vector<int64_t> elements;
      std::vector<int64_t> offsets(static_cast<size_t>(n) + 1, 0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t b = v.ListBegin(i), e = v.ListEnd(i);
        if (fixed && v.IsValid(i) && e - b != fixed)
          throw std::logic_error("embedding row of " + std::to_string(e - b) + " values, expected " + std::to_string(fixed));
        if (fixed && !v.IsValid(i)) {
          for (int64_t k = 0; k < fixed; ++k) elements.push_back(-1);
        } else {
          for (int64_t k = b; k < e; ++k) elements.push_back(k);
        }
        offsets[i + 1] = static_cast<int64_t>(elements.size());
      }
      // -1 marks padding of a null fixed-size row: a zero value.
      auto child = MakeVector(*v.type.element, static_cast<int64_t>(elements.size()));
      std::shared_ptr<Vector> gathered;
      bool padded = false;
      for (int64_t e : elements) padded |= e < 0;
      if (padded) {
        std::vector<int64_t> safe(elements);
        for (auto& e : safe) e = e < 0 ? 0 : e;
        if (v.child->length == 0) {
          auto zeros = MakeVector(*v.type.element, static_cast<int64_t>(safe.size()));
          std::memset(zeros->AllocValues<float>(), 0, safe.size() * sizeof(float));
          gathered = zeros;
        } else {
          gathered = Gather(*v.child, safe.data(), static_cast<int64_t>(safe.size()));
        }
      } else {
        gathered = Gather(*v.child, elements.data(), static_cast<int64_t>(elements.size()));
      }
      ArrayPtr values = ToArrow(*gathered);
      if (fixed) {
        auto bits = Own(std::move(validity));
        return Array::Make(v.type.ArrowFormat(), n, nulls, 0, {nulls ? bits->data() : nullptr}, {values}, bits,
                           static_cast<int64_t>(bits->size()) + values->nbytes());
      }
      return MakeLargeList(std::move(offsets), values, std::move(validity), nulls);
    }
  }
  throw std::logic_error("ToArrow: unknown kind");
}

}  // namespace dflow::expr
