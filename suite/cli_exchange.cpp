// `moebench export`, `moebench import` and `moebench merge`: moving runs between results
// databases and committed export folders. Only flags and printing here; the merge rule and the
// file layout are in suite/exchange.h (torch-free, tested in suite/tests/exchange_test.cpp).
#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/cli.h"
#include "suite/exchange.h"
#include "suite/report.h"
#include "suite/store.h"

namespace moebench::cli {
namespace {

namespace fs = std::filesystem;

// Exit status of an import or merge that finished everything else but left conflicting runs as
// the target holds them (1 stays "failed", 2 "usage error").
constexpr int kConflictExit = 3;

// Flag storage; lives as long as the process (CLI11 keeps pointers).
struct ExchangeArgs {
  std::string export_db = report::kDefaultDb;
  std::string export_dir;
  std::vector<std::string> export_runs;
  std::vector<std::string> export_statuses;
  std::string import_db = report::kDefaultDb;
  std::string import_dir;
  std::string merge_out;
  std::vector<std::string> merge_inputs;
};

// The summary on stdout, each conflict on stderr.
void print_report(const std::string& label, const MergeReport& report) {
  fmt::print("{}: {}\n", label, report.summary());
  for (const std::string& conflict : report.conflicts) {
    fmt::print(stderr, "conflict: {}\n", conflict);
  }
}

// Ends the command with kConflictExit when there were conflicts. CLI11's RuntimeError makes
// main() return its code without printing anything more, so the line here is the last word.
void exit_on_conflicts(const MergeReport& total, const std::string& target) {
  if (total.conflicts.empty()) return;
  const size_t n = total.conflicts.size();
  fmt::print(stderr,
             "moebench: error: {} conflict{} (listed above): {} keeps what it had for them; "
             "everything else was merged\n",
             n, n == 1 ? "" : "s", target);
  throw CLI::RuntimeError(kConflictExit);
}

// Whether two paths name one file (merging a database into itself).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// Every input must open (or read and check, for an export folder) before the output is created
// or written: a typo in the last of many inputs must not leave a half-merged output behind.
void check_merge_inputs(const std::vector<std::string>& inputs, const std::string& out) {
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (!fs::exists(input, ec)) {
      throw std::runtime_error("merge: no database or export folder at '" + input + "'");
    }
    if (same_file(input, out)) {
      throw std::runtime_error("merge: the input '" + input + "' is the output database itself");
    }
    if (fs::is_directory(input, ec)) {
      read_export(input);
    } else {
      Store probe(input, Store::Mode::kReadOnly);
    }
  }
}

}  // namespace

void add_exchange_commands(CLI::App& app, GlobalOptions& /*global*/) {
  static ExchangeArgs args;
  const std::vector<std::string> statuses = {"running", "done", "diverged", "failed",
                                             "interrupted"};

  auto* export_cmd = app.add_subcommand(
      "export",
      "write a compact, text, git-friendly export of a results database into a folder: runs.csv, "
      "steps.csv, evals.csv, layer_stats.csv (and kernel_bench.csv, env.csv when the database "
      "has such rows), one CSV file per table with the database's column names, numbers in "
      "their shortest exact spelling (nan, inf, -inf spelled out), and manifest.json with the "
      "schema version, row counts and a SHA-256 per file. The same database gives the same "
      "bytes, so the folder can be committed and diffed; `moebench import` loads it back and "
      "anyone can recompute tables from it. Leases are not exported.");
  export_cmd->add_option("--db", args.export_db, "results database to export (opened read-only)")
      ->capture_default_str();
  export_cmd
      ->add_option("--out", args.export_dir,
                   "export folder (created if missing; the files of an earlier export there are "
                   "replaced)")
      ->required();
  export_cmd
      ->add_option("--runs", args.export_runs,
                   "comma-separated run keys to export (default: every run; `moebench runs` lists "
                   "the keys)")
      ->delimiter(',');
  export_cmd
      ->add_option("--status", args.export_statuses,
                   "comma-separated statuses of the runs to export, e.g. done or done,diverged "
                   "(default: any)")
      ->delimiter(',')
      ->check(CLI::IsMember(statuses));
  export_cmd->callback([] {
    ExportOptions options;
    options.run_keys = args.export_runs;
    for (const std::string& status : args.export_statuses) {
      options.statuses.push_back(parse_run_status(status));
    }
    const auto store = report::open_results(args.export_db, Store::Mode::kReadOnly);
    const ExportSummary summary = export_store(*store, args.export_dir, options);
    const auto rows = [&](const char* file) {
      const auto it = summary.rows.find(file);
      return it == summary.rows.end() ? int64_t{0} : it->second;
    };
    fmt::print(
        "exported {} runs ({} steps, {} evals, {} layer_stats rows; {} kernel_bench rows, {} "
        "env rows) from {} into {}\n",
        summary.runs(), rows(kStepsFile), rows(kEvalsFile), rows(kLayerStatsFile),
        rows(kKernelBenchFile), rows(kEnvFile), args.export_db, args.export_dir);
    if (summary.runs() == 0) {
      fmt::print(stderr, "note: no run matched; the export holds no runs\n");
    }
  });

  auto* import_cmd = app.add_subcommand(
      "import",
      "load an export folder (written by `moebench export`) into a results database, created if "
      "missing. The folder is checked first (manifest, every file's SHA-256 and row count, every "
      "value); a damaged or edited file is refused before any row is written. Runs merge by run "
      "key as in `moebench merge`: new runs are copied, identical ones skipped (importing twice "
      "changes nothing), unfinished runs are replaced by finished ones, and conflicting copies "
      "are reported and left as the database has them (exit status 3).");
  import_cmd->add_option("--db", args.import_db, "results database to load into")
      ->capture_default_str();
  import_cmd->add_option("DIR", args.import_dir, "export folder (with manifest.json)")->required();
  import_cmd->callback([] {
    // Read and checked before the database is opened: a bad folder creates no database.
    const ExportContents contents = read_export(args.import_dir);
    Store target(args.import_db);
    const MergeReport report = merge_contents(contents, target);
    print_report("imported " + args.import_dir + " into " + args.import_db, report);
    exit_on_conflicts(report, args.import_db);
  });

  auto* merge = app.add_subcommand(
      "merge",
      "combine results databases (say, one per cluster job) into OUT, created if missing; an "
      "input may also be an export folder. Runs are keyed by run key, one transaction per run: "
      "a run missing from OUT is copied with all its rows; an identical one is skipped, so "
      "merging twice changes nothing; a run unfinished in OUT (running, interrupted, failed) and "
      "finished in the input (done, diverged) is replaced by the input's (\"updated\"), the "
      "other way round OUT's is kept (\"superseded\"); any other difference is a conflict, "
      "printed with the run's key, method, size, seed and what differs, and OUT keeps its copy. "
      "Leases are never copied; kernel_bench and env rows are added when OUT lacks them. Exit "
      "status 3 when there were conflicts (after merging everything else).");
  merge->add_option("OUT", args.merge_out, "the database to merge into")->required();
  merge->add_option("IN", args.merge_inputs, "databases (opened read-only) or export folders")
      ->required();
  merge->callback([] {
    check_merge_inputs(args.merge_inputs, args.merge_out);
    Store out(args.merge_out);
    MergeReport total;
    for (const std::string& input : args.merge_inputs) {
      MergeReport report;
      std::error_code ec;
      if (fs::is_directory(input, ec)) {
        report = merge_contents(read_export(input), out);
      } else {
        Store source(input, Store::Mode::kReadOnly);
        report = merge_store(source, out);
      }
      print_report(input, report);
      total += report;
    }
    if (args.merge_inputs.size() > 1)
      fmt::print("total into {}: {}\n", args.merge_out, total.summary());
    exit_on_conflicts(total, args.merge_out);
  });
}

}  // namespace moebench::cli
