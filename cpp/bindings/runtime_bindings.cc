// Binds the streaming pipeline: a source pulling Python iterables, Python and native stages,
// and a Run handle that Python polls (GIL released while waiting, so Ctrl-C stays responsive).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <unistd.h>

#include <chrono>

#include "arrow_py.h"
#include "python_ops.h"
#include "registry.h"
#include "dflow/arrow/take.h"
#include "dflow/parallel.h"
#include "dflow/expr/expression_operator.h"
#include "text_py.h"
#include "dflow/runtime/pipeline.h"
#include "dflow/llm/template_renderer.h"
#include "dflow/text/text_operators.h"

namespace dflow_py {
using dflow::ArrayPtr;
using dflow::Batch;

namespace {

// Calls next_batch() -> None | (first_input, num_rows, {node: column}, row_ids, failures) with the
// GIL held; failures are (row, node, field, message) for inputs of the wrong type.
class PythonSource : public dflow::Source {
 public:
  explicit PythonSource(py::object next_batch) : next_batch_(std::move(next_batch)) {}
  ~PythonSource() override {
    // An abandoned source (see Pipeline::Cancel) may end after the interpreter began finalizing,
    // when taking the GIL would end this thread inside a destructor: leak the object instead.
    if (InterpreterFinalizing()) {
      next_batch_.release();
      return;
    }
    GilHold gil;
    next_batch_ = py::object();
  }
  void Hint(int64_t expected_row_bytes) override { expected_row_bytes_ = expected_row_bytes; }
  std::unique_ptr<Batch> Next() override {
    GilHold gil;
    py::object item = next_batch_(expected_row_bytes_);
    if (item.is_none()) return nullptr;
    py::tuple t = item.cast<py::tuple>();
    auto batch = std::make_unique<Batch>();
    batch->seq = seq_++;
    batch->first_input = t[0].cast<int64_t>();
    batch->levels.resize(1);
    dflow::Level& root = batch->levels[0];
    root.materialized = true;
    root.num_rows = t[1].cast<int64_t>();
    for (auto kv : t[2].cast<py::dict>()) root.columns[kv.first.cast<int32_t>()] = ImportArray(kv.second);
    if (t[3].is_none()) {
      batch->root_id_node = t[2].cast<py::dict>().begin()->first.cast<int32_t>();  // hashed lazily
    } else {
      ArrayPtr ids = ImportArray(t[3]);
      root.row_ids.resize(root.num_rows);
      for (int64_t i = 0; i < root.num_rows; ++i) root.row_ids[i] = static_cast<uint64_t>(ids->Int64(i));
    }
    // Inputs that are not of the root field's type fail here, by row, and the rest go on.
    for (auto item : t[4].cast<py::list>()) {
      py::tuple f = item.cast<py::tuple>();
      dflow::RowFailure failure;
      failure.row = f[0].cast<int64_t>();
      failure.node = f[1].cast<int32_t>();
      failure.op = "input";
      failure.field = f[2].cast<std::string>();
      failure.message = f[3].cast<std::string>();
      root.Fail(std::move(failure));
    }
    return batch;
  }

 private:
  py::object next_batch_;
  int64_t seq_ = 0;
  int64_t expected_row_bytes_ = 0;
};

// Stage options whose row counters read `input_level` and write `output_level`.
dflow::StageOptions Counted(dflow::StageOptions options, int32_t input_level, int32_t output_level) {
  options.input_level = input_level;
  options.output_level = output_level;
  return options;
}

class PyRun {
 public:
  PyRun(py::object next_batch, int64_t memory_budget, bool ordered, bool retries)
      : errors_(std::make_shared<ErrorTable>()), pid_(getpid()) {
    dflow::PipelineOptions options;
    options.memory_budget = memory_budget;
    options.ordered = ordered;
    options.retries = retries;
    pipeline_ = std::make_unique<dflow::Pipeline>(std::make_unique<PythonSource>(std::move(next_batch)), options);
  }
  ~PyRun() { Close(); }

  void AddPythonRow(PythonOpInfo info, py::object fn, std::string out_format, std::vector<py::object> convert,
                    py::object build, py::object root_objects, int32_t root_node, bool track_rows,
                    bool keep_results, int64_t keep_results_max_bytes) {
    int32_t level = info.level;
    pipeline_->AddStage(std::make_unique<PythonRowOperator>(std::move(info), std::move(fn), std::move(out_format),
                                                            std::move(convert), std::move(build),
                                                            std::move(root_objects), root_node, errors_,
                                                            track_rows, keep_results, keep_results_max_bytes),
                        Counted({1}, level, level));
  }
  // The stage applying failure policies (see PolicyOperator): `parents[l]` and `origin_nodes[l]`
  // describe level l (its parent, the columns its rows are made with).
  void AddPolicy(py::object resolver, std::vector<int32_t> parents, std::vector<std::vector<int32_t>> origin_nodes) {
    if (parents.size() != origin_nodes.size()) throw std::invalid_argument("add_policy: one parent per level");
    std::vector<dflow::LevelShape> shape;
    for (size_t l = 0; l < parents.size(); ++l) shape.push_back({parents[l], std::move(origin_nodes[l])});
    pipeline_->AddStage(std::make_unique<PolicyOperator>(std::move(resolver), std::move(shape), errors_),
                        dflow::StageOptions{1});
  }
  void AddPythonBatch(PythonOpInfo info, py::object runner, int concurrency, bool expanding) {
    dflow::StageOptions options = Counted({concurrency}, info.level, info.level);
    options.expanding = expanding;
    pipeline_->AddStage(std::make_unique<PythonBatchOperator>(std::move(info), std::move(runner), errors_),
                        options);
  }
  void AddExplode(int32_t parent, int32_t level, int32_t source_node, int32_t element_node, bool one_to_one) {
    pipeline_->AddStage(std::make_unique<dflow::ExplodeOperator>(parent, level, source_node, element_node, one_to_one),
                        Counted({1}, parent, level));
  }
  void AddChunkText(int32_t parent, int32_t level, int32_t source_node, int32_t chunk_node, int32_t index_node,
                    int32_t start_node, int32_t end_node, int64_t max_chars, int64_t overlap, int64_t max_tokens,
                    int64_t overlap_tokens, const PyTokenizer* tokenizer) {
    dflow::text::ChunkTextNodes nodes{chunk_node, index_node, start_node, end_node};
    pipeline_->AddStage(std::make_unique<dflow::text::ChunkTextOperator>(parent, level, source_node, nodes, max_chars,
                                                                         overlap, max_tokens, overlap_tokens,
                                                                         tokenizer ? tokenizer->tok : nullptr),
                        Counted({1}, parent, level));
  }
  void AddTokenize(int32_t level, int32_t source_node, int32_t source_level, int32_t out_node,
                   const PyTokenizer& tokenizer, bool add_special_tokens) {
    pipeline_->AddStage(std::make_unique<dflow::text::TokenizeOperator>(level, source_node, source_level, out_node,
                                                                        tokenizer.tok, add_special_tokens),
                        Counted({1}, level, level));
  }
  void AddRenderTemplate(int32_t level, int32_t out_node, std::vector<std::string> literals,
                         std::vector<std::pair<int32_t, int32_t>> inputs) {
    std::vector<dflow::llm::TemplateInput> ins;
    for (auto& [node, lvl] : inputs) ins.push_back({node, lvl});
    pipeline_->AddStage(std::make_unique<dflow::llm::TemplateRenderer>(level, out_node, std::move(literals),
                                                                       std::move(ins)),
                        Counted({1}, level, level));
  }
  // Programs are stateless: as many batches run at once as there are cores (each also splits its
  // rows over the pool), so a core waiting on one batch's last chunk can start the next batch.
  // `node`: the IR node the stage is reported as (its program's first step).
  void AddExpressions(std::shared_ptr<dflow::expr::Program> program, std::string name, int32_t node) {
    const int32_t level = program->spec().level;
    dflow::StageOptions options = Counted({dflow::default_threads()}, level, level);
    pipeline_->AddStage(std::make_unique<dflow::expr::ExpressionOperator>(std::move(program),
                                                                          std::move(name) + "#" + std::to_string(node)),
                        options);
  }
  void Start() { pipeline_->Start(); }

  // Returns the next batch, or None at the end. Waits with the GIL released, checking for signals.
  py::object Next() {
    if (!pipeline_) throw std::runtime_error("run is closed");
    if (getpid() != pid_)
      throw std::runtime_error("this run was started by another process (before os.fork()); its threads do not "
                               "exist here: start a new run in this process");
    while (true) {
      std::unique_ptr<Batch> out;
      dflow::Pipeline::PollStatus status;
      {
        py::gil_scoped_release release;
        status = pipeline_->Next(std::chrono::milliseconds(50), &out);
      }
      if (status == dflow::Pipeline::PollStatus::kBatch) return py::cast(PyBatch{std::shared_ptr<Batch>(std::move(out))});
      if (status == dflow::Pipeline::PollStatus::kEnd) return py::none();
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }
  void Release(const PyBatch& b) { pipeline_->Release(b.batch->bytes); }
  py::object TakeError(int64_t handle) { return errors_->Take(handle); }

  // Cancels the pipeline (threads joined with the GIL released), then drops Python state.
  void Close() {
    if (!pipeline_) return;
    if (getpid() != pid_) {
      // A forked child inherited this run without its threads: there is nothing to join, and
      // the parent's objects are left alone (leaked) rather than torn down half-copied.
      pipeline_.release();
      return;
    }
    {
      py::gil_scoped_release release;
      pipeline_->Cancel();
    }
    final_stats_ = std::make_unique<dflow::PipelineStats>(pipeline_->stats());
    pipeline_.reset();
    errors_->Clear();
  }
  // Counters of the run so far (see dflow::PipelineStats), cheap enough to poll a few times a
  // second while the run goes on; after Close, the counters it ended with.
  py::dict Stats() const {
    if (!pipeline_) return final_stats_ ? StatsDict(*final_stats_) : py::dict();
    return StatsDict(pipeline_->stats());
  }

 private:
  static py::dict StatsDict(const dflow::PipelineStats& s) {
    py::dict d;
    d["batches"] = s.batches;
    d["retry_batches"] = s.retry_batches;
    d["retries_waiting"] = s.retries_waiting;
    d["peak_budget_bytes"] = s.peak_budget_bytes;
    d["budget_bytes"] = s.budget_bytes;
    d["elapsed_ns"] = s.elapsed_ns;
    py::dict source;
    source["batches"] = s.source.batches;
    source["rows"] = s.source.rows;
    source["busy_ns"] = s.source.busy_ns;
    source["budget_wait_ns"] = s.source.budget_wait_ns;
    d["source"] = source;
    py::list stages;
    for (const auto& st : s.stages) {
      py::dict x;
      x["batches"] = st.batches;
      x["rows_in"] = st.rows_in;
      x["rows_out"] = st.rows_out;
      x["rows_failed"] = st.rows_failed;
      x["busy_ns"] = st.busy_ns;
      x["first_start_ns"] = st.first_start_ns;
      x["last_end_ns"] = st.last_end_ns;
      stages.append(x);
    }
    d["stages"] = stages;
    return d;
  }

  std::unique_ptr<dflow::Pipeline> pipeline_;
  std::unique_ptr<dflow::PipelineStats> final_stats_;
  std::shared_ptr<ErrorTable> errors_;
  pid_t pid_;  // the process that started the run
};

py::object IndexColumn(const std::vector<int64_t>& v) {
  dflow::PrimitiveBuilder<int64_t> b("l", static_cast<int64_t>(v.size()));
  for (int64_t x : v) b.Append(x);
  return ToPyArrow(b.Finish());
}

}  // namespace

void init_runtime(py::module_& m) {
  // How many batches without one successful row end the footprint probe; the Python source uses
  // the same number to decide when to stop keeping batches of an expanding plan small.
  m.attr("MAX_FOOTPRINT_PROBES") = dflow::FootprintEstimate::kMaxProbes;
  m.def("wait_for_left_behind", [](double timeout_s) {
        py::gil_scoped_release release;
        return dflow::Pipeline::WaitForLeftBehind(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
      }, py::arg("timeout_s"),
        "Waits until the threads runs left behind when cancelled (busy in user code) have finished, at most "
        "timeout_s; returns how many still run.");
  py::class_<ArgSpec>(m, "ArgSpec")
      .def(py::init([](int32_t node, int32_t level) { return ArgSpec{node, level}; }), py::arg("node"), py::arg("level"));
  m.attr("INPUT_INDEX_ARG") = kInputIndexArg;
  m.attr("BATCH_TAG_ARG") = kBatchTagArg;
  m.def("current_row", []() -> py::object {
        const CurrentRow& row = CurrentRowOfThread();
        if (row.input < 0) return py::none();
        return py::make_tuple(row.row_id, row.input);
      },
        "(row id, input index) of the row a row-wise function with a timeout is being called for on this "
        "thread, or None.");
  m.attr("ROW_ID_ARG") = kRowIdArg;
  py::class_<PythonOpInfo>(m, "OpInfo")
      .def(py::init([](int32_t node, int32_t level, std::vector<ArgSpec> args, std::string op, std::string field,
                       std::string flow) { return PythonOpInfo{node, level, std::move(args), op, field, flow}; }),
           py::arg("node"), py::arg("level"), py::arg("args"), py::arg("op"), py::arg("field"), py::arg("flow"))
      .def_readonly("node", &PythonOpInfo::node)
      .def_readonly("level", &PythonOpInfo::level)
      .def_readonly("op", &PythonOpInfo::op)
      .def_readonly("field", &PythonOpInfo::field)
      .def_readonly("flow", &PythonOpInfo::flow);

  py::class_<PyBatch>(m, "Batch")
      .def_property_readonly("first_input", [](const PyBatch& b) { return b.batch->first_input; })
      .def_property_readonly("tag", [](const PyBatch& b) { return b.batch->tag; })
      .def_property_readonly("num_levels", [](const PyBatch& b) { return b.batch->levels.size(); })
      .def("is_context", [](const PyBatch& b, int32_t l) { return b.level(l).context; }, py::arg("level"))
      .def("child_index", [](const PyBatch& b, int32_t l) { return IndexColumn(b.level(l).child_index); },
           py::arg("level"))
      .def_property_readonly("nbytes", [](const PyBatch& b) { return b.batch->bytes; })
      .def("num_rows", [](const PyBatch& b, int32_t l) { return b.level(l).num_rows; })
      .def("column", [](const PyBatch& b, int32_t l, int32_t node) {
        const auto& cols = b.level(l).columns;
        auto it = cols.find(node);
        if (it == cols.end()) throw py::key_error("node " + std::to_string(node) + " not computed at level " + std::to_string(l));
        return ToPyArrow(it->second);
      })
      // The objects a row function returned for a column (add_python_row(keep_results=True)), aligned
      // with its rows; None when the column has none (see Level::host_values).
      .def("result_objects", [](const PyBatch& b, int32_t l, int32_t node) {
        b.level(l);
        return BatchResultObjects(*b.batch, l, node);
      }, py::arg("level"), py::arg("node"))
      // Rows `rows` of a column as a new array, gathered natively with the GIL released (how the
      // results leave out failed and filtered rows).
      .def("take", [](const PyBatch& b, int32_t l, int32_t node, py::array_t<int64_t, py::array::c_style> rows) {
        const auto& cols = b.level(l).columns;
        auto it = cols.find(node);
        if (it == cols.end()) throw py::key_error("node " + std::to_string(node) + " not computed at level " + std::to_string(l));
        const dflow::Array& col = *it->second;
        const int64_t n = static_cast<int64_t>(rows.size());
        const int64_t* r = rows.data();
        for (int64_t i = 0; i < n; ++i)
          if (r[i] < 0 || r[i] >= col.length()) throw py::index_error("take: row " + std::to_string(r[i]) + " out of range");
        ArrayPtr out;
        {
          py::gil_scoped_release release;
          out = dflow::Take(col, r, n);
        }
        return ToPyArrow(out);
      }, py::arg("level"), py::arg("node"), py::arg("rows"))
      .def("row_ids", [](const PyBatch& b, int32_t l) {
        b.level(l);
        const auto& ids = b.batch->RowIds(l);
        dflow::PrimitiveBuilder<uint64_t> builder("L", static_cast<int64_t>(ids.size()));
        for (uint64_t x : ids) builder.Append(x);
        return ToPyArrow(builder.Finish());
      })
      // The sum (mod 2**64) of the row ids of rows [begin, end) of a level: a checkpoint's check
      // that a resumed run reads the same inputs, without handing a million ids to Python.
      .def("row_id_sum", [](const PyBatch& b, int32_t l, int64_t begin, int64_t end) {
        b.level(l);
        const auto& ids = b.batch->RowIds(l);
        if (begin < 0 || end > static_cast<int64_t>(ids.size()) || begin > end) throw py::index_error("row_id_sum: bad range");
        uint64_t sum = 0;
        for (int64_t i = begin; i < end; ++i) sum += ids[i];
        return sum;
      }, py::arg("level"), py::arg("begin"), py::arg("end"))
      .def("ancestor_index", [](const PyBatch& b, int32_t l, int32_t ancestor) {
        return IndexColumn(b.batch->AncestorIndex(l, ancestor));
      })
      .def("filtered", [](const PyBatch& b, int32_t l) { return b.level(l).filtered; })
      .def("failed_mask", [](const PyBatch& b, int32_t l) {
        const auto& f = b.level(l).failed;
        return py::bytes(reinterpret_cast<const char*>(f.data()), f.size());
      })
      .def("failures", [](const PyBatch& b, int32_t l) {
        py::list out;
        for (const auto& f : b.level(l).failures)
          out.append(py::make_tuple(f.row, f.node, f.op, f.field, f.message, f.handle, f.dead_lettered));
        return out;
      });

  py::class_<PyRun>(m, "Run")
      .def(py::init<py::object, int64_t, bool, bool>(), py::arg("next_batch"), py::arg("memory_budget"),
           py::arg("ordered"), py::arg("retries") = false)
      .def("add_python_row", &PyRun::AddPythonRow, py::arg("info"), py::arg("fn"), py::arg("out_format"),
           py::arg("convert"), py::arg("build"), py::arg("root_objects") = py::none(), py::arg("root_node") = -1,
           py::arg("track_rows") = false, py::arg("keep_results") = false, py::arg("keep_results_max_bytes") = -1)
      .def("add_policy", &PyRun::AddPolicy, py::arg("resolver"), py::arg("parents"), py::arg("origin_nodes"))
      .def("add_python_batch", &PyRun::AddPythonBatch, py::arg("info"), py::arg("runner"), py::arg("concurrency") = 1,
           py::arg("expanding") = false)
      .def("add_explode", &PyRun::AddExplode, py::arg("parent"), py::arg("level"), py::arg("source_node"),
           py::arg("element_node"), py::arg("one_to_one"))
      .def("add_chunk_text", &PyRun::AddChunkText, py::arg("parent"), py::arg("level"), py::arg("source_node"),
           py::arg("chunk_node"), py::arg("index_node"), py::arg("start_node"), py::arg("end_node"),
           py::arg("max_chars"), py::arg("overlap"), py::arg("max_tokens"), py::arg("overlap_tokens"),
           py::arg("tokenizer").none(true))
      .def("add_tokenize", &PyRun::AddTokenize, py::arg("level"), py::arg("source_node"), py::arg("source_level"),
           py::arg("out_node"), py::arg("tokenizer"), py::arg("add_special_tokens"))
      .def("add_render_template", &PyRun::AddRenderTemplate, py::arg("level"), py::arg("out_node"),
           py::arg("literals"), py::arg("inputs"))
      .def("add_expressions", &PyRun::AddExpressions, py::arg("program"), py::arg("name"), py::arg("node"))
      .def("start", &PyRun::Start)
      .def("next", &PyRun::Next)
      .def("release", &PyRun::Release)
      .def("take_error", &PyRun::TakeError)
      .def("close", &PyRun::Close)
      .def("stats", &PyRun::Stats);
}

}  // namespace dflow_py
