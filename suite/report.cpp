// Comparison tables: per-run figures, groups, mean ± std, baseline deltas, published anchors,
// term / md / csv renderers. Spec: shared/DESIGN.md "Configs and the store", spec/PAPER_RESULTS.md.
#include "suite/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "suite/config.h"

namespace moebench::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kNone = "-";         // a cell without a value (term, md)
constexpr const char* kNotDoneMark = "†";  // a group that includes runs that are not 'done'

// --- number formatting --------------------------------------------------------------------------

std::string printf_string(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, x);
  return buf;
}

// Shortest text that reads back as the same double, so the csv round-trips exactly.
std::string exact(double x) {
  if (std::isnan(x)) return "";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string fixed(double x, int digits) {
  if (std::isnan(x)) return kNone;
  char format[16];
  std::snprintf(format, sizeof(format), "%%.%df", digits);
  return printf_string(format, x);
}

std::string wall_text(double s) {
  if (std::isnan(s)) return kNone;
  if (s < 120) return printf_string("%.1f s", s);
  if (s < 7200) return printf_string("%.1f min", s / 60);
  return printf_string("%.2f h", s / 3600);
}

std::string tokens_per_s_text(double x) {
  if (std::isnan(x)) return kNone;
  return printf_string(x >= 100 ? "%.0f" : "%.1f", x);
}

// λ spans 1e-10 (RF's λ₀) to O(1): fixed decimals would show most values as 0.
std::string lambda_text(double x) {
  if (std::isnan(x)) return kNone;
  if (x == 0) return "0";
  return printf_string("%.2e", x);
}

Cell number_cell(const std::string& text, double raw) { return {text, {exact(raw)}}; }
Cell text_cell(const std::string& text) { return {text, {text}}; }

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
Cell mean_std_cell(const std::vector<double>& values, int digits) {
  const Stats st = stats_of(values);
  std::string text = fixed(st.mean, digits);
  if (!std::isnan(st.std)) text += " ± " + fixed(st.std, digits);
  return {text, {exact(st.mean), exact(st.std)}};
}

// --- reading the store ------------------------------------------------------------------------

double as_double(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* s = std::get_if<std::string>(&v)) {
    char* end = nullptr;
    const double x = std::strtod(s->c_str(), &end);
    if (end != s->c_str() && *end == '\0') return x;
  }
  return kNaN;  // NULL: SQLite's stand-in for NaN
}

int64_t as_int(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  const double d = as_double(v);
  return std::isnan(d) ? -1 : static_cast<int64_t>(d);
}

// The last evaluation of one val metric at the trained threshold: (value, step).
std::pair<double, int64_t> last_val(Store& store, const std::string& run_key,
                                    const std::string& metric) {
  const QueryResult r = store.query(
      "SELECT value, step FROM evals WHERE run_key = ? AND task = 'val' AND metric = ? AND "
      "theta IS NULL ORDER BY step DESC LIMIT 1",
      {run_key, metric});
  if (r.rows.empty()) return {kNaN, -1};
  return {as_double(r.rows[0][0]), as_int(r.rows[0][1])};
}

void fill_steps(Store& store, RunSummary& s) {
  const QueryResult r =
      store.query("SELECT tokens_per_s, density, lambda FROM steps WHERE run_key = ? ORDER BY step",
                  {s.run.run_key});
  const size_t n = r.rows.size();
  // The last third: early steps include warm-up, compilation and allocator growth, which
  // would understate the steady-state speed.
  const size_t tail = std::max<size_t>(1, (n + 2) / 3);
  std::vector<double> speeds;
  for (size_t i = n > tail ? n - tail : 0; i < n; ++i) speeds.push_back(as_double(r.rows[i][0]));
  s.tokens_per_s = mean_of(speeds);
  // The last logged value; a NULL there (e.g. a NaN written on the diverging step) falls back to
  // the one before.
  s.density = s.lambda = kNaN;
  for (size_t i = n; i-- > 0 && std::isnan(s.density);) s.density = as_double(r.rows[i][1]);
  for (size_t i = n; i-- > 0 && std::isnan(s.lambda);) s.lambda = as_double(r.rows[i][2]);
}

// One balance figure of each metric at the run's last step with layer summaries.
std::map<std::string, double> last_balance(Store& store, const std::string& run_key) {
  const QueryResult r = store.query(
      "SELECT layer, metric, value FROM layer_stats WHERE run_key = ? AND expert = -1 AND "
      "step = (SELECT max(step) FROM layer_stats WHERE run_key = ? AND expert = -1)",
      {run_key, run_key});
  std::map<std::string, double> overall;
  std::map<std::string, std::vector<double>> per_layer;
  for (const auto& row : r.rows) {
    const std::string metric = to_string(row[1]);
    if (as_int(row[0]) < 0) {
      overall[metric] = as_double(row[2]);
    } else {
      per_layer[metric].push_back(as_double(row[2]));
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
  const QueryResult r = store.query(
      "SELECT task, metric, value, chance, step FROM evals WHERE run_key = ? AND theta IS NULL "
      "AND task NOT IN ('val', 'routing') ORDER BY step",
      {run_key});
  // Per task, the rows of its last evaluated step.
  std::map<std::string, int64_t> last_step;
  for (const auto& row : r.rows) last_step[to_string(row[0])] = as_int(row[4]);
  std::map<std::string, std::map<std::string, TaskFigure>> at_last;
  for (const auto& row : r.rows) {
    const std::string task = to_string(row[0]);
    if (as_int(row[4]) != last_step[task]) continue;
    at_last[task][to_string(row[1])] = {as_double(row[2]), as_double(row[3])};
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
      throw ReportError("unknown --group-by column '" + c + "': use " + valid +
                        " or a config key such as moe.theta");
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

// --- rendering helpers --------------------------------------------------------------------------

// Display width in code points: every character the tables use (±, Δ, λ, †) is one column wide.
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, size_t width, bool right) {
  const size_t w = display_width(s);
  if (w >= width) return s;
  const std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos &&
      (s.empty() || (s.front() != ' ' && s.back() != ' '))) {
    return s;
  }
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

// --- public API -------------------------------------------------------------------------------

std::unique_ptr<Store> open_results(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw ReportError("no results database at '" + path + "': create runs with `" +
                      std::string(kCreateRunsHint) + "` (or point --db at an existing database)");
  }
  return std::make_unique<Store>(path);
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
  check_group_columns(options.group_by);
  const std::vector<std::string>& cols = options.group_by;
  const auto find_col = [&](const std::string& name) {
    return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
  };
  const size_t method_col = find_col("method");
  const size_t size_col = find_col("size");
  if (options.published && (method_col == cols.size() || size_col == cols.size())) {
    throw ReportError(
        "--published needs 'method' and 'size' in --group-by (the published "
        "numbers are keyed by them)");
  }

  const std::vector<RunSummary> all = summarize_runs(store);
  if (all.empty()) {
    throw ReportError("no runs in '" + store.path() + "': create some with `" +
                      std::string(kCreateRunsHint) + "`");
  }
  std::map<std::string, RunExtras> extras;  // by run_key
  for (const RunSummary& s : all) extras[s.run.run_key] = read_extras(store, s.run.run_key);
  std::vector<const RunSummary*> left_out;
  std::vector<const RunSummary*> included;
  for (const RunSummary& s : all) {
    (options.all || s.run.status == RunStatus::kDone ? included : left_out).push_back(&s);
  }
  if (included.empty()) {
    throw ReportError("no 'done' runs in '" + store.path() + "' (" + status_summary(left_out) +
                      "): --all includes unfinished runs, `" + std::string(kCreateRunsHint) +
                      "` creates one");
  }

  const KeyLess less{cols, options.baseline};
  std::map<std::vector<std::string>, Group, KeyLess> ours(less);
  GroupValues values;
  for (const RunSummary* s : included) {
    std::vector<std::string> key;
    for (const auto& c : cols) key.push_back(values.get(s->run, c));
    Group& g = ours[key];
    g.key = key;
    g.runs.push_back(s);
  }
  for (auto& [key, g] : ours) {
    std::vector<double> losses;
    for (const RunSummary* s : g.runs) losses.push_back(s->val_loss);
    g.loss = stats_of(losses);
  }
  std::map<std::vector<std::string>, Group, KeyLess> published(less);
  if (options.published) {
    for (const PublishedResult& p : published_results()) {
      std::vector<std::string> key(cols.size());
      key[method_col] = p.method;
      key[size_col] = p.size;
      Group& g = published[key];
      g.key = key;
      g.published_ppl = p.ppl;
    }
  }

  // One column per (task, primary metric) that any shown run has, with the task's chance level.
  std::map<TaskMetric, double> task_chance;
  for (const RunSummary* s : included) {
    for (const auto& [tm, figure] : extras[s->run.run_key].tasks) {
      double& chance = task_chance.emplace(tm, kNaN).first->second;
      if (std::isnan(chance)) chance = figure.chance;
    }
  }
  std::vector<TaskMetric> task_columns;
  for (const auto& [tm, chance] : task_chance) task_columns.push_back(tm);
  std::stable_sort(
      task_columns.begin(), task_columns.end(), [](const TaskMetric& a, const TaskMetric& b) {
        return std::make_pair(task_rank(a.first), a) < std::make_pair(task_rank(b.first), b);
      });

  Table table;
  std::vector<std::string> notes;
  for (const auto& c : cols) table.columns.push_back({c, {c}, false});
  const std::string delta_name = "Δ vs " + options.baseline;
  table.columns.insert(table.columns.end(), {{"runs", {"runs"}, true},
                                             {"status", {"status"}, false},
                                             {"val loss", {"val_loss_mean", "val_loss_std"}, true},
                                             {delta_name, {"delta_val_loss"}, true},
                                             {"ppl", {"ppl"}, true}});
  for (const auto& [task, metric] : task_columns) {
    const double chance = task_chance[{task, metric}];
    std::string name = task + " " + metric;
    if (!std::isnan(chance)) name += " (chance " + fixed(chance, 2) + ")";
    const std::string csv = task + "_" + metric;
    table.columns.push_back({name, {csv + "_mean", csv + "_std"}, true});
  }
  table.columns.insert(table.columns.end(), {{"tok/s", {"tokens_per_s"}, true},
                                             {"density", {"density", "density_std"}, true},
                                             {"λ", {"lambda"}, true},
                                             {"CV", {"cv", "cv_std"}, true},
                                             {"MaxVio", {"maxvio", "maxvio_std"}, true},
                                             {"entropy", {"entropy", "entropy_std"}, true},
                                             {"dead", {"dead", "dead_std"}, true},
                                             {"wall", {"wall_s"}, true}});

  // The baseline group of a row: same key, method = baseline.
  const auto baseline_of = [&](const auto& groups,
                               const std::vector<std::string>& key) -> const Group* {
    if (method_col == cols.size()) return nullptr;
    std::vector<std::string> base = key;
    base[method_col] = options.baseline;
    const auto it = groups.find(base);
    return it == groups.end() ? nullptr : &it->second;
  };
  std::vector<std::string> missing_baseline;
  bool any_baseline = false;
  bool any_marked = false;

  // Ours and published in one order, ours first on equal keys, so each published anchor sits
  // beside our row of the same method and size.
  std::vector<std::pair<const Group*, bool>> order;  // (group, is_published)
  for (const auto& [key, g] : ours) order.push_back({&g, false});
  for (const auto& [key, g] : published) order.push_back({&g, true});
  std::stable_sort(order.begin(), order.end(),
                   [&](const auto& a, const auto& b) { return less(a.first->key, b.first->key); });

  for (const auto& [g, is_published] : order) {
    std::vector<Cell> row;
    for (const auto& v : g->key) row.push_back(text_cell(v));
    if (is_published) {
      const Group* base = baseline_of(published, g->key);
      Cell delta{kNone, {""}};
      if (base == g) {
        delta = {"base", {"0"}};
      } else if (base != nullptr) {
        const double d = std::log(g->published_ppl / base->published_ppl);
        delta = number_cell(printf_string("%+.3f", d), d);
      }
      row.insert(row.end(), {Cell{"", {""}}, text_cell("published"), Cell{kNone, {"", ""}}, delta,
                             number_cell(fixed(g->published_ppl, 2), g->published_ppl)});
      // Nothing else is published for these rows: one empty cell per remaining column.
      while (row.size() < table.columns.size()) {
        const auto& column = table.columns[row.size()];
        row.push_back({kNone, std::vector<std::string>(column.csv_names.size(), "")});
      }
      table.rows.push_back(std::move(row));
      continue;
    }

    const bool marked = std::any_of(g->runs.begin(), g->runs.end(), [](const RunSummary* s) {
      return s->run.status != RunStatus::kDone;
    });
    any_marked |= marked;
    const std::string n_runs = std::to_string(g->runs.size());
    row.push_back({n_runs + (marked ? kNotDoneMark : ""), {n_runs}});
    row.push_back(text_cell(status_summary(g->runs)));

    std::string loss_text = fixed(g->loss.mean, 3);
    if (!std::isnan(g->loss.std)) loss_text += " ± " + fixed(g->loss.std, 3);
    row.push_back({loss_text, {exact(g->loss.mean), exact(g->loss.std)}});
    if (g->loss.n < static_cast<int>(g->runs.size())) {
      notes.push_back(describe_key(cols, g->key, cols.size()) + ": " +
                      std::to_string(g->runs.size() - g->loss.n) + " of " +
                      std::to_string(g->runs.size()) +
                      " runs have no final val loss (not in its mean)");
    }

    const Group* base = baseline_of(ours, g->key);
    if (base == g) {
      any_baseline = true;
      row.push_back({"base", {"0"}});
    } else if (base != nullptr) {
      any_baseline = true;
      const double d = g->loss.mean - base->loss.mean;
      row.push_back(number_cell(std::isnan(d) ? kNone : printf_string("%+.3f", d), d));
    } else {
      if (method_col != cols.size())
        missing_baseline.push_back(describe_key(cols, g->key, method_col));
      row.push_back({kNone, {""}});
    }

    const double ppl = std::exp(g->loss.mean);
    row.push_back(number_cell(fixed(ppl, 2), ppl));
    for (const TaskMetric& tm : task_columns) {
      std::vector<double> values;
      for (const RunSummary* s : g->runs) {
        const auto& tasks = extras[s->run.run_key].tasks;
        const auto it = tasks.find(tm);
        values.push_back(it == tasks.end() ? kNaN : it->second.value);
      }
      row.push_back(mean_std_cell(values, 3));
    }
    std::vector<double> speed, density, lambda, cv, maxvio, entropy, dead, wall;
    for (const RunSummary* s : g->runs) {
      speed.push_back(s->tokens_per_s);
      density.push_back(s->density);
      lambda.push_back(s->lambda);
      cv.push_back(s->cv);
      maxvio.push_back(s->maxvio);
      entropy.push_back(s->entropy);
      dead.push_back(extras[s->run.run_key].dead);
      wall.push_back(s->run.wall_s);
    }
    const double m_speed = mean_of(speed), m_lambda = mean_of(lambda), m_wall = mean_of(wall);
    row.push_back(number_cell(tokens_per_s_text(m_speed), m_speed));
    row.push_back(mean_std_cell(density, 3));
    row.push_back(number_cell(lambda_text(m_lambda), m_lambda));
    row.push_back(mean_std_cell(cv, 3));
    row.push_back(mean_std_cell(maxvio, 3));
    row.push_back(mean_std_cell(entropy, 3));
    row.push_back(mean_std_cell(dead, 2));
    row.push_back(number_cell(wall_text(m_wall), m_wall));
    table.rows.push_back(std::move(row));
  }

  // Footnotes: how the numbers were made, then anything the reader could misread.
  table.footnotes.push_back(
      "val loss: mean ± sample std over the runs of a row (last val eval, trained θ); "
      "ppl = exp(mean val loss); balance figures (mean ± std over the runs) at the last logged "
      "step, averaged over layers; dead = experts per layer with load < 1/(8E)");
  if (!task_columns.empty()) {
    table.footnotes.push_back(
        "zero-shot columns: each task's primary metric at its last evaluation (trained θ), mean ± "
        "std over the runs; chance = accuracy of a uniform guess (DATA.md offline tasks)");
  }
  if (method_col == cols.size()) {
    table.footnotes.push_back("Δ needs 'method' in --group-by: left empty");
  } else if (!any_baseline) {
    table.footnotes.push_back("baseline '" + options.baseline +
                              "' absent: no run with that method among the shown runs, so Δ is "
                              "left empty (choose another with --baseline)");
  } else if (!missing_baseline.empty()) {
    std::string which;
    for (const auto& m : missing_baseline) which += (which.empty() ? "" : "; ") + m;
    table.footnotes.push_back("no baseline '" + options.baseline + "' runs for " + which +
                              ": Δ left empty there");
  }
  if (any_marked) {
    table.footnotes.push_back(std::string(kNotDoneMark) +
                              " the row includes runs that are not 'done' (--all); their numbers "
                              "enter its statistics");
  }
  if (!left_out.empty()) {
    table.footnotes.push_back("left out " + std::to_string(left_out.size()) +
                              (left_out.size() == 1 ? " run that is" : " runs that are") +
                              " not 'done' (" + status_summary(left_out) + "); --all includes " +
                              (left_out.size() == 1 ? "it" : "them"));
  }
  if (options.published) {
    table.footnotes.push_back(
        "published: Routing-Free MoE repo README (arXiv 2604.00801; OpenWebText, one epoch, "
        "paper scale); Δ there = ln(ppl / published baseline ppl); only orderings and ratios "
        "compare with our runs (shared/spec/PAPER_RESULTS.md)");
  }
  table.footnotes.insert(table.footnotes.end(), notes.begin(), notes.end());
  return table;
}

Table runs_table(Store& store) {
  const std::vector<RunSummary> all = summarize_runs(store);
  if (all.empty()) {
    throw ReportError("no runs in '" + store.path() + "': create some with `" +
                      std::string(kCreateRunsHint) + "`");
  }
  Table table;
  table.columns = {{"run_key", {"run_key"}, false}, {"method", {"method"}, false},
                   {"size", {"size"}, false},       {"seed", {"seed"}, true},
                   {"status", {"status"}, false},   {"step", {"step"}, true},
                   {"wall", {"wall_s"}, true},      {"val loss", {"val_loss"}, true}};
  for (const RunSummary& s : all) {
    const std::string seed = std::to_string(s.run.seed);
    const std::string step = std::to_string(s.run.status_step);
    table.rows.push_back({text_cell(s.run.run_key),
                          text_cell(s.run.method),
                          text_cell(s.run.size),
                          {seed, {seed}},
                          text_cell(to_string(s.run.status)),
                          {step, {step}},
                          number_cell(wall_text(s.run.wall_s), s.run.wall_s),
                          number_cell(fixed(s.val_loss, 4), s.val_loss)});
  }
  table.footnotes.push_back(std::to_string(all.size()) + " runs in '" + store.path() + "'");
  return table;
}

Format parse_format(const std::string& text) {
  if (text == "term") return Format::kTerm;
  if (text == "md" || text == "markdown") return Format::kMarkdown;
  if (text == "csv") return Format::kCsv;
  throw ReportError("unknown format '" + text + "': use term, md or csv");
}

std::string render(const Table& table, Format format) {
  std::string out;
  const size_t n = table.columns.size();
  if (format == Format::kCsv) {
    std::string line;
    for (const Column& c : table.columns) {
      for (const auto& name : c.csv_names) line += (line.empty() ? "" : ",") + csv_field(name);
    }
    out += line + "\n";
    for (const auto& row : table.rows) {
      line.clear();
      bool first = true;
      for (size_t i = 0; i < n; ++i) {
        for (size_t k = 0; k < table.columns[i].csv_names.size(); ++k) {
          const std::string field = k < row[i].csv.size() ? row[i].csv[k] : "";
          line += (first ? "" : ",") + csv_field(field);
          first = false;
        }
      }
      out += line + "\n";
    }
    return out;
  }

  if (format == Format::kMarkdown) {
    std::string header = "|", rule = "|";
    for (const Column& c : table.columns) {
      header += " " + md_cell(c.name) + " |";
      rule += c.numeric ? "---:|" : "---|";
    }
    out += header + "\n" + rule + "\n";
    for (const auto& row : table.rows) {
      std::string line = "|";
      for (const Cell& cell : row) line += " " + md_cell(cell.text) + " |";
      out += line + "\n";
    }
    if (!table.footnotes.empty()) out += "\n";
    for (const auto& f : table.footnotes) out += "- " + f + "\n";
    return out;
  }

  std::vector<size_t> width(n, 0);
  for (size_t i = 0; i < n; ++i) width[i] = display_width(table.columns[i].name);
  for (const auto& row : table.rows) {
    for (size_t i = 0; i < n; ++i) width[i] = std::max(width[i], display_width(row[i].text));
  }
  const auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < n; ++i) {
      line += (i ? "  " : "") + pad(cells[i], width[i], table.columns[i].numeric);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  std::vector<std::string> cells;
  for (const Column& c : table.columns) cells.push_back(c.name);
  emit(cells);
  cells.clear();
  for (size_t i = 0; i < n; ++i) cells.push_back(std::string(width[i], '-'));
  emit(cells);
  for (const auto& row : table.rows) {
    cells.clear();
    for (const Cell& cell : row) cells.push_back(cell.text);
    emit(cells);
  }
  for (const auto& f : table.footnotes) out += f + "\n";
  return out;
}

}  // namespace moebench::report
