// Comparison tables: per-run figures, groups, mean ± std, baseline deltas, published anchors.
// Spec: shared/DESIGN.md "Configs and the store", spec/PAPER_RESULTS.md; rendering: suite/table.h.
#include "suite/report.h"

#include "baselines/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <utility>

#include "suite/config.h"

namespace moebench::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kNone = "-";         // a cell without a value (term, md)
constexpr const char* kNotDoneMark = "†";  // a group that includes runs that are not 'done'
constexpr const char* kCaveatMark = "‡";   // a method whose file states a caveat (Self-Routing)

// --- number formatting --------------------------------------------------------------------------

std::string fixed(double x, int digits) {
  if (std::isnan(x)) return kNone;
  char format[16];
  std::snprintf(format, sizeof(format), "%%.%df", digits);
  return format_printf(format, x);
}

std::string wall_text(double s) {
  if (std::isnan(s)) return kNone;
  if (s < 120) return format_printf("%.1f s", s);
  if (s < 7200) return format_printf("%.1f min", s / 60);
  return format_printf("%.2f h", s / 3600);
}

std::string tokens_per_s_text(double x) {
  if (std::isnan(x)) return kNone;
  return format_printf(x >= 100 ? "%.0f" : "%.1f", x);
}

// λ spans 1e-10 (RF's λ₀) to O(1): fixed decimals would show most values as 0.
std::string lambda_text(double x) {
  if (std::isnan(x)) return kNone;
  if (x == 0) return "0";
  return format_printf("%.2e", x);
}

Cell number_cell(const std::string& text, double raw) { return {text, {shortest_exact(raw)}}; }

// --- statistics -----------------------------------------------------------------------------

struct Stats {
  int n = 0;
  double mean = kNaN;
  double std = kNaN;  // sample std (n - 1); NaN for fewer than two values
};

// NaN values (a run without the figure) are left out.
Stats stats_of(const std::vector<double>& values) {
  Stats s;
  double sum = 0;
  for (double v : values) {
    if (!std::isnan(v)) sum += v, ++s.n;
  }
  if (s.n == 0) return s;
  s.mean = sum / s.n;
  if (s.n > 1) {
    double squares = 0;
    for (double v : values) {
      if (!std::isnan(v)) squares += (v - s.mean) * (v - s.mean);
    }
    s.std = std::sqrt(squares / (s.n - 1));
  }
  return s;
}

double mean_of(const std::vector<double>& values) { return stats_of(values).mean; }

// "0.250 ± 0.014" (just the mean for one run); csv: the mean and the std as two fields.
Cell stats_cell(const Stats& st, int digits) {
  std::string text = fixed(st.mean, digits);
  if (!std::isnan(st.std)) text += " ± " + fixed(st.std, digits);
  return {text, {shortest_exact(st.mean), shortest_exact(st.std)}};
}

Cell mean_std_cell(const std::vector<double>& values, int digits) {
  return stats_cell(stats_of(values), digits);
}

// --- reading the store ------------------------------------------------------------------------

// The last evaluation of one val metric at the trained threshold: (value, step).
std::pair<double, int64_t> last_val(Store& store, const std::string& run_key,
                                    const std::string& metric) {
  const std::optional<EvalRow> row =
      store.last_eval(run_key, {"val", metric, /*trained_theta_only=*/true});
  if (!row) return {kNaN, -1};
  return {row->value, row->step};
}

void fill_steps(Store& store, RunSummary& s) {
  const std::vector<StepRow> steps = store.steps(s.run.run_key);
  const size_t n = steps.size();
  // The last third: early steps include warm-up, compilation and allocator growth, which
  // would understate the steady-state speed.
  const size_t tail = std::max<size_t>(1, (n + 2) / 3);
  std::vector<double> speeds;
  for (size_t i = n > tail ? n - tail : 0; i < n; ++i) speeds.push_back(steps[i].tokens_per_s);
  s.tokens_per_s = mean_of(speeds);
  // The last logged value; a NULL there (e.g. a NaN written on the diverging step) falls back to
  // the one before.
  s.density = s.lambda = kNaN;
  for (size_t i = n; i-- > 0 && std::isnan(s.density);) s.density = steps[i].density;
  for (size_t i = n; i-- > 0 && std::isnan(s.lambda);) s.lambda = steps[i].lambda;
}

// One balance figure of each metric at the run's last step with layer summaries.
std::map<std::string, double> last_balance(Store& store, const std::string& run_key) {
  std::map<std::string, double> overall;
  std::map<std::string, std::vector<double>> per_layer;
  for (const LayerStatRow& row : store.last_layer_summaries(run_key)) {
    if (row.layer < 0) {
      overall[row.metric] = row.value;
    } else {
      per_layer[row.metric].push_back(row.value);
    }
  }
  // The trainer writes layer -1 as the average over layers; older or partial runs may only have
  // per-layer rows, whose mean is the same figure.
  auto pick = [&](const std::string& metric) {
    if (auto it = overall.find(metric); it != overall.end()) return it->second;
    if (auto it = per_layer.find(metric); it != per_layer.end()) return mean_of(it->second);
    return kNaN;
  };
  std::map<std::string, double> out;
  for (const auto& [metric, values] : per_layer) out[metric] = pick(metric);
  for (const auto& [metric, value] : overall) out[metric] = pick(metric);
  return out;
}

double balance_value(const std::map<std::string, double>& balance, const std::string& metric) {
  const auto it = balance.find(metric);
  return it == balance.end() ? kNaN : it->second;
}

void fill_balance(Store& store, RunSummary& s) {
  const auto balance = last_balance(store, s.run.run_key);
  s.cv = balance_value(balance, "cv");
  s.maxvio = balance_value(balance, "maxvio");
  s.entropy = balance_value(balance, "entropy");
}

// --- zero-shot columns --------------------------------------------------------------------------

// A task column: the task and the metric it leads with ("imdb", "acc").
using TaskMetric = std::pair<std::string, std::string>;

struct TaskFigure {
  double value = kNaN;
  double chance = kNaN;
};

// Figures of one run beyond RunSummary: dead experts and each task's primary accuracy.
struct RunExtras {
  double dead = kNaN;
  std::map<TaskMetric, TaskFigure> tasks;
};

// The evaluator marks a task's primary metric with a "primary_<metric>" row beside it (see
// suite/evaluator.h); rows without a marker count "acc" as primary.
constexpr const char* kPrimaryPrefix = "primary_";

RunExtras read_extras(Store& store, const std::string& run_key) {
  RunExtras x;
  x.dead = balance_value(last_balance(store, run_key), "dead");
  std::vector<EvalRow> rows;
  for (EvalRow& row : store.evals(run_key, {"", "", /*trained_theta_only=*/true})) {
    // val has its own columns; routing rows are diagnostics, not tasks.
    if (row.task != "val" && row.task != "routing") rows.push_back(std::move(row));
  }
  // Per task, the rows of its last evaluated step (rows come by step).
  std::map<std::string, int64_t> last_step;
  for (const EvalRow& row : rows) last_step[row.task] = row.step;
  std::map<std::string, std::map<std::string, TaskFigure>> at_last;
  for (const EvalRow& row : rows) {
    if (row.step == last_step[row.task]) at_last[row.task][row.metric] = {row.value, row.chance};
  }
  const std::string prefix = kPrimaryPrefix;
  for (const auto& [task, metrics] : at_last) {
    std::string primary = "acc";
    for (const auto& [metric, figure] : metrics) {
      if (metric.rfind(prefix, 0) == 0) primary = metric.substr(prefix.size());
    }
    const auto it = metrics.find(primary);
    if (it != metrics.end()) x.tasks[{task, primary}] = it->second;
  }
  return x;
}

// Task columns in the evaluator's table order, then any other task by name.
int task_rank(const std::string& task) {
  static const std::vector<std::string> order = {"imdb", "cloze", "next_sentence", "wordnet"};
  const auto it = std::find(order.begin(), order.end(), task);
  return static_cast<int>(it - order.begin());
}

// --- grouping -----------------------------------------------------------------------------------

const std::vector<std::string>& run_columns() {
  static const std::vector<std::string> columns = {"method", "size",         "seed",   "status",
                                                   "device", "backend",      "commit", "git_commit",
                                                   "dirty",  "torch_version"};
  return columns;
}

bool is_run_column(const std::string& c) {
  const auto& cols = run_columns();
  return std::find(cols.begin(), cols.end(), c) != cols.end();
}

bool is_config_key(const std::string& c) {
  static const std::vector<std::string> keys = config_keys();
  return std::find(keys.begin(), keys.end(), c) != keys.end();
}

void check_group_columns(const std::vector<std::string>& columns) {
  std::set<std::string> seen;
  for (const auto& c : columns) {
    if (!is_run_column(c) && !is_config_key(c)) {
      std::string valid;
      for (const auto& r : run_columns()) valid += (valid.empty() ? "" : ", ") + r;
      throw ReportError(fmt::format(
          "unknown --group-by column '{}': use {} or a config key such as moe.theta", c, valid));
    }
    if (!seen.insert(c).second) {
      throw ReportError("--group-by names column '" + c + "' twice");
    }
  }
}

// A run's value in one group column: the runs row, or the stored config for "section.key".
class GroupValues {
 public:
  std::string get(const RunRow& run, const std::string& column) {
    if (column == "method") return run.method;
    if (column == "size") return run.size;
    if (column == "seed") return std::to_string(run.seed);
    if (column == "status") return to_string(run.status);
    if (column == "device") return run.device;
    if (column == "backend") return run.backend;
    if (column == "commit" || column == "git_commit") return run.commit;
    if (column == "dirty") return run.dirty ? "true" : "false";
    if (column == "torch_version") return run.torch_version;
    return config_value(run, column);
  }

 private:
  std::string config_value(const RunRow& run, const std::string& key) {
    auto it = parsed_.find(run.run_key);
    if (it == parsed_.end()) {
      // A config that does not parse (not written by our trainer) groups as "": the table
      // still shows the run rather than failing on one bad row.
      it = parsed_
               .emplace(run.run_key,
                        nlohmann::json::parse(run.config_json, nullptr, /*allow_exceptions=*/false))
               .first;
    }
    const nlohmann::json* node = &it->second;
    size_t start = 0;
    while (start <= key.size()) {
      const size_t dot = std::min(key.find('.', start), key.size());
      const std::string part = key.substr(start, dot - start);
      if (!node->is_object() || !node->contains(part)) return "";
      node = &(*node)[part];
      start = dot + 1;
    }
    return node->is_string() ? node->get<std::string>() : node->dump();
  }

  std::map<std::string, nlohmann::json> parsed_;
};

int size_rank(const std::string& size) {
  static const std::vector<std::string> order = {"tiny", "micro", "S", "M", "L"};
  const auto it = std::find(order.begin(), order.end(), size);
  return static_cast<int>(it - order.begin());  // unknown sizes after the named ones
}

bool parse_number(const std::string& s, double& x) {
  if (s.empty()) return false;
  char* end = nullptr;
  x = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// Row order: the baseline method first, sizes in scale order, numbers numerically, "" last.
struct KeyLess {
  std::vector<std::string> columns;
  std::string baseline;

  int compare_one(const std::string& column, const std::string& a, const std::string& b) const {
    if (a == b) return 0;
    if (a.empty() || b.empty()) return a.empty() ? 1 : -1;
    if (column == "method" && (a == baseline || b == baseline)) return a == baseline ? -1 : 1;
    if (column == "size" && size_rank(a) != size_rank(b)) {
      return size_rank(a) < size_rank(b) ? -1 : 1;
    }
    // Numbers before text (keeps the order transitive when a column mixes both).
    double x = 0, y = 0;
    const bool a_number = parse_number(a, x), b_number = parse_number(b, y);
    if (a_number != b_number) return a_number ? -1 : 1;
    if (a_number && x != y) return x < y ? -1 : 1;
    return a < b ? -1 : 1;
  }
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (const int c = compare_one(columns[i], a[i], b[i]); c != 0) return c < 0;
    }
    return false;
  }
};

std::string describe_key(const std::vector<std::string>& columns,
                         const std::vector<std::string>& key, size_t skip) {
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i == skip) continue;
    out += (out.empty() ? "" : " ") + columns[i] + "=" + key[i];
  }
  return out.empty() ? "(all runs)" : out;
}

// "2 done, 1 diverged" in lifecycle order.
std::string status_summary(const std::vector<const RunSummary*>& runs) {
  static const RunStatus order[] = {RunStatus::kDone, RunStatus::kRunning, RunStatus::kInterrupted,
                                    RunStatus::kDiverged, RunStatus::kFailed};
  std::string out;
  for (RunStatus status : order) {
    const auto n = std::count_if(runs.begin(), runs.end(),
                                 [&](const RunSummary* r) { return r->run.status == status; });
    if (n > 0) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + to_string(status);
  }
  return out;
}

struct Group {
  std::vector<std::string> key;
  std::vector<const RunSummary*> runs;  // empty for a published row
  double published_ppl = kNaN;
  Stats loss;
};

// --- comparison_table, step by step -------------------------------------------------------------
// collect runs -> group by the key columns -> aggregate (mean ± std) -> delta vs baseline ->
// published anchors -> rows -> footnotes.

[[noreturn]] void throw_no_runs(const Store& store) {
  throw ReportError("no runs in '" + store.path() + "': create some with `" +
                    std::string(kCreateRunsHint) + "`");
}

// The group-by columns; method and size are where the deltas and the published rows find them
// (names.size() = absent).
struct KeyColumns {
  std::vector<std::string> names;
  size_t method = 0;
  size_t size = 0;
  bool has_method() const { return method < names.size(); }
};

KeyColumns key_columns(const TableOptions& options) {
  check_group_columns(options.group_by);
  KeyColumns key{options.group_by};
  const auto find = [&](const std::string& name) {
    return static_cast<size_t>(std::find(key.names.begin(), key.names.end(), name) -
                               key.names.begin());
  };
  key.method = find("method");
  key.size = find("size");
  if (options.published && (!key.has_method() || key.size == key.names.size())) {
    throw ReportError(
        "--published needs 'method' and 'size' in --group-by (the published "
        "numbers are keyed by them)");
  }
  return key;
}

// The stored runs, split by the status filter, with the extra figures of the shown ones.
struct CollectedRuns {
  std::vector<RunSummary> all;
  std::vector<const RunSummary*> included;  // into `all`
  std::vector<const RunSummary*> left_out;  // not 'done', without --all
  std::map<std::string, RunExtras> extras;  // by run_key, of the included runs
};

CollectedRuns collect_runs(Store& store, bool include_all) {
  CollectedRuns runs;
  runs.all = summarize_runs(store);
  if (runs.all.empty()) throw_no_runs(store);
  for (const RunSummary& s : runs.all) {
    (include_all || s.run.status == RunStatus::kDone ? runs.included : runs.left_out).push_back(&s);
  }
  if (runs.included.empty()) {
    throw ReportError("no 'done' runs in '" + store.path() + "' (" + status_summary(runs.left_out) +
                      "): --all includes unfinished runs, `" + std::string(kCreateRunsHint) +
                      "` creates one");
  }
  for (const RunSummary* s : runs.included) {
    runs.extras[s->run.run_key] = read_extras(store, s->run.run_key);
  }
  return runs;
}

using GroupMap = std::map<std::vector<std::string>, Group, KeyLess>;

GroupMap group_runs(const std::vector<const RunSummary*>& runs, const KeyColumns& key,
                    const KeyLess& less) {
  GroupMap groups(less);
  GroupValues values;
  for (const RunSummary* s : runs) {
    std::vector<std::string> k;
    for (const auto& c : key.names) k.push_back(values.get(s->run, c));
    Group& g = groups[k];
    g.key = k;
    g.runs.push_back(s);
  }
  return groups;
}

template <class Fn>
std::vector<double> values_of(const Group& g, Fn value) {
  std::vector<double> out;
  for (const RunSummary* s : g.runs) out.push_back(value(*s));
  return out;
}

// The loss statistics come first: the deltas compare them across groups.
void aggregate_losses(GroupMap& groups) {
  for (auto& [k, g] : groups) {
    g.loss = stats_of(values_of(g, [](const RunSummary& s) { return s.val_loss; }));
  }
}

GroupMap published_groups(const KeyColumns& key, const KeyLess& less) {
  GroupMap groups(less);
  for (const PublishedResult& p : published_results()) {
    std::vector<std::string> k(key.names.size());
    k[key.method] = p.method;
    k[key.size] = p.size;
    Group& g = groups[k];
    g.key = k;
    g.published_ppl = p.ppl;
  }
  return groups;
}

struct TaskColumn {
  TaskMetric task;
  double chance = kNaN;
};

// One column per (task, primary metric) that any shown run has, with the task's chance level,
// in the evaluator's task order.
std::vector<TaskColumn> task_columns(const CollectedRuns& runs) {
  std::map<TaskMetric, double> task_chance;
  for (const RunSummary* s : runs.included) {
    for (const auto& [tm, figure] : runs.extras.at(s->run.run_key).tasks) {
      double& chance = task_chance.emplace(tm, kNaN).first->second;
      if (std::isnan(chance)) chance = figure.chance;
    }
  }
  std::vector<TaskColumn> columns;
  columns.reserve(task_chance.size());
  for (const auto& [tm, chance] : task_chance) columns.push_back({tm, chance});
  std::stable_sort(columns.begin(), columns.end(), [](const TaskColumn& a, const TaskColumn& b) {
    return std::make_pair(task_rank(a.task.first), a.task) <
           std::make_pair(task_rank(b.task.first), b.task);
  });
  return columns;
}

// Everything the row and footnote steps read.
struct Comparison {
  const TableOptions& options;
  KeyColumns key;
  CollectedRuns runs;
  GroupMap ours;
  GroupMap published;
  std::vector<TaskColumn> tasks;
};

std::vector<Column> comparison_columns(const Comparison& c) {
  std::vector<Column> columns;
  for (const auto& name : c.key.names) columns.push_back(simple_column(name));
  columns.insert(columns.end(), {{"runs", {"runs"}, true},
                                 {"status", {"status"}, false},
                                 {"val loss", {"val_loss_mean", "val_loss_std"}, true},
                                 {"Δ vs " + c.options.baseline, {"delta_val_loss"}, true},
                                 {"ppl", {"ppl"}, true}});
  for (const auto& [tm, chance] : c.tasks) {
    const auto& [task, metric] = tm;
    std::string name = fmt::format("{} {}", task, metric);
    if (!std::isnan(chance)) name += fmt::format(" (chance {})", fixed(chance, 2));
    const std::string csv = fmt::format("{}_{}", task, metric);
    columns.push_back({name, {csv + "_mean", csv + "_std"}, true});
  }
  columns.insert(columns.end(), {{"tok/s", {"tokens_per_s"}, true},
                                 {"density", {"density", "density_std"}, true},
                                 {"λ", {"lambda"}, true},
                                 {"CV", {"cv", "cv_std"}, true},
                                 {"MaxVio", {"maxvio", "maxvio_std"}, true},
                                 {"entropy", {"entropy", "entropy_std"}, true},
                                 {"dead", {"dead", "dead_std"}, true},
                                 {"wall", {"wall_s"}, true}});
  return columns;
}

// The baseline group of a row among `groups`: same key, method = baseline.
const Group* baseline_of(const Comparison& c, const GroupMap& groups, const Group& g) {
  if (!c.key.has_method()) return nullptr;
  std::vector<std::string> base = g.key;
  base[c.key.method] = c.options.baseline;
  const auto it = groups.find(base);
  return it == groups.end() ? nullptr : &it->second;
}

double loss_difference(const Group& g, const Group& base) { return g.loss.mean - base.loss.mean; }

// Published rows have only a perplexity: the loss delta if ppl = exp(loss).
double published_difference(const Group& g, const Group& base) {
  return std::log(g.published_ppl / base.published_ppl);
}

// "base" on the baseline itself, "-" without a baseline.
Cell delta_cell(const Group& g, const Group* base,
                double (*difference)(const Group&, const Group&)) {
  if (base == &g) return {"base", {"0"}};
  if (base == nullptr) return {kNone, {""}};
  const double d = difference(g, *base);
  return number_cell(std::isnan(d) ? kNone : format_printf("%+.3f", d), d);
}

std::vector<Cell> published_row(const Comparison& c, const Group& g,
                                const std::vector<Column>& columns) {
  std::vector<Cell> row = text_row(g.key);
  row.insert(row.end(), {Cell{"", {""}}, text_cell("published"), Cell{kNone, {"", ""}},
                         delta_cell(g, baseline_of(c, c.published, g), published_difference),
                         number_cell(fixed(g.published_ppl, 2), g.published_ppl)});
  // Nothing else is published for these rows: one empty cell per remaining column.
  while (row.size() < columns.size()) {
    row.push_back({kNone, std::vector<std::string>(columns[row.size()].csv_names.size(), "")});
  }
  return row;
}

// What our rows found that the footnotes explain.
struct RowFindings {
  bool any_baseline = false;                  // a row with a baseline group
  bool any_marked = false;                    // a row with runs that are not 'done'
  std::vector<std::string> missing_baseline;  // the other key values of rows without one
  std::vector<std::string> missing_loss;      // one note per row with runs lacking a val loss
  std::vector<std::string> caveats;           // method_label's footnotes
};

// runs (marked when some are not 'done') and status.
std::vector<Cell> run_count_cells(const Group& g, RowFindings& findings) {
  const bool marked = std::any_of(g.runs.begin(), g.runs.end(), [](const RunSummary* s) {
    return s->run.status != RunStatus::kDone;
  });
  findings.any_marked |= marked;
  const std::string n_runs = std::to_string(g.runs.size());
  return {{n_runs + (marked ? kNotDoneMark : ""), {n_runs}}, text_cell(status_summary(g.runs))};
}

// val loss, Δ and ppl.
std::vector<Cell> loss_cells(const Comparison& c, const Group& g, RowFindings& findings) {
  if (g.loss.n < static_cast<int>(g.runs.size())) {
    findings.missing_loss.push_back(describe_key(c.key.names, g.key, c.key.names.size()) + ": " +
                                    std::to_string(g.runs.size() - g.loss.n) + " of " +
                                    std::to_string(g.runs.size()) +
                                    " runs have no final val loss (not in its mean)");
  }
  const Group* base = baseline_of(c, c.ours, g);
  if (base != nullptr) {
    findings.any_baseline = true;
  } else if (c.key.has_method()) {
    findings.missing_baseline.push_back(describe_key(c.key.names, g.key, c.key.method));
  }
  const double ppl = std::exp(g.loss.mean);
  return {stats_cell(g.loss, 3), delta_cell(g, base, loss_difference),
          number_cell(fixed(ppl, 2), ppl)};
}

// The zero-shot, speed, routing, balance and wall columns: means (± std) over the group's runs.
std::vector<Cell> figure_cells(const Comparison& c, const Group& g) {
  std::vector<Cell> cells;
  for (const TaskColumn& column : c.tasks) {
    const auto task_value = [&](const RunSummary& s) {
      const auto& tasks = c.runs.extras.at(s.run.run_key).tasks;
      const auto it = tasks.find(column.task);
      return it == tasks.end() ? kNaN : it->second.value;
    };
    cells.push_back(mean_std_cell(values_of(g, task_value), 3));
  }
  const double speed = mean_of(values_of(g, [](const RunSummary& s) { return s.tokens_per_s; }));
  const double lambda = mean_of(values_of(g, [](const RunSummary& s) { return s.lambda; }));
  const double wall = mean_of(values_of(g, [](const RunSummary& s) { return s.run.wall_s; }));
  const auto dead = [&](const RunSummary& s) { return c.runs.extras.at(s.run.run_key).dead; };
  cells.push_back(number_cell(tokens_per_s_text(speed), speed));
  cells.push_back(mean_std_cell(values_of(g, [](const RunSummary& s) { return s.density; }), 3));
  cells.push_back(number_cell(lambda_text(lambda), lambda));
  cells.push_back(mean_std_cell(values_of(g, [](const RunSummary& s) { return s.cv; }), 3));
  cells.push_back(mean_std_cell(values_of(g, [](const RunSummary& s) { return s.maxvio; }), 3));
  cells.push_back(mean_std_cell(values_of(g, [](const RunSummary& s) { return s.entropy; }), 3));
  cells.push_back(mean_std_cell(values_of(g, dead), 2));
  cells.push_back(number_cell(wall_text(wall), wall));
  return cells;
}

std::vector<Cell> our_row(const Comparison& c, const Group& g, RowFindings& findings) {
  std::vector<Cell> row = text_row(g.key);
  if (c.key.has_method()) {
    row[c.key.method].text = method_label(g.key[c.key.method], findings.caveats);
  }
  // In column order; a braced list is evaluated left to right, so the findings keep row order.
  for (const auto& cells :
       {run_count_cells(g, findings), loss_cells(c, g, findings), figure_cells(c, g)}) {
    row.insert(row.end(), cells.begin(), cells.end());
  }
  return row;
}

// Ours and published in one order, ours first on equal keys, so each published anchor sits
// beside our row of the same method and size. (group, is_published)
std::vector<std::pair<const Group*, bool>> row_order(const Comparison& c) {
  std::vector<std::pair<const Group*, bool>> order;
  for (const auto& [k, g] : c.ours) order.push_back({&g, false});
  for (const auto& [k, g] : c.published) order.push_back({&g, true});
  const KeyLess& less = c.ours.key_comp();
  std::stable_sort(order.begin(), order.end(),
                   [&](const auto& a, const auto& b) { return less(a.first->key, b.first->key); });
  return order;
}

// Why a Δ cell may be empty; "" when none is.
std::string delta_footnote(const Comparison& c, const RowFindings& findings) {
  const std::string& baseline = c.options.baseline;
  if (!c.key.has_method()) return "Δ needs 'method' in --group-by: left empty";
  if (!findings.any_baseline) {
    return "baseline '" + baseline +
           "' absent: no run with that method among the shown runs, so Δ is left empty (choose "
           "another with --baseline)";
  }
  if (findings.missing_baseline.empty()) return "";
  std::string which;
  for (const auto& m : findings.missing_baseline) which += (which.empty() ? "" : "; ") + m;
  return "no baseline '" + baseline + "' runs for " + which + ": Δ left empty there";
}

// How the numbers were made, then anything the reader could misread.
std::vector<std::string> comparison_footnotes(const Comparison& c, const RowFindings& findings) {
  std::vector<std::string> notes = {
      "val loss: mean ± sample std over the runs of a row (last val eval, trained θ); "
      "ppl = exp(mean val loss); balance figures (mean ± std over the runs) at the last logged "
      "step, averaged over layers; dead = experts per layer whose share of the load is below "
      "1/(8E)"};
  if (!c.tasks.empty()) {
    notes.push_back(
        "zero-shot columns: each task's primary metric at its last evaluation (trained θ), mean ± "
        "std over the runs; chance = accuracy of a uniform guess (DATA.md offline tasks)");
  }
  if (std::string delta = delta_footnote(c, findings); !delta.empty()) notes.push_back(delta);
  notes.insert(notes.end(), findings.caveats.begin(), findings.caveats.end());
  if (findings.any_marked) {
    notes.push_back(std::string(kNotDoneMark) +
                    " the row includes runs that are not 'done' (--all); their numbers enter its "
                    "statistics");
  }
  const auto& left_out = c.runs.left_out;
  if (!left_out.empty()) {
    notes.push_back("left out " + std::to_string(left_out.size()) +
                    (left_out.size() == 1 ? " run that is" : " runs that are") + " not 'done' (" +
                    status_summary(left_out) + "); --all includes " +
                    (left_out.size() == 1 ? "it" : "them"));
  }
  if (c.options.published) {
    notes.push_back(
        "published: Routing-Free MoE repo README (arXiv 2604.00801; OpenWebText, one epoch, "
        "paper scale); Δ there = ln(ppl / published baseline ppl); only orderings and ratios "
        "compare with our runs (shared/spec/PAPER_RESULTS.md)");
  }
  notes.insert(notes.end(), findings.missing_loss.begin(), findings.missing_loss.end());
  return notes;
}

}  // namespace

// --- public API -------------------------------------------------------------------------------

std::unique_ptr<Store> open_results(const std::string& path, Store::Mode mode) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw ReportError("no results database at '" + path + "': create runs with `" +
                      std::string(kCreateRunsHint) + "` (or point --db at an existing database)");
  }
  try {
    return std::make_unique<Store>(path, mode);
  } catch (const std::runtime_error& e) {
    throw ReportError(e.what());  // not a moebench database, a newer schema, unreadable
  }
}

std::vector<RunSummary> summarize_runs(Store& store) {
  std::vector<RunSummary> out;
  for (RunRow& run : store.runs()) {
    RunSummary s;
    s.run = std::move(run);
    std::tie(s.val_loss, s.val_step) = last_val(store, s.run.run_key, "loss");
    if (s.val_step < 0) {
      // Only a perplexity stored: its log is the same loss.
      const auto [ppl, step] = last_val(store, s.run.run_key, "ppl");
      if (step >= 0) s.val_loss = std::log(ppl), s.val_step = step;
    }
    fill_steps(store, s);
    fill_balance(store, s);
    out.push_back(std::move(s));
  }
  return out;
}

const std::vector<PublishedResult>& published_results() {
  // PAPER_RESULTS.md, Routing-Free repo README (OpenWebText, one epoch, iso-compute). The S
  // top-k value is the README table's 31.22; its baseline list says 31.21 for the same run.
  static const std::vector<PublishedResult> rows = {
      {"topk", "S", 31.22},  {"routing_free", "S", 27.42}, {"aoe", "S", 30.00},
      {"remoe", "S", 29.60}, {"topk", "M", 25.00},         {"routing_free", "M", 22.08},
      {"topk", "L", 24.58},  {"routing_free", "L", 19.97},
  };
  return rows;
}

Table comparison_table(Store& store, const TableOptions& options) {
  KeyColumns key = key_columns(options);
  const KeyLess less{key.names, options.baseline};
  Comparison c{options,        std::move(key), collect_runs(store, options.all),
               GroupMap(less), GroupMap(less), {}};
  c.ours = group_runs(c.runs.included, c.key, less);
  aggregate_losses(c.ours);
  if (options.published) c.published = published_groups(c.key, less);
  c.tasks = task_columns(c.runs);

  Table table;
  table.columns = comparison_columns(c);
  RowFindings findings;
  for (const auto& [g, is_published] : row_order(c)) {
    table.rows.push_back(is_published ? published_row(c, *g, table.columns)
                                      : our_row(c, *g, findings));
  }
  table.footnotes = comparison_footnotes(c, findings);
  return table;
}

namespace {

// "running" alone cannot tell a live trainer from one that crashed without recording it: the
// run's lease can. A file from before leases (schema 1) has none, so its status stays as it is.
std::string run_status_text(Store& store, const RunRow& run) {
  std::string text = to_string(run.status);
  if (run.status != RunStatus::kRunning || store.schema_version() < 2) return text;
  const std::optional<LeaseHolder> lease = store.lease_of(run.run_key);
  if (!lease || !lease->alive) return text + " (owner gone)";
  return text + " (" + lease->host + ":" + std::to_string(lease->pid) + ")";
}

}  // namespace

std::string method_label(const std::string& method, std::vector<std::string>& notes) {
  const std::string caveat = baselines::has_method(method) ? baselines::caveat_of(method) : "";
  if (caveat.empty()) return method;
  const std::string note = std::string(kCaveatMark) + " " + method + ": " + caveat;
  if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
  return method + kCaveatMark;
}

Table runs_table(Store& store) {
  const std::vector<RunSummary> all = summarize_runs(store);
  if (all.empty()) throw_no_runs(store);
  Table table;
  table.columns = {{"run_key", {"run_key"}, false}, {"method", {"method"}, false},
                   {"size", {"size"}, false},       {"seed", {"seed"}, true},
                   {"status", {"status"}, false},   {"step", {"step"}, true},
                   {"wall", {"wall_s"}, true},      {"val loss", {"val_loss"}, true}};
  std::vector<std::string> caveats;
  for (const RunSummary& s : all) {
    const std::string seed = std::to_string(s.run.seed);
    const std::string step = std::to_string(s.run.status_step);
    table.rows.push_back({text_cell(s.run.run_key),
                          text_cell(method_label(s.run.method, caveats)),
                          text_cell(s.run.size),
                          {seed, {seed}},
                          text_cell(run_status_text(store, s.run)),
                          {step, {step}},
                          number_cell(wall_text(s.run.wall_s), s.run.wall_s),
                          number_cell(fixed(s.val_loss, 4), s.val_loss)});
  }
  table.footnotes.push_back(std::to_string(all.size()) + " runs in '" + store.path() + "'");
  table.footnotes.insert(table.footnotes.end(), caveats.begin(), caveats.end());
  return table;
}

Format parse_format(const std::string& text) {
  try {
    return moebench::parse_format(text);
  } catch (const std::invalid_argument& e) {
    throw ReportError(e.what());
  }
}

}  // namespace moebench::report
