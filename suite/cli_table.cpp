// `moebench table` and `moebench runs`: the comparison table and the run listing of the store.
// Only flags and printing here; the logic is in suite/report.cpp (torch-free, tested).
#include "suite/cli.h"
#include "suite/report.h"
#include "suite/table.h"

namespace moebench::cli {
namespace {

// Flag storage; lives as long as the process (CLI11 keeps pointers).
struct TableArgs {
  std::string db = report::kDefaultDb;
  std::string format = "term";
  report::TableOptions options;
  std::string runs_db = report::kDefaultDb;
  std::string runs_format = "term";
};

void print(const Table& table, const std::string& format_name) {
  print_table(table, report::parse_format(format_name));
}

}  // namespace

void add_table_commands(CLI::App& app, GlobalOptions& /*global*/) {
  static TableArgs args;
  const std::vector<std::string> formats = {"term", "md", "csv"};

  auto* table = app.add_subcommand(
      "table",
      "comparison table of the stored runs: one row per group (default method, size) with "
      "final val loss mean ± std over seeds, its delta against a baseline method, perplexity, "
      "each zero-shot task's primary accuracy (chance level in the header), tokens/s, density, "
      "lambda, balance (CV, MaxVio, entropy, dead experts) and wall time");
  table->add_option("--db", args.db, "results database")->capture_default_str();
  table
      ->add_option("--group-by", args.options.group_by,
                   "comma-separated key columns: method, size, seed, status, device, backend, "
                   "git_commit, dirty, torch_version, or config keys such as moe.theta")
      ->delimiter(',')
      ->capture_default_str();
  table->add_option("--format", args.format, "term (aligned), md (GitHub markdown) or csv")
      ->check(CLI::IsMember(formats))
      ->capture_default_str();
  table->add_option("--baseline", args.options.baseline, "method the delta column compares against")
      ->capture_default_str();
  table->add_flag("--published", args.options.published,
                  "add the published paper-scale perplexities (S/M/L) as separate rows");
  table->add_flag("--all", args.options.all,
                  "include runs that are not 'done' (running, interrupted, diverged, failed); "
                  "their rows are marked");
  table->callback([] {
    const auto store = report::open_results(args.db, Store::Mode::kReadOnly);
    print(report::comparison_table(*store, args.options), args.format);
  });

  auto* runs = app.add_subcommand(
      "runs", "list the stored runs: key, method, size, seed, status, step, wall time, val loss");
  runs->add_option("--db", args.runs_db, "results database")->capture_default_str();
  runs->add_option("--format", args.runs_format, "term (aligned), md (GitHub markdown) or csv")
      ->check(CLI::IsMember(formats))
      ->capture_default_str();
  runs->callback([] {
    const auto store = report::open_results(args.runs_db, Store::Mode::kReadOnly);
    print(report::runs_table(*store), args.runs_format);
  });
}

}  // namespace moebench::cli
