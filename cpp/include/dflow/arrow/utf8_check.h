// Checking that an Arrow string array from outside holds what its type promises, at memory speed:
// the check the runtime needs before its kernels read the values as UTF-8 without decoding
// defensively.
#pragma once
#include <optional>
#include <string_view>

#include "dflow/arrow/array.h"

namespace dflow {

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF:
// what Python accepts as str).
bool IsValidUtf8(std::string_view s);

// For a "u"/"U" array whose buffers are known to hold its first and last offsets (pyarrow's
// Array.validate() checks that): whether every offset is in order and every value (null slots
// included) is valid UTF-8. nullopt for any other layout.
std::optional<bool> StringsAreValidUtf8(const Array& a);

}  // namespace dflow
