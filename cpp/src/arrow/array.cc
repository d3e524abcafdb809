#include "dflow/arrow/array.h"

#include <cstdlib>

namespace dflow {
namespace {

// Owns an imported C array; releasing the parent releases its children too (per the C ABI).
struct ImportedArray {
  ArrowArray array{};
  ~ImportedArray() {
    if (array.release != nullptr) array.release(&array);
  }
};

int64_t FixedWidthBytes(const std::string& f) {
  switch (f.empty() ? '\0' : f[0]) {
    case 'c': case 'C': return 1;
    case 's': case 'S': case 'e': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': case 'g': return 8;
    default: return 0;
  }
}

ArrayPtr ImportChild(const ArrowSchema* schema, const ArrowArray* array, const std::shared_ptr<void>& owner);

std::vector<ArrayPtr> ImportChildren(const ArrowSchema* schema, const ArrowArray* array,
                                     const std::shared_ptr<void>& owner) {
  if (schema->n_children != array->n_children)
    throw std::invalid_argument("Arrow import: schema and array disagree on the number of children");
  std::vector<ArrayPtr> out;
  for (int64_t i = 0; i < array->n_children; ++i)
    out.push_back(ImportChild(schema->children[i], array->children[i], owner));
  return out;
}

// The bytes of the rows this array covers: a slice of a large array (an Arrow table read in
// batches) is charged its own rows, not the buffers' whole length.
int64_t EstimateBytes(const std::string& format, const ArrowArray* a, const std::vector<ArrayPtr>& children) {
  const int64_t n = a->length, end = a->length + a->offset;
  int64_t bytes = (a->buffers && a->n_buffers > 0 && a->buffers[0]) ? (n + 7) / 8 : 0;
  if (format == "U" || format == "Z") {
    const int64_t* o = static_cast<const int64_t*>(a->buffers[1]);
    bytes += 8 * (n + 1) + (n ? o[end] - o[a->offset] : 0);
  } else if (format == "u" || format == "z") {
    const int32_t* o = static_cast<const int32_t*>(a->buffers[1]);
    bytes += 4 * (n + 1) + (n ? o[end] - o[a->offset] : 0);
  } else if (format == "b") {
    bytes += (n + 7) / 8;
  } else if (format == "+L") {
    bytes += 8 * (n + 1);
  } else if (format == "+l") {
    bytes += 4 * (n + 1);
  } else {
    bytes += FixedWidthBytes(format) * n;
  }
  for (const auto& c : children) bytes += c->nbytes();
  return bytes;
}

ArrayPtr ImportChild(const ArrowSchema* schema, const ArrowArray* array, const std::shared_ptr<void>& owner) {
  if (schema->dictionary != nullptr || array->dictionary != nullptr)
    throw std::invalid_argument("Arrow import: dictionary arrays are not supported; decode them first");
  std::string format = schema->format ? schema->format : "";
  std::vector<ArrayPtr> children = ImportChildren(schema, array, owner);
  std::vector<const void*> buffers(array->buffers, array->buffers + array->n_buffers);
  int64_t bytes = EstimateBytes(format, array, children);
  return Array::Make(format, array->length, array->null_count, array->offset, std::move(buffers),
                     std::move(children), owner, bytes, schema->name ? schema->name : "");
}

struct ExportedSchema {
  std::string format, name;
  std::vector<ArrowSchema> children;
  std::vector<ArrowSchema*> child_ptrs;
};

void ReleaseSchema(ArrowSchema* s) {
  auto* p = static_cast<ExportedSchema*>(s->private_data);
  for (auto& c : p->children)
    if (c.release) c.release(&c);
  delete p;
  s->release = nullptr;
}

void ExportSchema(const Array& a, ArrowSchema* s) {
  auto* p = new ExportedSchema();
  p->format = a.format();
  p->name = a.name();
  p->children.resize(a.children().size());
  for (size_t i = 0; i < a.children().size(); ++i) {
    ExportSchema(*a.children()[i], &p->children[i]);
    p->child_ptrs.push_back(&p->children[i]);
  }
  s->format = p->format.c_str();
  s->name = p->name.c_str();
  s->metadata = nullptr;
  s->flags = ARROW_FLAG_NULLABLE;
  s->n_children = static_cast<int64_t>(p->children.size());
  s->children = p->child_ptrs.empty() ? nullptr : p->child_ptrs.data();
  s->dictionary = nullptr;
  s->release = &ReleaseSchema;
  s->private_data = p;
}

struct ExportedArray {
  ArrayPtr keep;
  std::vector<const void*> buffers;
  std::vector<ArrowArray> children;
  std::vector<ArrowArray*> child_ptrs;
};

void ReleaseArray(ArrowArray* a) {
  auto* p = static_cast<ExportedArray*>(a->private_data);
  for (auto& c : p->children)
    if (c.release) c.release(&c);
  delete p;
  a->release = nullptr;
}

}  // namespace

ArrayPtr Array::Import(ArrowSchema* schema, ArrowArray* array) {
  if (array == nullptr || array->release == nullptr) throw std::invalid_argument("Arrow import: released array");
  auto holder = std::make_shared<ImportedArray>();
  holder->array = *array;
  array->release = nullptr;  // moved
  ArrayPtr out = ImportChild(schema, &holder->array, holder);
  if (schema->release) schema->release(schema);
  return out;
}

ArrayPtr Array::Make(std::string format, int64_t length, int64_t null_count, int64_t offset,
                     std::vector<const void*> buffers, std::vector<ArrayPtr> children,
                     std::shared_ptr<void> owner, int64_t nbytes, std::string name) {
  auto a = std::make_shared<Array>();
  a->name_ = std::move(name);
  a->format_ = std::move(format);
  a->length_ = length;
  a->null_count_ = null_count;
  a->offset_ = offset;
  a->buffers_ = std::move(buffers);
  a->children_ = std::move(children);
  a->owner_ = std::move(owner);
  a->nbytes_ = nbytes;
  a->Init();
  return a;
}

void Array::Init() {
  validity_ = (!buffers_.empty() && null_count_ != 0) ? static_cast<const uint8_t*>(buffers_[0]) : nullptr;
  wide_offsets_ = (format_ == "U" || format_ == "Z");
}

ArrayPtr Array::Slice(int64_t offset, int64_t length) const {
  auto a = std::make_shared<Array>(*this);
  a->offset_ = offset_ + offset;
  a->length_ = length;
  a->null_count_ = validity_ ? -1 : 0;  // unknown after slicing; consumers recompute when needed
  a->Init();
  if (a->null_count_ == -1) {
    int64_t nulls = 0;
    for (int64_t i = 0; i < length; ++i) nulls += !a->IsValid(i);
    a->null_count_ = nulls;
    a->Init();
  }
  a->nbytes_ = length_ ? nbytes_ * length / length_ : 0;
  return a;
}

ArrayPtr Array::Renamed(std::string name) const {
  auto a = std::make_shared<Array>(*this);
  a->name_ = std::move(name);
  return a;
}

void Array::Export(ArrowSchema* schema, ArrowArray* array) const {
  ExportSchema(*this, schema);
  auto* p = new ExportedArray();
  p->keep = shared_from_this();
  p->buffers = buffers_;
  p->children.resize(children_.size());
  for (size_t i = 0; i < children_.size(); ++i) {
    ArrowSchema unused;
    children_[i]->Export(&unused, &p->children[i]);
    unused.release(&unused);
    p->child_ptrs.push_back(&p->children[i]);
  }
  array->length = length_;
  array->null_count = null_count_;
  array->offset = offset_;
  array->n_buffers = static_cast<int64_t>(p->buffers.size());
  array->buffers = p->buffers.empty() ? nullptr : p->buffers.data();
  array->n_children = static_cast<int64_t>(p->children.size());
  array->children = p->child_ptrs.empty() ? nullptr : p->child_ptrs.data();
  array->dictionary = nullptr;
  array->release = &ReleaseArray;
  array->private_data = p;
}

ArrayPtr BinaryBuilder::Finish() {
  auto offsets = Own(std::move(offsets_));
  if (data_ == nullptr) Resize(1);  // Arrow wants a non-null data buffer, even for no bytes
  std::shared_ptr<char> data(data_, [](char* p) { std::free(p); });
  const int64_t size = static_cast<int64_t>(size_);
  data_ = nullptr;
  size_ = capacity_ = 0;
  auto bits = Own(std::move(validity_.bits()));
  int64_t n = validity_.length(), nulls = validity_.null_count();
  struct Owner { std::shared_ptr<std::vector<int64_t>> o; std::shared_ptr<char> d; std::shared_ptr<std::vector<uint8_t>> v; };
  auto owner = std::make_shared<Owner>(Owner{offsets, data, bits});
  int64_t bytes = static_cast<int64_t>(offsets->size() * 8 + size + bits->size());
  return Array::Make(utf8_ ? "U" : "Z", n, nulls, 0,
                     {nulls ? bits->data() : nullptr, offsets->data(), data.get()}, {}, owner, bytes);
}

template <typename T>
ArrayPtr PrimitiveBuilder<T>::Finish() {
  auto values = Own(std::move(values_));
  auto bits = Own(std::move(validity_.bits()));
  int64_t n = validity_.length(), nulls = validity_.null_count();
  struct Owner { std::shared_ptr<std::vector<T>> v; std::shared_ptr<std::vector<uint8_t>> b; };
  auto owner = std::make_shared<Owner>(Owner{values, bits});
  static const T kEmpty{};
  const void* data = values->empty() ? static_cast<const void*>(&kEmpty) : values->data();
  return Array::Make(format_, n, nulls, 0, {nulls ? bits->data() : nullptr, data}, {}, owner,
                     static_cast<int64_t>(values->size() * sizeof(T) + bits->size()));
}
template class PrimitiveBuilder<int64_t>;
template class PrimitiveBuilder<uint64_t>;
template class PrimitiveBuilder<double>;
template class PrimitiveBuilder<float>;

ArrayPtr BoolBuilder::Finish() {
  auto bits = Own(std::move(bits_));
  auto valid = Own(std::move(values_.bits()));
  int64_t n = values_.length(), nulls = values_.null_count();
  struct Owner { std::shared_ptr<std::vector<uint8_t>> a, b; };
  static const uint8_t kEmpty = 0;
  auto owner = std::make_shared<Owner>(Owner{bits, valid});
  return Array::Make("b", n, nulls, 0,
                     {nulls ? valid->data() : nullptr, bits->empty() ? &kEmpty : bits->data()}, {}, owner,
                     static_cast<int64_t>(bits->size() + valid->size()));
}

ArrayPtr MakeLargeList(std::vector<int64_t> offsets, ArrayPtr values, std::vector<uint8_t> validity,
                       int64_t null_count) {
  auto o = Own(std::move(offsets));
  auto v = Own(std::move(validity));
  struct Owner { std::shared_ptr<std::vector<int64_t>> o; std::shared_ptr<std::vector<uint8_t>> v; };
  auto owner = std::make_shared<Owner>(Owner{o, v});
  int64_t n = static_cast<int64_t>(o->size()) - 1;
  int64_t bytes = static_cast<int64_t>(o->size() * 8 + v->size()) + values->nbytes();
  return Array::Make("+L", n, null_count, 0, {null_count ? v->data() : nullptr, o->data()}, {values}, owner,
                     bytes);
}

}  // namespace dflow
