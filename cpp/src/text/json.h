// Private: a compact JSON reader, enough for tokenizer.json (no dependency on a JSON library).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dflow::text::json {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value {
  enum class Type : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string str;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  bool is_null() const { return type == Type::kNull; }
  bool is_string() const { return type == Type::kString; }
  bool is_number() const { return type == Type::kNumber; }
  bool is_object() const { return type == Type::kObject; }
  bool is_array() const { return type == Type::kArray; }
  bool is_bool() const { return type == Type::kBool; }
  // Member lookup; nullptr when absent or when this is not an object.
  const Value* get(std::string_view key) const;
};

// Throws ParseError with a byte position on malformed input.
Value parse(std::string_view text);

}  // namespace dflow::text::json
