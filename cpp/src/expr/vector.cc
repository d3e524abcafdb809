#include "dflow/expr/vector.h"

#include <cstring>
#include <stdexcept>

#include "dflow/expr/kernel.h"
#include "kernel_util.h"

namespace dflow::expr {

VType VType::Parse(std::string_view name) {
  if (name == "bool") return Bool();
  if (name == "int") return Int64();
  if (name == "float") return Float64();
  if (name == "str" || name == "JSON" || name == "HTML") return String();
  if (name == "Embedding") return List(Float32());
  if (name.substr(0, 10) == "Embedding[" && name.back() == ']') {
    int32_t dim = std::stoi(std::string(name.substr(10, name.size() - 11)));
    if (dim <= 0) throw std::invalid_argument("Embedding dimension must be positive");
    return List(Float32(), dim);
  }
  if (name.substr(0, 5) == "list[" && name.back() == ']') return List(Parse(name.substr(5, name.size() - 6)));
  throw std::invalid_argument("expressions do not support values of type " + std::string(name));
}

std::string VType::ArrowFormat() const {
  switch (kind) {
    case Kind::kBool: return "b";
    case Kind::kInt64: return "l";
    case Kind::kFloat64: return "g";
    case Kind::kFloat32: return "f";
    case Kind::kString: return "U";
    case Kind::kList: return fixed_size ? "+w:" + std::to_string(fixed_size) : "+L";
  }
  return "";
}

std::string VType::ToString() const {
  switch (kind) {
    case Kind::kBool: return "bool";
    case Kind::kInt64: return "int";
    case Kind::kFloat64: return "float";
    case Kind::kFloat32: return "float32";
    case Kind::kString: return "str";
    case Kind::kList:
      if (element && element->kind == Kind::kFloat32)
        return fixed_size ? "Embedding[" + std::to_string(fixed_size) + "]" : "Embedding";
      return "list[" + (element ? element->ToString() : std::string("?")) + "]";
  }
  return "?";
}

bool VType::operator==(const VType& o) const {
  if (kind != o.kind || fixed_size != o.fixed_size) return false;
  if (kind != Kind::kList) return true;
  if (!element || !o.element) return element == o.element;
  return *element == *o.element;
}

uint8_t* Vector::AllocValidity(uint8_t fill) {
  auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(scalar ? 1 : length), fill);
  uint8_t* p = buf->data();
  valid = p;
  owners.push_back(buf);
  return p;
}

StringVectorBuilder::StringVectorBuilder(int64_t rows, int64_t expected_bytes)
    : arena_(std::make_shared<std::string>()) {
  ends_.reserve(static_cast<size_t>(rows));
  if (expected_bytes > 0) arena_->reserve(static_cast<size_t>(expected_bytes));
}

std::shared_ptr<Vector> StringVectorBuilder::Finish() {
  auto v = std::make_shared<Vector>();
  v->type = VType::String();
  v->length = rows();
  auto* views = v->AllocValues<std::string_view>();
  const char* base = arena_->data();
  size_t start = 0;
  for (size_t i = 0; i < ends_.size(); ++i) {
    views[i] = std::string_view(base + start, ends_[i] - start);
    start = ends_[i];
  }
  if (!null_rows_.empty()) {
    uint8_t* valid = v->AllocValidity(1);
    for (int64_t r : null_rows_) valid[r] = 0;
  }
  v->owners.push_back(arena_);
  v->ordered = true;  // rows were appended one after the other to one arena
  return v;
}

bool InRowOrder(const std::string_view* v, int64_t n) {
  if (n > 0 && v[0].data() == nullptr) {  // no buffer: in order only if every row is empty
    for (int64_t i = 0; i < n; ++i)
      if (v[i].data() != nullptr || !v[i].empty()) return false;
    return true;
  }
  for (int64_t i = 1; i < n; ++i)
    if (v[i].data() < v[i - 1].data() + v[i - 1].size()) return false;
  return true;
}

std::shared_ptr<Vector> MakeVector(VType type, int64_t n) {
  auto v = std::make_shared<Vector>();
  v->type = std::move(type);
  v->length = n;
  return v;
}

namespace {

template <typename T>
void GatherValues(const Vector& v, const int64_t* index, int64_t n, Vector* out) {
  const T* src = static_cast<const T*>(v.values);
  T* dst = out->AllocValues<T>();
  if (v.scalar) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[0];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[index[i]];
  }
}

}  // namespace

std::shared_ptr<Vector> Gather(const Vector& v, const int64_t* index, int64_t n) {
  auto out = MakeVector(v.type, n);
  out->owners = v.owners;  // strings keep pointing into their arenas
  if (v.valid) {
    uint8_t* dst = out->AllocValidity(1);
    for (int64_t i = 0; i < n; ++i) dst[i] = v.valid[v.scalar ? 0 : index[i]];
  }
  switch (v.type.kind) {
    case Kind::kBool: GatherValues<uint8_t>(v, index, n, out.get()); break;
    case Kind::kInt64: GatherValues<int64_t>(v, index, n, out.get()); break;
    case Kind::kFloat64: GatherValues<double>(v, index, n, out.get()); break;
    case Kind::kFloat32: GatherValues<float>(v, index, n, out.get()); break;
    case Kind::kString:
      GatherValues<std::string_view>(v, index, n, out.get());
      // Rows of an ordered Vector taken in row order (a filter's survivors) keep the layout.
      if (v.ordered && !v.scalar) {
        bool increasing = true;
        for (int64_t i = 1; i < n && increasing; ++i) increasing = index[i] > index[i - 1];
        out->ordered = increasing;
      }
      break;
    case Kind::kList: {
      auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n) + 1, 0);
      std::vector<int64_t> elements;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t row = v.scalar ? 0 : index[i];
        for (int64_t k = v.offsets[row]; k < v.offsets[row + 1]; ++k) elements.push_back(k);
        (*offsets)[i + 1] = static_cast<int64_t>(elements.size());
      }
      out->offsets = offsets->data();
      out->owners.push_back(offsets);
      out->child = Gather(*v.child, elements.data(), static_cast<int64_t>(elements.size()));
      break;
    }
  }
  return out;
}

std::shared_ptr<Vector> Materialize(const Vector& v, int64_t rows) {
  if (!v.scalar) return std::make_shared<Vector>(v);
  std::vector<int64_t> zeros(static_cast<size_t>(rows), 0);
  auto out = Gather(v, zeros.data(), rows);
  return out;
}

namespace {

template <typename T>
void ConcatValues(const std::vector<const Vector*>& parts, Vector* out) {
  T* dst = out->AllocValues<T>();
  int64_t k = 0;
  for (const Vector* p : parts)
    for (int64_t i = 0; i < p->length; ++i) dst[k++] = static_cast<const T*>(p->values)[p->Index(i)];
}

}  // namespace

std::shared_ptr<Vector> Concat(const std::vector<const Vector*>& parts, const VType& type) {
  int64_t total = 0;
  bool nulls = false;
  for (const Vector* p : parts) {
    total += p->length;
    nulls |= p->MayHaveNulls();
  }
  auto out = MakeVector(type, total);
  if (nulls) {
    uint8_t* valid = out->AllocValidity(1);
    int64_t k = 0;
    for (const Vector* p : parts)
      for (int64_t i = 0; i < p->length; ++i) valid[k++] = p->IsValid(i);
  }
  switch (type.kind) {
    case Kind::kBool: ConcatValues<uint8_t>(parts, out.get()); break;
    case Kind::kInt64: ConcatValues<int64_t>(parts, out.get()); break;
    case Kind::kFloat64: ConcatValues<double>(parts, out.get()); break;
    case Kind::kFloat32: ConcatValues<float>(parts, out.get()); break;
    case Kind::kString:
      ConcatValues<std::string_view>(parts, out.get());
      for (const Vector* p : parts) out->owners.insert(out->owners.end(), p->owners.begin(), p->owners.end());
      break;
    case Kind::kList: {
      auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(total) + 1, 0);
      std::vector<std::shared_ptr<Vector>> children;
      std::vector<const Vector*> child_ptrs;
      int64_t k = 0, at = 0;
      for (const Vector* p : parts) {
        // Each part's rows as a contiguous run of its child's elements.
        std::vector<int64_t> elements;
        for (int64_t i = 0; i < p->length; ++i) {
          for (int64_t e = p->ListBegin(i); e < p->ListEnd(i); ++e) elements.push_back(e);
          at += p->ListEnd(i) - p->ListBegin(i);
          (*offsets)[++k] = at;
        }
        children.push_back(Gather(*p->child, elements.data(), static_cast<int64_t>(elements.size())));
        child_ptrs.push_back(children.back().get());
      }
      out->offsets = offsets->data();
      out->owners.push_back(offsets);
      out->child = Concat(child_ptrs, *type.element);
      break;
    }
  }
  return out;
}

std::string Scalar::ToString() const {
  switch (kind) {
    case Kind::kNull: return "None";
    case Kind::kBool: return b ? "True" : "False";
    case Kind::kInt: return std::to_string(i);
    case Kind::kFloat: return std::to_string(f);
    case Kind::kString: return "'" + s + "'";
    case Kind::kFloatList: return "[" + std::to_string(floats.size()) + " floats]";
  }
  return "?";
}

std::shared_ptr<Vector> ScalarVector(const Scalar& value, const VType& type) {
  auto v = MakeVector(type, 1);
  v->scalar = true;
  if (value.is_null()) {
    v->AllocValidity(0);
    switch (type.kind) {
      case Kind::kBool: v->AllocValues<uint8_t>(); break;
      case Kind::kInt64: v->AllocValues<int64_t>(); break;
      case Kind::kFloat64: v->AllocValues<double>(); break;
      case Kind::kFloat32: v->AllocValues<float>(); break;
      case Kind::kString: v->AllocValues<std::string_view>(); break;
      case Kind::kList: {
        auto offsets = std::make_shared<std::vector<int64_t>>(2, 0);
        v->offsets = offsets->data();
        v->owners.push_back(offsets);
        v->child = MakeVector(*type.element, 0);
        break;
      }
    }
    return v;
  }
  auto mismatch = [&] {
    throw TypeMismatch("literal " + value.ToString() + " cannot be used as " + type.ToString());
  };
  switch (type.kind) {
    case Kind::kBool:
      if (value.kind != Scalar::Kind::kBool) mismatch();
      v->AllocValues<uint8_t>()[0] = value.b;
      break;
    case Kind::kInt64:
      if (value.kind != Scalar::Kind::kInt) mismatch();
      v->AllocValues<int64_t>()[0] = value.i;
      break;
    case Kind::kFloat64:
      if (value.kind == Scalar::Kind::kInt) {
        v->AllocValues<double>()[0] = static_cast<double>(value.i);
      } else if (value.kind == Scalar::Kind::kFloat) {
        v->AllocValues<double>()[0] = value.f;
      } else {
        mismatch();
      }
      break;
    case Kind::kString: {
      if (value.kind != Scalar::Kind::kString) mismatch();
      auto text = std::make_shared<std::string>(value.s);
      v->AllocValues<std::string_view>()[0] = *text;
      v->owners.push_back(text);
      break;
    }
    case Kind::kList: {
      if (value.kind != Scalar::Kind::kFloatList || type.element->kind != Kind::kFloat32) mismatch();
      auto offsets = std::make_shared<std::vector<int64_t>>(std::vector<int64_t>{0, static_cast<int64_t>(value.floats.size())});
      v->offsets = offsets->data();
      v->owners.push_back(offsets);
      auto child = MakeVector(VType::Float32(), static_cast<int64_t>(value.floats.size()));
      std::memcpy(child->AllocValues<float>(), value.floats.data(), value.floats.size() * sizeof(float));
      v->child = child;
      break;
    }
    case Kind::kFloat32: mismatch();
  }
  return v;
}

}  // namespace dflow::expr
