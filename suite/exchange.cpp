// Merge, export and import of results stores. The merge rule and the file layout are described in
// suite/exchange.h; this file holds the CSV reader and writer, the manifest checks (SHA-256 from
// datasets/hashing.h) and the one merge routine that both a database and an export folder feed.
#include "suite/exchange.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "datasets/hashing.h"

namespace moebench {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// --- CSV and numbers ----------------------------------------------------------------------------

namespace exchange_detail {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source) {
  const auto fail = [&](int64_t line, const std::string& what) {
    return ExchangeError(source + " line " + std::to_string(line) + ": " + what);
  };
  std::vector<CsvRecord> records;
  const size_t n = text.size();
  size_t i = 0;
  int64_t line = 1;
  while (i < n) {
    // A blank line carries no record (a trailing one is common after hand edits).
    if (text[i] == '\n') {
      ++i, ++line;
      continue;
    }
    if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') {
      i += 2, ++line;
      continue;
    }
    CsvRecord record;
    record.line = line;
    while (true) {
      std::string field;
      if (i < n && text[i] == '"') {
        const int64_t opened = line;
        ++i;
        while (true) {
          if (i >= n) throw fail(opened, "a quoted field is never closed (a lost '\"')");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {  // a doubled quote is one quote of the text
              field += '"';
              ++i;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          throw fail(line,
                     "text after a closing quote (a quote inside a quoted field must be doubled)");
        }
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"') {
            throw fail(line,
                       "a quote inside an unquoted field (such a field must be quoted and its "
                       "quotes doubled)");
          }
          field += text[i++];
        }
      }
      record.fields.push_back(std::move(field));
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    if (i < n && text[i] == '\r') {
      if (i + 1 >= n || text[i + 1] != '\n') {
        throw fail(line, "a carriage return outside quotes that does not end the line");
      }
      ++i;
    }
    if (i < n) ++i, ++line;  // the '\n' that ends the record
    records.push_back(std::move(record));
  }
  return records;
}

std::string format_number(double value) {
  // A NaN may carry its sign bit; both spell "nan", which is all the store can hold (NULL).
  if (std::isnan(value)) return "nan";
  // to_chars without a precision writes the shortest text that reads back to the same bits,
  // and, unlike printf, ignores the locale.
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, result.ptr);
}

double parse_number(const std::string& text) {
  double value = 0;
  const char* first = text.data();
  const char* last = first + text.size();
  const auto result = std::from_chars(first, last, value);
  if (text.empty() || result.ec != std::errc() || result.ptr != last) {
    throw std::invalid_argument("'" + text + "' is not a number");
  }
  return value;
}

}  // namespace exchange_detail

using exchange_detail::csv_field;
using exchange_detail::format_number;
using exchange_detail::parse_number;

// --- the merge rule -----------------------------------------------------------------------------

namespace {

// Equal as the store sees them: NaN (NULL) equals NaN.
bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool same_row(const StepRow& a, const StepRow& b) {
  return a.step == b.step && a.tokens == b.tokens && same_number(a.loss, b.loss) &&
         same_number(a.lm_loss, b.lm_loss) && same_number(a.aux_loss, b.aux_loss) &&
         same_number(a.lambda, b.lambda) && same_number(a.density, b.density) &&
         same_number(a.lr, b.lr) && same_number(a.grad_norm, b.grad_norm) &&
         same_number(a.tokens_per_s, b.tokens_per_s) && same_number(a.elapsed_s, b.elapsed_s);
}

bool same_row(const LayerStatRow& a, const LayerStatRow& b) {
  return a.step == b.step && a.layer == b.layer && a.expert == b.expert && a.metric == b.metric &&
         same_number(a.value, b.value);
}

bool same_theta(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || same_number(*a, *b));
}

bool same_row(const EvalRow& a, const EvalRow& b) {
  return a.task == b.task && a.metric == b.metric && same_number(a.value, b.value) && a.n == b.n &&
         same_number(a.ci_low, b.ci_low) && same_number(a.ci_high, b.ci_high) &&
         same_number(a.chance, b.chance) && same_theta(a.theta, b.theta) && a.step == b.step;
}

std::string row_name(const StepRow& r) { return "step " + std::to_string(r.step); }

std::string row_name(const LayerStatRow& r) {
  return "step " + std::to_string(r.step) + ", layer " + std::to_string(r.layer) + ", expert " +
         std::to_string(r.expert) + ", metric " + r.metric;
}

std::string row_name(const EvalRow& r) {
  return "step " + std::to_string(r.step) + ", task " + r.task + ", metric " + r.metric +
         (r.theta ? ", theta " + format_number(*r.theta) : "");
}

// The store's own orders (Store::steps, layer_stats, evals; a missing theta first), so that a
// record read from a file compares row by row with one read from a database.
void normalize(RunRecord& record) {
  std::stable_sort(record.steps.begin(), record.steps.end(),
                   [](const StepRow& a, const StepRow& b) { return a.step < b.step; });
  std::stable_sort(record.layer_stats.begin(), record.layer_stats.end(),
                   [](const LayerStatRow& a, const LayerStatRow& b) {
                     return std::tie(a.step, a.layer, a.expert, a.metric) <
                            std::tie(b.step, b.layer, b.expert, b.metric);
                   });
  std::stable_sort(record.evals.begin(), record.evals.end(),
                   [](const EvalRow& a, const EvalRow& b) {
                     // nullopt < any value, as SQLite sorts NULL first.
                     return std::tie(a.step, a.task, a.metric, a.theta) <
                            std::tie(b.step, b.task, b.metric, b.theta);
                   });
}

// "" when the two tables hold the same rows, else what a reader needs to find the difference.
template <class Row>
std::string table_difference(const char* table, const std::vector<Row>& source,
                             const std::vector<Row>& target) {
  const std::string counts = "source " + std::to_string(source.size()) + " rows, target " +
                             std::to_string(target.size()) + " rows";
  const size_t common = std::min(source.size(), target.size());
  for (size_t i = 0; i < common; ++i) {
    if (!same_row(source[i], target[i])) {
      return std::string(table) + " differ (" + counts + "; first at " + row_name(source[i]) + ")";
    }
  }
  if (source.size() != target.size()) return std::string(table) + ": " + counts;
  return "";
}

// The headline figure of a finished run: the last val loss at the trained threshold.
std::optional<EvalRow> final_val_loss(const RunRecord& record) {
  std::optional<EvalRow> last;
  for (const EvalRow& e : record.evals) {  // normalized: by step
    if (e.task == "val" && e.metric == "loss" && !e.theta) last = e;
  }
  return last;
}

std::string describe(const std::optional<EvalRow>& e) {
  return e ? format_number(e->value) + " (step " + std::to_string(e->step) + ")" : "none";
}

// Everything that makes the two copies of one run differ, headline first; empty = identical.
std::vector<std::string> differences(const RunRecord& source, const RunRecord& target) {
  std::vector<std::string> out;
  if (source.run.config_json != target.run.config_json) out.push_back("config_json differs");
  if (source.run.status != target.run.status) {
    out.push_back("status: source " + to_string(source.run.status) + ", target " +
                  to_string(target.run.status));
  }
  const std::optional<EvalRow> a = final_val_loss(source), b = final_val_loss(target);
  if (a.has_value() != b.has_value() ||
      (a && (!same_number(a->value, b->value) || a->step != b->step))) {
    out.push_back("final val loss: source " + describe(a) + ", target " + describe(b));
  }
  for (std::string d : {table_difference("steps", source.steps, target.steps),
                        table_difference("evals", source.evals, target.evals),
                        table_difference("layer_stats", source.layer_stats, target.layer_stats)}) {
    if (!d.empty()) out.push_back(std::move(d));
  }
  return out;
}

std::string run_label(const RunRow& run) {
  return "run " + run.run_key + " (method " + run.method + ", size " + run.size + ", seed " +
         std::to_string(run.seed) + ")";
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// One source run against the target, inside the caller's transaction.
void merge_run(const RunRecord& incoming, Store& target, MergeReport& report) {
  const std::string& key = incoming.run.run_key;
  std::optional<RunRecord> existing = target.run_record(key);
  if (!existing) {
    target.insert_run_record(incoming);
    ++report.copied;
    return;
  }
  normalize(*existing);
  const std::vector<std::string> diffs = differences(incoming, *existing);
  if (diffs.empty()) {
    ++report.identical;
    return;
  }
  const std::string conflict =
      run_label(incoming.run) + ": " + join(diffs, "; ") + "; kept the target's copy";
  // Another config under the same key is a hash collision or a bug: never resolved by status.
  if (incoming.run.config_json != existing->run.config_json) {
    report.conflicts.push_back(conflict);
    return;
  }
  const bool source_finished = is_finished(incoming.run.status);
  const bool target_finished = is_finished(existing->run.status);
  if (source_finished && !target_finished) {
    // Replacing a run under a live trainer would leave it writing into a finished run.
    if (const std::optional<LeaseHolder> lease = target.lease_of(key); lease && lease->alive) {
      report.conflicts.push_back(run_label(incoming.run) +
                                 ": finished in the source, but the "
                                 "target's copy is being trained now (lease held by " +
                                 lease->owner + "); merge again once it stops");
      return;
    }
    target.delete_run(key);  // its rows and any stale lease go with it
    target.insert_run_record(incoming);
    ++report.updated;
    return;
  }
  if (!source_finished && target_finished) {
    ++report.superseded;
    return;
  }
  report.conflicts.push_back(conflict);
}

// All columns of a kernel_bench row, as one comparable string.
std::string bench_key(const KernelBenchRow& r) {
  return join({r.name, r.shape, r.backend, r.dtype, r.metric, format_number(r.value), r.commit,
               r.device, r.created_at},
              std::string(1, '\x1f'));
}

void merge_kernel_bench(const std::vector<KernelBenchRow>& rows, Store& target,
                        MergeReport& report) {
  // A multiset: the target's copy of a row absorbs one source copy, so repeated identical rows
  // keep their count and a second merge adds nothing.
  std::unordered_map<std::string, int64_t> have;
  for (const KernelBenchRow& r : target.kernel_bench()) ++have[bench_key(r)];
  std::vector<KernelBenchRow> add;
  for (const KernelBenchRow& r : rows) {
    int64_t& count = have[bench_key(r)];
    if (count > 0) {
      --count;
    } else {
      add.push_back(r);
    }
  }
  target.insert_kernel_bench(add);
  report.kernel_bench_added += static_cast<int>(add.size());
}

void merge_env(const std::vector<EnvRow>& rows, Store& target, MergeReport& report) {
  std::map<std::pair<std::string, std::string>, std::string> have;
  for (EnvRow& r : target.env_rows()) have[{r.key, r.recorded_at}] = std::move(r.value);
  std::vector<EnvRow> add;
  for (const EnvRow& r : rows) {
    const auto [it, absent] = have.emplace(std::make_pair(r.key, r.recorded_at), r.value);
    if (absent) {
      add.push_back(r);
    } else if (it->second != r.value) {
      report.conflicts.push_back("env " + r.key + " recorded at " + r.recorded_at + ": source '" +
                                 r.value + "', target '" + it->second + "'; kept the target's row");
    }
  }
  target.insert_env_rows(add);
  report.env_added += static_cast<int>(add.size());
}

// What merge reads: a database or an export folder read into memory.
class RunSource {
 public:
  virtual ~RunSource() = default;
  virtual std::vector<std::string> run_keys() = 0;
  virtual std::optional<RunRecord> record(const std::string& run_key) = 0;
  virtual std::vector<KernelBenchRow> kernel_bench() = 0;
  virtual std::vector<EnvRow> env() = 0;
};

class StoreSource : public RunSource {
 public:
  explicit StoreSource(Store& store) : store_(store) {}
  std::vector<std::string> run_keys() override {
    std::vector<std::string> keys;
    for (const RunRow& r : store_.runs()) keys.push_back(r.run_key);
    return keys;
  }
  std::optional<RunRecord> record(const std::string& run_key) override {
    return store_.run_record(run_key);
  }
  std::vector<KernelBenchRow> kernel_bench() override { return store_.kernel_bench(); }
  std::vector<EnvRow> env() override { return store_.env_rows(); }

 private:
  Store& store_;
};

class ContentsSource : public RunSource {
 public:
  explicit ContentsSource(const ExportContents& contents) : contents_(contents) {
    for (size_t i = 0; i < contents.runs.size(); ++i) index_[contents.runs[i].run.run_key] = i;
  }
  std::vector<std::string> run_keys() override {
    std::vector<std::string> keys;
    for (const RunRecord& r : contents_.runs) keys.push_back(r.run.run_key);
    return keys;
  }
  std::optional<RunRecord> record(const std::string& run_key) override {
    const auto it = index_.find(run_key);
    if (it == index_.end()) return std::nullopt;
    return contents_.runs[it->second];
  }
  std::vector<KernelBenchRow> kernel_bench() override { return contents_.kernel_bench; }
  std::vector<EnvRow> env() override { return contents_.env; }

 private:
  const ExportContents& contents_;
  std::unordered_map<std::string, size_t> index_;
};

MergeReport merge_from(RunSource& source, Store& target) {
  if (target.mode() == Store::Mode::kReadOnly) {
    throw std::runtime_error("merge: the target " + target.path() + " is opened read-only");
  }
  MergeReport report;
  for (const std::string& key : source.run_keys()) {
    std::optional<RunRecord> incoming = source.record(key);
    if (!incoming) continue;  // deleted from the source since it was listed
    normalize(*incoming);
    // One transaction per run: the look at the target and the write cannot interleave with
    // another writer's, and a failure leaves no part of the run behind.
    MergeReport one;
    target.write([&] { merge_run(*incoming, target, one); });
    report += one;
  }
  MergeReport extra;
  target.write([&] {
    merge_kernel_bench(source.kernel_bench(), target, extra);
    merge_env(source.env(), target, extra);
  });
  report += extra;
  return report;
}

}  // namespace

MergeReport& MergeReport::operator+=(const MergeReport& other) {
  copied += other.copied;
  updated += other.updated;
  identical += other.identical;
  superseded += other.superseded;
  kernel_bench_added += other.kernel_bench_added;
  env_added += other.env_added;
  conflicts.insert(conflicts.end(), other.conflicts.begin(), other.conflicts.end());
  return *this;
}

std::string MergeReport::summary() const {
  const size_t n = conflicts.size();
  return std::to_string(copied) + " copied, " + std::to_string(updated) + " updated, " +
         std::to_string(identical) + " identical, " + std::to_string(superseded) + " superseded, " +
         std::to_string(n) + (n == 1 ? " conflict" : " conflicts") + "; kernel_bench +" +
         std::to_string(kernel_bench_added) + " rows, env +" + std::to_string(env_added) + " rows";
}

MergeReport merge_store(Store& source, Store& target) {
  StoreSource from(source);
  return merge_from(from, target);
}

MergeReport merge_contents(const ExportContents& contents, Store& target) {
  ContentsSource from(contents);
  return merge_from(from, target);
}

MergeReport import_export(const fs::path& dir, Store& target) {
  const ExportContents contents = read_export(dir);
  return merge_contents(contents, target);
}

// --- export -------------------------------------------------------------------------------------

namespace {

// The columns of each file, named as in the database, in the order written.
using Header = std::vector<const char*>;

const Header& runs_header() {
  static const Header h = {
      "run_key",    "config_json",   "method",      "size",    "seed",   "git_commit",
      "dirty",      "torch_version", "device",      "backend", "status", "status_step",
      "created_at", "started_at",    "finished_at", "wall_s",  "tokens", "notes"};
  return h;
}
const Header& steps_header() {
  static const Header h = {"run_key", "step",      "tokens",       "loss",
                           "lm_loss", "aux_loss",  "lambda",       "density",
                           "lr",      "grad_norm", "tokens_per_s", "elapsed_s"};
  return h;
}
const Header& layer_stats_header() {
  static const Header h = {"run_key", "step", "layer", "expert", "metric", "value"};
  return h;
}
const Header& evals_header() {
  static const Header h = {"run_key", "task",    "metric", "value", "n",
                           "ci_low",  "ci_high", "chance", "theta", "step"};
  return h;
}
const Header& kernel_bench_header() {
  static const Header h = {"name",  "shape",      "backend", "dtype",     "metric",
                           "value", "git_commit", "device",  "created_at"};
  return h;
}
const Header& env_header() {
  static const Header h = {"key", "value", "recorded_at"};
  return h;
}

// One CSV file being written: a header line, then a line per row.
class CsvText {
 public:
  explicit CsvText(const Header& header) {
    std::vector<std::string> names(header.begin(), header.end());
    add(names);
    rows_ = 0;
  }
  void add(const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i) text_ += ',';
      text_ += csv_field(fields[i]);
    }
    text_ += '\n';
    ++rows_;
  }
  const std::string& text() const { return text_; }
  int64_t rows() const { return rows_; }

 private:
  std::string text_;
  int64_t rows_ = 0;
};

std::string str(int64_t v) { return std::to_string(v); }

// Written beside the final name and renamed over it, so a reader never sees half a file.
void write_file(const fs::path& path, const std::string& bytes) {
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
  }
  if (!out) {
    const std::string reason = std::strerror(errno);
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw ExchangeError("export: cannot write " + path.string() + ": " + reason);
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    throw ExchangeError("export: cannot rename " + temp.string() + " to " + path.string() + ": " +
                        ec.message());
  }
}

std::vector<RunRow> select_runs(Store& source, const ExportOptions& options) {
  std::vector<RunRow> all = source.runs();
  std::vector<RunRow> out;
  if (options.run_keys.empty()) {
    out = std::move(all);
  } else {
    const std::set<std::string> wanted(options.run_keys.begin(), options.run_keys.end());
    for (const std::string& key : wanted) {
      const bool known =
          std::any_of(all.begin(), all.end(), [&](const RunRow& r) { return r.run_key == key; });
      if (!known) {
        throw ExchangeError("export: no run " + key + " in " + source.path() +
                            " (`moebench runs --db " + source.path() + "` lists the keys)");
      }
    }
    for (RunRow& r : all) {
      if (wanted.count(r.run_key)) out.push_back(std::move(r));
    }
  }
  if (!options.statuses.empty()) {
    const auto unwanted = [&](const RunRow& r) {
      return std::find(options.statuses.begin(), options.statuses.end(), r.status) ==
             options.statuses.end();
    };
    out.erase(std::remove_if(out.begin(), out.end(), unwanted), out.end());
  }
  return out;
}

}  // namespace

int64_t ExportSummary::runs() const {
  const auto it = rows.find(kRunsFile);
  return it == rows.end() ? 0 : it->second;
}

ExportSummary export_store(Store& source, const fs::path& dir, const ExportOptions& options) {
  const std::vector<RunRow> selected = select_runs(source, options);
  CsvText runs(runs_header()), steps(steps_header()), layer_stats(layer_stats_header()),
      evals(evals_header()), kernel_bench(kernel_bench_header()), env(env_header());
  for (const RunRow& listed : selected) {
    std::optional<RunRecord> record = source.run_record(listed.run_key);
    if (!record) continue;  // deleted since it was listed
    const RunRow& r = record->run;
    const std::string& key = r.run_key;
    runs.add({key, r.config_json, r.method, r.size, str(r.seed), r.commit, r.dirty ? "1" : "0",
              r.torch_version, r.device, r.backend, to_string(r.status), str(r.status_step),
              r.created_at, r.started_at, r.finished_at, format_number(r.wall_s), str(r.tokens),
              r.notes});
    for (const StepRow& s : record->steps) {
      steps.add({key, str(s.step), str(s.tokens), format_number(s.loss), format_number(s.lm_loss),
                 format_number(s.aux_loss), format_number(s.lambda), format_number(s.density),
                 format_number(s.lr), format_number(s.grad_norm), format_number(s.tokens_per_s),
                 format_number(s.elapsed_s)});
    }
    for (const LayerStatRow& s : record->layer_stats) {
      layer_stats.add(
          {key, str(s.step), str(s.layer), str(s.expert), s.metric, format_number(s.value)});
    }
    for (const EvalRow& e : record->evals) {
      evals.add({key, e.task, e.metric, format_number(e.value), str(e.n), format_number(e.ci_low),
                 format_number(e.ci_high), format_number(e.chance),
                 e.theta ? format_number(*e.theta) : "", str(e.step)});
    }
  }
  for (const KernelBenchRow& r : source.kernel_bench()) {
    kernel_bench.add({r.name, r.shape, r.backend, r.dtype, r.metric, format_number(r.value),
                      r.commit, r.device, r.created_at});
  }
  for (const EnvRow& r : source.env_rows()) env.add({r.key, r.value, r.recorded_at});

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw ExchangeError("export: cannot create folder " + dir.string() + ": " +
                        (ec ? ec.message() : "a file of that name exists"));
  }
  std::vector<std::pair<const char*, const CsvText*>> files = {{kRunsFile, &runs},
                                                               {kStepsFile, &steps},
                                                               {kEvalsFile, &evals},
                                                               {kLayerStatsFile, &layer_stats}};
  if (kernel_bench.rows() > 0) files.emplace_back(kKernelBenchFile, &kernel_bench);
  if (env.rows() > 0) files.emplace_back(kEnvFile, &env);

  ExportSummary summary;
  Json listed = Json::object();
  for (const auto& [name, csv] : files) {
    write_file(dir / name, csv->text());
    listed[name] = {{"rows", csv->rows()}, {"sha256", data::sha256_hex(csv->text())}};
    summary.rows[name] = csv->rows();
  }
  std::vector<std::string> statuses;
  for (const RunStatus s : options.statuses) statuses.push_back(to_string(s));
  const Json manifest = {{"format", kExportFormat},
                         {"format_version", kExportFormatVersion},
                         {"schema_version", Store::kSchemaVersion},
                         {"selection", {{"runs", options.run_keys}, {"status", statuses}}},
                         {"files", listed}};
  // The manifest last: until it is renamed into place, the old one (or none) describes the
  // folder, and a reader that finds new files under an old manifest refuses them by checksum.
  write_file(dir / kManifestFile, manifest.dump(2) + "\n");
  for (const char* name : {kKernelBenchFile, kEnvFile}) {
    if (!listed.contains(name)) fs::remove(dir / name, ec);
  }
  // Git must keep the bytes as written (no line-ending conversion), or the checksums fail.
  write_file(dir / ".gitattributes",
             "# moebench export: keep these files byte for byte (manifest.json checksums them)\n"
             "* -text\n");
  return summary;
}

// --- import -------------------------------------------------------------------------------------

namespace {

// One parsed row of one file, with typed access and errors that name the file, line and column.
class Fields {
 public:
  Fields(const std::string& source, const Header& header, const exchange_detail::CsvRecord& record)
      : source_(source), header_(header), record_(record) {}

  const std::string& text(size_t col) const { return record_.fields.at(col); }

  int64_t integer(size_t col) const {
    const std::string& t = text(col);
    int64_t value = 0;
    const auto result = std::from_chars(t.data(), t.data() + t.size(), value);
    if (t.empty() || result.ec != std::errc() || result.ptr != t.data() + t.size()) {
      fail(col, "'" + t + "' is not an integer");
    }
    return value;
  }
  int small_integer(size_t col) const {
    const int64_t v = integer(col);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      fail(col, "'" + text(col) + "' is out of range");
    }
    return static_cast<int>(v);
  }
  double number(size_t col) const {
    try {
      return parse_number(text(col));
    } catch (const std::invalid_argument&) {
      fail(col, "'" + text(col) + "' is not a number (nan, inf and -inf are spelled out)");
    }
  }
  // "" (an empty field) = none.
  std::optional<double> optional_number(size_t col) const {
    if (text(col).empty()) return std::nullopt;
    return number(col);
  }
  std::string stamp(size_t col) const {
    if (text(col).empty()) fail(col, "the time is empty");
    return text(col);
  }

  [[noreturn]] void fail(size_t col, const std::string& what) const {
    throw ExchangeError(source_ + " line " + std::to_string(record_.line) + ", column " +
                        header_.at(col) + ": " + what);
  }
  [[noreturn]] void fail_row(const std::string& what) const {
    throw ExchangeError(source_ + " line " + std::to_string(record_.line) + ": " + what);
  }

 private:
  const std::string& source_;
  const Header& header_;
  const exchange_detail::CsvRecord& record_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ExchangeError("import: cannot read " + path.string() + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string kRedo = "restore the folder (e.g. `git checkout -- DIR`) or export it again";

// A checked file of the export: present, its checksum and row count as the manifest says, the
// expected header. Returns the data records (header removed).
std::vector<exchange_detail::CsvRecord> read_table(const fs::path& dir, const Json& files,
                                                   const char* name, const Header& header) {
  const std::string path = (dir / name).string();
  if (!files.contains(name)) return {};
  const Json& entry = files[name];
  std::error_code ec;
  if (!fs::is_regular_file(dir / name, ec)) {
    throw ExchangeError("import: " + path + " is missing (manifest.json lists it); " + kRedo);
  }
  const std::string bytes = read_bytes(dir / name);
  const std::string actual = data::sha256_hex(bytes);
  const std::string expected = entry["sha256"].get<std::string>();
  if (actual != expected) {
    throw ExchangeError("import: " + path + ": checksum mismatch (manifest.json has sha256 " +
                        expected + ", the file " + actual + "): the file was edited or damaged; " +
                        kRedo);
  }
  std::vector<exchange_detail::CsvRecord> records = exchange_detail::parse_csv(bytes, path);
  std::vector<std::string> names(header.begin(), header.end());
  if (records.empty() || records.front().fields != names) {
    throw ExchangeError("import: " + path + ": the first line must be the header " +
                        join(names, ",") + "; " + kRedo);
  }
  records.erase(records.begin());
  for (const auto& r : records) {
    if (r.fields.size() != header.size()) {
      throw ExchangeError("import: " + path + " line " + std::to_string(r.line) + ": " +
                          std::to_string(r.fields.size()) + " fields, the header has " +
                          std::to_string(header.size()));
    }
  }
  const int64_t rows = entry["rows"].get<int64_t>();
  if (static_cast<int64_t>(records.size()) != rows) {
    throw ExchangeError("import: " + path + ": " + std::to_string(records.size()) +
                        " rows, manifest.json says " + std::to_string(rows) + "; " + kRedo);
  }
  return records;
}

// The manifest, checked: ours, not newer than this build, every file it lists known and
// described by a row count and a checksum, the four run tables present.
Json read_manifest(const fs::path& dir) {
  const fs::path path = dir / kManifestFile;
  const std::string where = "import: " + path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ExchangeError(where +
                        " is missing: not a moebench export, or an incomplete one (write it "
                        "with `moebench export --db DB --out DIR`)");
  }
  Json manifest;
  try {
    manifest = Json::parse(read_bytes(path));
  } catch (const Json::exception& e) {
    throw ExchangeError(where + ": malformed JSON (" + e.what() + "); " + kRedo);
  }
  if (!manifest.is_object() || manifest.value("format", Json()) != kExportFormat) {
    throw ExchangeError(where + ": not a moebench export manifest (\"format\" is not \"" +
                        kExportFormat + "\")");
  }
  const auto version = [&](const char* key) {
    if (!manifest.contains(key) || !manifest[key].is_number_integer()) {
      throw ExchangeError(where + ": \"" + key + "\" is missing or not an integer; " + kRedo);
    }
    return manifest[key].get<int64_t>();
  };
  const int64_t format_version = version("format_version");
  if (format_version > kExportFormatVersion) {
    throw ExchangeError(where + ": export format version " + std::to_string(format_version) +
                        " is newer than this build's " + std::to_string(kExportFormatVersion) +
                        "; update moebench");
  }
  const int64_t schema_version = version("schema_version");
  if (schema_version > Store::kSchemaVersion) {
    throw ExchangeError(where + ": schema version " + std::to_string(schema_version) +
                        " is newer than this build's " + std::to_string(Store::kSchemaVersion) +
                        "; update moebench");
  }
  if (!manifest.contains("files") || !manifest["files"].is_object()) {
    throw ExchangeError(where + ": no \"files\" object; " + kRedo);
  }
  const std::set<std::string> known = {kRunsFile,       kStepsFile,       kEvalsFile,
                                       kLayerStatsFile, kKernelBenchFile, kEnvFile};
  const auto unknown_file = [&](const std::string& name) {
    return ExchangeError(where + ": lists an unknown file '" + name +
                         "' (written by a newer moebench? then update moebench)");
  };
  const auto bad_entry = [&](const std::string& name) {
    return ExchangeError(where + ": the entry of " + name +
                         " needs \"rows\" (a count) and \"sha256\"; " + kRedo);
  };
  const auto not_listed = [&](const std::string& name) {
    return ExchangeError(where + ": does not list " + name + "; " + kRedo);
  };
  for (const auto& [name, entry] : manifest["files"].items()) {
    if (!known.count(name)) throw unknown_file(name);
    if (!entry.is_object() || !entry.contains("rows") || !entry["rows"].is_number_integer() ||
        entry["rows"].get<int64_t>() < 0 || !entry.contains("sha256") ||
        !entry["sha256"].is_string()) {
      throw bad_entry(name);
    }
  }
  for (const char* name : {kRunsFile, kStepsFile, kEvalsFile, kLayerStatsFile}) {
    if (!manifest["files"].contains(name)) throw not_listed(name);
  }
  return manifest;
}

}  // namespace

ExportContents read_export(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw ExchangeError("import: no export folder at '" + dir.string() +
                        "' (write one with `moebench export --db DB --out DIR`)");
  }
  const Json manifest = read_manifest(dir);
  const Json& files = manifest["files"];
  // Every file is read and checked before any row is converted, so a damaged file anywhere is
  // reported before the (slower) conversion and long before any write.
  const auto run_records = read_table(dir, files, kRunsFile, runs_header());
  const auto step_records = read_table(dir, files, kStepsFile, steps_header());
  const auto eval_records = read_table(dir, files, kEvalsFile, evals_header());
  const auto layer_records = read_table(dir, files, kLayerStatsFile, layer_stats_header());
  const auto bench_records = read_table(dir, files, kKernelBenchFile, kernel_bench_header());
  const auto env_records = read_table(dir, files, kEnvFile, env_header());

  ExportContents out;
  std::unordered_map<std::string, size_t> index;  // run key -> out.runs
  {
    const std::string source = (dir / kRunsFile).string();
    for (const auto& record : run_records) {
      const Fields f(source, runs_header(), record);
      RunRow r;
      r.run_key = f.text(0);
      if (r.run_key.empty()) f.fail(0, "the run key is empty");
      r.config_json = f.text(1);
      r.method = f.text(2);
      r.size = f.text(3);
      r.seed = f.integer(4);
      r.commit = f.text(5);
      if (f.text(6) != "0" && f.text(6) != "1") f.fail(6, "'" + f.text(6) + "' is not 0 or 1");
      r.dirty = f.text(6) == "1";
      r.torch_version = f.text(7);
      r.device = f.text(8);
      r.backend = f.text(9);
      try {
        r.status = parse_run_status(f.text(10));
      } catch (const std::invalid_argument& e) {
        f.fail(10, e.what());
      }
      r.status_step = f.integer(11);
      r.created_at = f.stamp(12);
      r.started_at = f.text(13);
      r.finished_at = f.text(14);
      r.wall_s = f.number(15);
      r.tokens = f.integer(16);
      r.notes = f.text(17);
      if (!index.emplace(r.run_key, out.runs.size()).second) {
        f.fail_row("run " + r.run_key + " appears twice");
      }
      out.runs.push_back({std::move(r), {}, {}, {}});
    }
  }
  // The run a row of another file belongs to; it must be in runs.csv.
  const auto owner = [&](const Fields& f) -> RunRecord& {
    const auto it = index.find(f.text(0));
    if (it == index.end()) f.fail(0, "run " + f.text(0) + " is not in " + kRunsFile);
    return out.runs[it->second];
  };
  {
    const std::string source = (dir / kStepsFile).string();
    std::set<std::pair<std::string, int64_t>> seen;
    for (const auto& record : step_records) {
      const Fields f(source, steps_header(), record);
      RunRecord& run = owner(f);
      const StepRow s{f.integer(1), f.integer(2), f.number(3), f.number(4),
                      f.number(5),  f.number(6),  f.number(7), f.number(8),
                      f.number(9),  f.number(10), f.number(11)};
      if (!seen.emplace(f.text(0), s.step).second) f.fail_row("this run's step appears twice");
      run.steps.push_back(s);
    }
  }
  {
    const std::string source = (dir / kLayerStatsFile).string();
    std::set<std::tuple<std::string, int64_t, int, int, std::string>> seen;
    for (const auto& record : layer_records) {
      const Fields f(source, layer_stats_header(), record);
      RunRecord& run = owner(f);
      const LayerStatRow s{f.integer(1), f.small_integer(2), f.small_integer(3), f.text(4),
                           f.number(5)};
      if (!seen.emplace(f.text(0), s.step, s.layer, s.expert, s.metric).second) {
        f.fail_row("this run's (step, layer, expert, metric) appears twice");
      }
      run.layer_stats.push_back(s);
    }
  }
  {
    const std::string source = (dir / kEvalsFile).string();
    std::set<std::tuple<std::string, std::string, std::string, int64_t, std::string>> seen;
    for (const auto& record : eval_records) {
      const Fields f(source, evals_header(), record);
      RunRecord& run = owner(f);
      EvalRow e;
      e.task = f.text(1);
      e.metric = f.text(2);
      e.value = f.number(3);
      e.n = f.integer(4);
      e.ci_low = f.number(5);
      e.ci_high = f.number(6);
      e.chance = f.number(7);
      e.theta = f.optional_number(8);
      // The store cannot hold a NaN theta apart from the trained one (both are NULL).
      if (e.theta && std::isnan(*e.theta)) f.fail(8, "a threshold is a number or empty");
      e.step = f.integer(9);
      // Keyed by the value, not its spelling: "1" and "1.0" are one threshold to the store.
      const std::string theta = e.theta ? format_number(*e.theta) : "trained";
      if (!seen.emplace(f.text(0), e.task, e.metric, e.step, theta).second) {
        f.fail_row("this run's (task, metric, step, theta) appears twice");
      }
      run.evals.push_back(std::move(e));
    }
  }
  {
    const std::string source = (dir / kKernelBenchFile).string();
    for (const auto& record : bench_records) {
      const Fields f(source, kernel_bench_header(), record);
      out.kernel_bench.push_back({f.text(0), f.text(1), f.text(2), f.text(3), f.text(4),
                                  f.number(5), f.text(6), f.text(7), f.stamp(8)});
    }
  }
  {
    const std::string source = (dir / kEnvFile).string();
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& record : env_records) {
      const Fields f(source, env_header(), record);
      const EnvRow r{f.text(0), f.text(1), f.stamp(2)};
      if (!seen.emplace(r.key, r.recorded_at).second) f.fail_row("this key and time appear twice");
      out.env.push_back(r);
    }
  }
  return out;
}

}  // namespace moebench
