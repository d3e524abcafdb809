#include "dflow/arrow/take.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace dflow {
namespace {

int64_t ByteWidth(const std::string& f) {
  if (f.size() != 1) return 0;
  switch (f[0]) {
    case 'c': case 'C': return 1;
    case 's': case 'S': case 'e': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': case 'g': return 8;
    default: return 0;
  }
}

// Validity of the gathered rows; returns the null count (0: no bitmap needed).
int64_t TakeValidity(const Array& a, const int64_t* rows, int64_t n, std::vector<uint8_t>* bits) {
  if (a.null_count() == 0) return 0;
  bits->assign(static_cast<size_t>((n + 7) / 8), 0);
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (a.IsValid(rows[i])) (*bits)[i >> 3] |= static_cast<uint8_t>(1u << (i & 7)); else ++nulls;
  }
  return nulls;
}

// Element ranges of list-like row `r` in the child's logical positions.
std::pair<int64_t, int64_t> ElementRange(const Array& a, int64_t r) {
  const std::string& f = a.format();
  if (f == "+L") return a.ListRange(r);
  if (f == "+l") {
    const int32_t* o = static_cast<const int32_t*>(a.buffer(1)) + a.offset() + r;
    return {o[0], o[1]};
  }
  const int64_t k = std::stoll(f.substr(3));  // "+w:N"
  return {(a.offset() + r) * k, (a.offset() + r + 1) * k};
}

template <typename T>
void GatherWidth(const uint8_t* src, const int64_t* rows, int64_t n, uint8_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + rows[i] * sizeof(T), sizeof(T));
    std::memcpy(dst + i * sizeof(T), &v, sizeof(T));
  }
}

template <typename Owned>
std::shared_ptr<void> Keep(Owned owned) { return std::make_shared<Owned>(std::move(owned)); }

}  // namespace

ArrayPtr Take(const Array& a, const int64_t* rows, int64_t n) {
  const std::string& f = a.format();
  std::vector<uint8_t> bits;
  const int64_t nulls = TakeValidity(a, rows, n, &bits);
  auto validity = Own(std::move(bits));
  const void* valid_ptr = nulls ? validity->data() : nullptr;
  if (a.is_string_like()) {
    auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n) + 1, 0);
    int64_t total = 0;
    // Whether each row taken starts where the one before ended (the rows left out are empty, as
    // the null rows of a filtered column are): then the bytes are already in place, and only
    // the offsets are new.
    bool in_place = n > 0 && a.View(rows[0]).data() != nullptr;
    const char* next = in_place ? a.View(rows[0]).data() : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const std::string_view v = a.View(rows[i]);
      in_place = in_place && v.data() == next;
      next = v.data() + v.size();
      total += static_cast<int64_t>(v.size());
      (*offsets)[i + 1] = total;
    }
    const bool utf8 = f == "U" || f == "u";
    if (in_place) {
      struct Shared { std::shared_ptr<std::vector<int64_t>> o; std::shared_ptr<std::vector<uint8_t>> v; ArrayPtr source; };
      auto owner = std::make_shared<Shared>(Shared{offsets, validity, a.shared_from_this()});
      return Array::Make(utf8 ? "U" : "Z", n, nulls, 0, {valid_ptr, offsets->data(), a.View(rows[0]).data()}, {}, owner,
                         static_cast<int64_t>(offsets->size() * 8 + validity->size()) + total);
    }
    // Every byte is copied in below: no zero-fill first.
    std::shared_ptr<char> data(new char[static_cast<size_t>(total) + 1], std::default_delete<char[]>());
    for (int64_t i = 0; i < n; ++i) {
      std::string_view v = a.View(rows[i]);
      if (!v.empty()) std::memcpy(data.get() + (*offsets)[i], v.data(), v.size());
    }
    struct Owner { std::shared_ptr<std::vector<int64_t>> o; std::shared_ptr<char> d; std::shared_ptr<std::vector<uint8_t>> v; };
    auto owner = std::make_shared<Owner>(Owner{offsets, data, validity});
    return Array::Make(utf8 ? "U" : "Z", n, nulls, 0, {valid_ptr, offsets->data(), data.get()}, {}, owner,
                       static_cast<int64_t>(offsets->size() * 8 + validity->size()) + total);
  }
  if (const int64_t w = ByteWidth(f)) {
    auto values = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n * w) + 1);
    const auto* src = static_cast<const uint8_t*>(a.buffer(1)) + a.offset() * w;
    // Typed copies for the common widths (a memcpy call per value costs more than the value).
    switch (w) {
      case 8: GatherWidth<uint64_t>(src, rows, n, values->data()); break;
      case 4: GatherWidth<uint32_t>(src, rows, n, values->data()); break;
      default:
        for (int64_t i = 0; i < n; ++i) std::memcpy(values->data() + i * w, src + rows[i] * w, static_cast<size_t>(w));
    }
    struct Owner { std::shared_ptr<std::vector<uint8_t>> a, b; };
    return Array::Make(f, n, nulls, 0, {valid_ptr, values->data()}, {}, std::make_shared<Owner>(Owner{values, validity}),
                       static_cast<int64_t>(values->size() + validity->size()));
  }
  if (f == "b") {
    auto values = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>((n + 7) / 8) + 1, 0);
    for (int64_t i = 0; i < n; ++i)
      if (a.Bool(rows[i])) (*values)[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
    struct Owner { std::shared_ptr<std::vector<uint8_t>> a, b; };
    return Array::Make("b", n, nulls, 0, {valid_ptr, values->data()}, {}, std::make_shared<Owner>(Owner{values, validity}),
                       static_cast<int64_t>(values->size() + validity->size()));
  }
  if (f == "+L" || f == "+l" || f.rfind("+w:", 0) == 0) {
    std::vector<int64_t> elements;
    std::vector<int64_t> offsets(static_cast<size_t>(n) + 1, 0);
    for (int64_t i = 0; i < n; ++i) {
      auto [b, e] = ElementRange(a, rows[i]);
      for (int64_t k = b; k < e; ++k) elements.push_back(k);
      offsets[i + 1] = static_cast<int64_t>(elements.size());
    }
    const ArrayPtr& source = a.children().at(0);
    ArrayPtr child = Take(*source, elements.data(), static_cast<int64_t>(elements.size()))->Renamed(source->name());
    if (f[1] == 'w') {
      return Array::Make(f, n, nulls, 0, {valid_ptr}, {child}, validity,
                         static_cast<int64_t>(validity->size()) + child->nbytes());
    }
    return MakeLargeList(std::move(offsets), child, std::move(*validity), nulls);
  }
  if (f == "+s") {
    std::vector<ArrayPtr> children;
    int64_t bytes = static_cast<int64_t>(validity->size());
    for (const ArrayPtr& c : a.children()) {
      // Struct children share the parent's offset.
      std::vector<int64_t> child_rows(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) child_rows[i] = rows[i] + a.offset();
      children.push_back(Take(*c, child_rows.data(), n)->Renamed(c->name()));
      bytes += children.back()->nbytes();
    }
    return Array::Make("+s", n, nulls, 0, {valid_ptr}, std::move(children), validity, bytes);
  }
  throw std::invalid_argument("take: Arrow format '" + f + "' is not supported");
}

}  // namespace dflow
