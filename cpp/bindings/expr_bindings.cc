// Bindings for the expression engine: compile a program (the planner's fused stage) and check a
// single call when an expression is built. Thin: argument conversion only.
#include <pybind11/stl.h>

#include "dflow/expr/api.h"
#include "registry.h"

namespace py = pybind11;
using dflow::expr::Scalar;

namespace dflow_py {
namespace {

// None, bool, int, float, str, or a sequence of numbers (an embedding literal).
Scalar ToScalar(py::handle v) {
  if (v.is_none()) return Scalar::Null();
  if (PyBool_Check(v.ptr())) return Scalar::Bool(v.cast<bool>());
  if (PyLong_Check(v.ptr())) return Scalar::Int(v.cast<int64_t>());
  if (PyFloat_Check(v.ptr())) return Scalar::Float(v.cast<double>());
  if (PyUnicode_Check(v.ptr())) return Scalar::String(v.cast<std::string>());
  if (py::isinstance<py::sequence>(v)) return Scalar::FloatList(v.cast<std::vector<float>>());
  throw py::type_error(std::string("expression literals are None, bool, int, float, str or a list of floats, got ") +
                       Py_TYPE(v.ptr())->tp_name);
}

std::vector<Scalar> ToScalars(const py::sequence& values) {
  std::vector<Scalar> out;
  for (py::handle v : values) out.push_back(ToScalar(v));
  return out;
}

}  // namespace

void init_expr(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dflow::expr::TypeMismatch& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  py::class_<dflow::expr::Program, std::shared_ptr<dflow::expr::Program>>(m, "ExpressionProgram")
      .def(py::init([](int32_t level, const std::vector<std::tuple<int32_t, int32_t, std::string>>& inputs,
                       const std::vector<std::pair<py::object, std::string>>& literals, const py::list& steps,
                       int threads) {
             dflow::expr::ProgramSpec spec;
             spec.level = level;
             spec.threads = threads;
             for (const auto& [node, lvl, type] : inputs) spec.inputs.push_back({node, lvl, type});
             for (const auto& [value, type] : literals) spec.literals.emplace_back(ToScalar(value), type);
             for (py::handle item : steps) {
               // (function, args, options, node, output, op, field)
               py::tuple t = item.cast<py::tuple>();
               dflow::expr::ProgramStep step;
               step.function = t[0].cast<std::string>();
               step.args = t[1].cast<std::vector<int32_t>>();
               step.options = ToScalars(t[2].cast<py::sequence>());
               step.node = t[3].cast<int32_t>();
               step.output = t[4].cast<bool>();
               step.op = t[5].cast<std::string>();
               step.field = t[6].cast<std::string>();
               spec.steps.push_back(std::move(step));
             }
             return std::make_shared<dflow::expr::Program>(std::move(spec));
           }),
           py::arg("level"), py::arg("inputs"), py::arg("literals"), py::arg("steps"), py::arg("threads") = 0);
  // Binds one kernel for these argument types and options (a regex is compiled, a JSON path parsed)
  // and returns its result type: how the DSL checks a call when the expression is built.
  m.def("check_kernel", [](const std::string& function, const std::vector<std::string>& arg_types,
                           const py::sequence& options) {
    std::vector<dflow::expr::VType> types;
    for (const auto& t : arg_types) types.push_back(dflow::expr::VType::Parse(t));
    return dflow::expr::KernelRegistry::Global().Bind(function, types, ToScalars(options)).out.ToString();
  }, py::arg("function"), py::arg("arg_types"), py::arg("options"));
}

}  // namespace dflow_py
