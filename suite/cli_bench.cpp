// `moebench bench import` / `bench show`: Google Benchmark JSON (kernels/bench) into the store's
// kernel_bench table, and the latest result of each benchmark. Spec: shared/DESIGN.md "Configs
// and the store" (llama-bench-style rows: every row carries its parameters, commit and device).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "suite/cli.h"
#include "suite/env_info.h"
#include "suite/report.h"
#include "suite/store.h"
#include "suite/table.h"

namespace moebench::cli {
namespace {

using Json = nlohmann::json;

// Fields every Google Benchmark result has; any other number in a result is a user counter.
const std::set<std::string> kStandardFields = {"name",
                                               "family_index",
                                               "per_family_instance_index",
                                               "run_name",
                                               "run_type",
                                               "repetitions",
                                               "repetition_index",
                                               "threads",
                                               "iterations",
                                               "real_time",
                                               "cpu_time",
                                               "time_unit",
                                               "aggregate_name",
                                               "aggregate_unit",
                                               "error_occurred",
                                               "error_message",
                                               "label"};

// Name segments Google Benchmark appends for its own options; they are not parameters.
bool is_runner_segment(const std::string& seg) {
  if (seg == "manual_time" || seg == "real_time" || seg == "process_time") return true;
  for (const char* key : {"iterations:", "repeats:", "threads:", "min_time:", "min_warmup_time:"}) {
    if (seg.rfind(key, 0) == 0) return true;
  }
  return false;
}

double to_ms(double value, const std::string& unit, const std::string& name) {
  if (unit == "ns") return value * 1e-6;
  if (unit == "us") return value * 1e-3;
  if (unit == "ms") return value;
  if (unit == "s") return value * 1e3;
  throw std::runtime_error("benchmark '" + name + "': unknown time_unit '" + unit +
                           "' (expected ns, us, ms or s)");
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

struct ParsedName {
  std::string name;   // without the runner's segments
  std::string shape;  // the /key:value parameters other than backend and dtype
  std::string backend;
  std::string dtype;
};

ParsedName parse_name(const std::string& full) {
  ParsedName p;
  std::vector<std::string> kept, shape;
  std::stringstream in(full);
  std::string seg;
  bool first = true;
  while (std::getline(in, seg, '/')) {
    if (!first && is_runner_segment(seg)) continue;
    kept.push_back(seg);
    const auto colon = seg.find(':');
    if (!first && colon != std::string::npos) {
      const std::string key = seg.substr(0, colon), value = seg.substr(colon + 1);
      if (key == "backend") {
        p.backend = value;
      } else if (key == "dtype") {
        p.dtype = value;
      } else {
        shape.push_back(seg);
      }
    }
    first = false;
  }
  for (size_t i = 0; i < kept.size(); ++i) p.name += (i ? "/" : "") + kept[i];
  for (size_t i = 0; i < shape.size(); ++i) p.shape += (i ? "/" : "") + shape[i];
  return p;
}

struct ImportResult {
  std::vector<KernelBenchRow> rows;
  std::vector<std::string> skipped;  // "name: error message" of benchmarks that failed
};

// One row per (benchmark, metric): real_time_ms and every user counter. With repetitions only
// the median aggregate of a benchmark is kept. Throws naming the file and the problem.
ImportResult parse_benchmark_json(const std::string& text, const std::string& source,
                                  const std::string& commit) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::exception& e) {
    throw std::runtime_error(source + ": malformed JSON (" + e.what() +
                             "); write it with --benchmark_out=FILE --benchmark_out_format=json");
  }
  if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array()) {
    throw std::runtime_error(source +
                             ": not Google Benchmark JSON (no 'benchmarks' array); write it "
                             "with --benchmark_out=FILE --benchmark_out_format=json");
  }
  std::string host, device_kind;
  if (doc.contains("context") && doc["context"].is_object()) {
    const Json& ctx = doc["context"];
    if (ctx.contains("host_name") && ctx["host_name"].is_string()) host = ctx["host_name"];
    if (ctx.contains("moebench_device") && ctx["moebench_device"].is_string()) {
      device_kind = ctx["moebench_device"];
    }
  }
  std::string device = host.empty() ? device_kind : host;
  if (!host.empty() && !device_kind.empty()) device = host + "/" + device_kind;
  if (device.empty()) device = "cpu";

  const Json& benchmarks = doc["benchmarks"];
  std::set<std::string> has_median;  // run names with a median aggregate
  for (const Json& b : benchmarks) {
    if (b.is_object() && b.value("run_type", "") == "aggregate" &&
        b.value("aggregate_name", "") == "median" && b.contains("run_name")) {
      has_median.insert(b["run_name"].get<std::string>());
    }
  }

  ImportResult out;
  for (size_t i = 0; i < benchmarks.size(); ++i) {
    const Json& b = benchmarks[i];
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string()) {
      throw std::runtime_error(fmt::format("{}: benchmarks[{}] has no 'name' string", source, i));
    }
    const std::string full = b["name"];
    if (b.value("error_occurred", false)) {
      out.skipped.push_back(full + ": " + b.value("error_message", std::string("(no message)")));
      continue;
    }
    const std::string run_name = b.value("run_name", full);
    const std::string run_type = b.value("run_type", "iteration");
    if (run_type == "aggregate" && b.value("aggregate_name", "") != "median") continue;
    if (run_type != "aggregate" && has_median.count(run_name)) continue;
    // Aggregates carry "_median" on the name; the row is keyed by the run's own name.
    const ParsedName p = parse_name(run_name);
    if (!b.contains("real_time") || !b["real_time"].is_number() || !b.contains("time_unit") ||
        !b["time_unit"].is_string()) {
      throw std::runtime_error(
          fmt::format("{}: benchmark '{}' lacks a numeric real_time or a time_unit", source, full));
    }
    auto add = [&](const std::string& metric, double value) {
      out.rows.push_back({p.name, p.shape, p.backend, p.dtype, metric, value, commit, device, ""});
    };
    add("real_time_ms",
        to_ms(b["real_time"].get<double>(), b["time_unit"].get<std::string>(), full));
    for (const auto& [key, value] : b.items()) {
      if (kStandardFields.count(key) || !value.is_number()) continue;
      add(key, value.get<double>());
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot read '" + path +
                             "': give the file bench_kernels wrote with --benchmark_out");
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Four significant digits: CPU rates are milli-TFLOP/s, GPU ones hundreds.
std::string fixed(double v) { return std::isnan(v) ? "-" : fmt::format("{:.4g}", v); }

// The latest import of each benchmark name, one row each, in the order they were inserted.
Table latest_table(Store& store) {
  const std::vector<KernelBenchRow> rows = store.kernel_bench();
  std::map<std::string, std::string> latest;  // name -> created_at of its newest rows
  for (const auto& r : rows) {
    if (r.created_at > latest[r.name]) latest[r.name] = r.created_at;
  }
  struct Line {
    const KernelBenchRow* first;
    std::map<std::string, double> metrics;
  };
  std::vector<Line> lines;
  std::map<std::string, size_t> index;
  for (const auto& r : rows) {
    if (r.created_at != latest[r.name]) continue;
    auto [it, added] = index.emplace(r.name, lines.size());
    if (added) lines.push_back({&r, {}});
    lines[it->second].metrics[r.metric] = r.value;
  }
  Table t;
  t.columns = {simple_column("bench"),
               simple_column("shape"),
               simple_column("backend"),
               simple_column("dtype"),
               {"ms", {"real_time_ms"}, true},
               {"TFLOP/s", {"tflops"}, true},
               {"×dense", {"ratio_to_dense"}, true},
               simple_column("device"),
               simple_column("commit")};
  for (const Line& l : lines) {
    const KernelBenchRow& r = *l.first;
    auto number = [&](const char* metric) {
      const auto it = l.metrics.find(metric);
      const double v = it == l.metrics.end() ? NAN : it->second;
      return Cell{fixed(v), {std::isnan(v) ? "" : fmt::format("{}", v)}};
    };
    t.rows.push_back({text_cell(r.name.substr(0, r.name.find('/'))), text_cell(r.shape),
                      text_cell(r.backend), text_cell(r.dtype), number("real_time_ms"),
                      number("tflops"), number("ratio_to_dense"), text_cell(r.device),
                      text_cell(r.commit)});
  }
  t.footnotes.push_back(
      "×dense = time of one dense SwiGLU GEMM chain with the same useful FLOPs / this time "
      "(1.0 = at the limit)");
  return t;
}

struct BenchArgs {
  std::string json;
  std::string db = report::kDefaultDb;
  std::string show_db = report::kDefaultDb;
  std::string format = "term";
};

}  // namespace

void add_bench_commands(CLI::App& app, GlobalOptions& /*global*/) {
  static BenchArgs args;
  auto* bench = app.add_subcommand(
      "bench", "kernel benchmark results: import Google Benchmark JSON, show the latest");
  bench->require_subcommand(1);

  auto* import_cmd = bench->add_subcommand(
      "import",
      "store a Google Benchmark JSON file (bench_kernels --benchmark_out=FILE "
      "--benchmark_out_format=json) in the kernel_bench table: one row per benchmark and metric "
      "(real_time_ms and each counter), all in one transaction");
  import_cmd->add_option("--json", args.json, "the benchmark's JSON output")->required();
  import_cmd->add_option("--db", args.db, "results database (created if missing)")
      ->capture_default_str();
  import_cmd->callback([] {
    // Parse everything before opening the store: a bad file leaves no database and no rows.
    // The source tree's commit now (make bench imports right after running the benchmark),
    // marked "-dirty" when tracked files differ from it.
    bool dirty = false;
    std::string commit = source_commit(&dirty);
    if (dirty) commit += "-dirty";
    const ImportResult r = parse_benchmark_json(read_file(args.json), args.json, commit);
    for (const auto& s : r.skipped) fmt::print(stderr, "skipped (benchmark error): {}\n", s);
    if (r.rows.empty()) {
      throw std::runtime_error(args.json + ": no benchmark results to import (" +
                               std::to_string(r.skipped.size()) +
                               " reported an error); rerun the benchmark");
    }
    std::vector<KernelBenchRow> rows = r.rows;
    const std::string stamp = utc_now();  // one stamp: `bench show` groups an import by it
    for (auto& row : rows) row.created_at = stamp;
    Store store(args.db);
    store.insert_kernel_bench(rows);
    fmt::print("imported {} rows ({} skipped benchmarks) from {} into {}\n", rows.size(),
               r.skipped.size(), args.json, args.db);
  });

  auto* show = bench->add_subcommand(
      "show", "the latest stored result of each kernel benchmark: ms, TFLOP/s, ratio to dense");
  show->add_option("--db", args.show_db, "results database")->capture_default_str();
  show->add_option("--format", args.format, "term (aligned), md (GitHub markdown) or csv")
      ->check(CLI::IsMember({"term", "md", "csv"}))
      ->capture_default_str();
  show->callback([] {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(args.show_db, ec)) {
      throw std::runtime_error("no results database at '" + args.show_db +
                               "': run `make bench` or `moebench bench import --json FILE`");
    }
    Store store(args.show_db);
    const Table t = latest_table(store);
    if (t.rows.empty()) {
      throw std::runtime_error("no kernel benchmarks in '" + args.show_db +
                               "': run `make bench` or `moebench bench import --json FILE`");
    }
    print_table(t, parse_format(args.format));
  });
}

}  // namespace moebench::cli
