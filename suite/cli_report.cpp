// `moebench report`: the static HTML report of a results database (index.html and SVG figures).
// Only flags and printing here; the page is built in suite/html_report.cpp and the figures in
// suite/plot.cpp (both torch-free and tested), the comparison table in suite/report.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "suite/cli.h"
#include "suite/config.h"
#include "suite/html_report.h"
#include "suite/report.h"
#include "suite/table.h"
#include "suite/verdict.h"

namespace moebench::cli {
namespace {

// Flag storage; lives as long as the process (CLI11 keeps pointers).
struct ReportArgs {
  std::string db = report::kDefaultDb;
  std::string out;
  std::vector<std::string> runs;
  std::string size;
  std::string baseline = "topk";
  bool all = false;
};

}  // namespace

void add_report_command(CLI::App& app, GlobalOptions& /*global*/) {
  static ReportArgs args;
  auto* cmd = app.add_subcommand(
      "report",
      "write a static HTML report of the results database: DIR/index.html (self-contained, opens "
      "offline) with SVG figures beside it: validation and training loss per method and setup "
      "(mean and band over seeds; runs whose configs differ apart from the seed are drawn "
      "apart, as `moebench verdict` pairs them), density and lambda with the target rho*, the "
      "theta sweep, active experts per token, per-layer expert load heat-maps, kernel benchmark "
      "ratios; and the comparison table beside the paper's numbers (its rows split by setup "
      "too). Figures are drawn by gnuplot (installed by "
      "scripts/setup.sh); each figure's gnuplot script and data are kept in DIR/plot-data/");
  cmd->add_option("--db", args.db, "results database")->capture_default_str();
  cmd->add_option("--out", args.out,
                  "report folder (created if missing; files of an earlier report there are "
                  "overwritten)")
      ->required();
  cmd->add_option("--runs", args.runs,
                  "comma-separated run keys (or unique prefixes, see `moebench runs`) whose "
                  "per-layer expert load heat-maps to draw; default: the lowest seed of each "
                  "method, size and setup")
      ->delimiter(',');
  cmd->add_option("--size", args.size,
                  "only figures of runs of this size (tiny, micro, S, M, L or a config file "
                  "name); default: every size, a section each. The comparison table keeps "
                  "every size, so the paper's S/M/L numbers stay beside ours");
  cmd->add_option("--baseline", args.baseline,
                  "method the comparison table's delta column compares against")
      ->capture_default_str();
  cmd->add_flag("--all", args.all,
                "include runs that are not 'done' (running, interrupted, diverged, failed)");
  cmd->callback([] {
    const auto store = report::open_results(args.db, Store::Mode::kReadOnly);
    html::ReportOptions options;
    options.out_dir = args.out;
    options.db_label = args.db;
    options.size = args.size;
    options.all = args.all;
    options.heatmap_runs = args.runs;

    report::TableOptions table;
    table.published = true;
    table.all = args.all;
    table.baseline = args.baseline;
    // Rows split by setup as the figures' bands do: the config keys in which runs of one method
    // and size differ become group-by columns (only where some method has several setups, so
    // the table is unchanged otherwise). Keys this build no longer knows cannot be grouped by.
    std::vector<RunRow> shown = store->runs();
    shown.erase(
        std::remove_if(shown.begin(), shown.end(),
                       [](const RunRow& r) { return !args.all && r.status != RunStatus::kDone; }),
        shown.end());
    const std::vector<std::string> known = config_keys();
    for (const std::string& key : html::setup_columns(shown)) {
      if (std::find(known.begin(), known.end(), key) != known.end()) table.group_by.push_back(key);
    }
    try {
      options.comparison = report::comparison_table(*store, table);
    } catch (const report::ReportError& e) {
      // No (finished) runs: the page can still show the kernel benchmarks, and write_report
      // fails on its own when there is nothing at all to show.
      fmt::print(stderr, "note: no comparison table: {}\n", e.what());
    }

    // The claims judged from paired seeds (`moebench verdict`), the same table on the page.
    verdict::Options claims;
    claims.size = args.size;
    std::vector<std::string> caveats;
    claims.label = [&caveats](const std::string& method) {
      return report::method_label(method, caveats);
    };
    try {
      options.claims = verdict::claims_table(verdict::judge(*store, claims), claims);
      options.claims.footnotes.insert(options.claims.footnotes.end(), caveats.begin(),
                                      caveats.end());
    } catch (const verdict::VerdictError& e) {
      fmt::print(stderr, "note: no claims table: {}\n", e.what());
    }

    const html::ReportResult result = html::write_report(*store, options);
    fmt::print("wrote {}: {} figures, {} runs\n", result.index.string(), result.images.size(),
               result.runs);
    for (const std::string& note : result.notes) fmt::print("  note: {}\n", note);
  });
}

}  // namespace moebench::cli
