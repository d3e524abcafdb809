// Gathering rows of an array into a new one (Arrow's "take"), for every layout the runtime holds:
// strings and binaries, fixed-width values, bools, lists, fixed-size lists and structs.
#pragma once
#include <cstdint>

#include "dflow/arrow/array.h"

namespace dflow {

// Rows rows[0..n) of `a` (each in [0, a.length())), as a new array with canonical 64-bit offsets
// for strings, binaries and lists. Throws std::invalid_argument for a layout it does not know.
ArrayPtr Take(const Array& a, const int64_t* rows, int64_t n);

}  // namespace dflow
