// Moving arrays between pyarrow and the core through the Arrow PyCapsule protocol.
#pragma once
#include <pybind11/pybind11.h>

#include "dflow/arrow/array.h"

namespace dflow_py {
namespace py = pybind11;

// A core array as a Python object implementing __arrow_c_array__ (so pa.array(col) is zero-copy).
struct Column {
  dflow::ArrayPtr array;
};

// Imports any object implementing __arrow_c_array__ (pyarrow arrays, Column, ...). Needs the GIL.
dflow::ArrayPtr ImportArray(py::handle obj);
// Returns a pyarrow.Array sharing the core array's memory. Needs the GIL.
py::object ToPyArrow(const dflow::ArrayPtr& array);

// Fast element conversions used by the Python operators (GIL held).
// Returns a new reference, or nullptr with a Python error set.
PyObject* ValueToPy(const dflow::Array& a, int64_t i);
bool IsFastFormat(const std::string& format);

// A str's UTF-8 bytes (valid while the str lives), or nullptr with a Python error set (a lone
// surrogate). An ASCII str is its own UTF-8: read in place, without a call into the interpreter.
inline const char* Utf8Of(PyObject* str, Py_ssize_t* len) {
  if (PyUnicode_IS_COMPACT_ASCII(str)) {
    *len = PyUnicode_GET_LENGTH(str);
    return static_cast<const char*>(PyUnicode_DATA(str));
  }
  return PyUnicode_AsUTF8AndSize(str, len);
}

}  // namespace dflow_py
