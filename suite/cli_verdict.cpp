// `moebench verdict`: the paper's claims judged from paired seeds, and each method's
// seed-to-seed spread. Only flags and printing here; the logic is in suite/verdict.cpp
// (torch-free, tested) and the statistics in suite/stats.cpp.
#include <cstdio>
#include <string>
#include <vector>

#include "suite/cli.h"
#include "suite/report.h"
#include "suite/table.h"
#include "suite/verdict.h"

namespace moebench::cli {
namespace {

// Flag storage; lives as long as the process (CLI11 keeps pointers).
struct VerdictArgs {
  std::string db = report::kDefaultDb;
  std::string format = "term";
  std::string table = "both";
  verdict::Options options;
};

}  // namespace

void add_verdict_command(CLI::App& app, GlobalOptions& /*global*/) {
  static VerdictArgs args;
  const std::vector<std::string> formats = {"term", "md", "csv"};
  const std::vector<std::string> tables = {"claims", "spread", "both"};

  auto* cmd = app.add_subcommand(
      "verdict",
      "judge the paper's claims from paired seeds: for each claim (Routing-Free below top-k, AoE "
      "and ReMoE in val loss; ReMoE and AoE below top-k; RF's density held at rho* after "
      "warm-up; theta trading compute for loss; Self-Routing's higher routing entropy than "
      "top-k at similar loss) the per-seed differences of 'done' runs with the same size and "
      "seed, their mean, a 95% t-interval and a verdict (holds, reversed, equivalent within "
      "--margin, or undecided with the seeds the observed spread would need), beside the "
      "published figure; then each method's seed-to-seed spread of the final val loss. Train "
      "several seeds first, e.g. a plan with seeds = [1, 2, 3] for `moebench matrix`");
  cmd->add_option("--db", args.db, "results database")->capture_default_str();
  cmd->add_option("--format", args.format,
                  "term (aligned), md (GitHub markdown) or csv (with --table both: the claims, "
                  "an empty line, then the spread; notes go to stderr)")
      ->check(CLI::IsMember(formats))
      ->capture_default_str();
  cmd->add_option("--margin", args.options.margin,
                  "equivalence margin of the val loss claims, in nats: a difference whose 95% "
                  "interval lies inside ±margin is 'equivalent' (two one-sided t-tests)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--density-margin", args.options.density_margin,
                  "how far RF's mean density after warm-up may sit from rho* for its claim to "
                  "hold")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--size", args.options.size, "judge only the runs of this size (default: all)");
  cmd->add_option("--table", args.table,
                  "claims (the verdicts), spread (mean, std, min, max per method) or both")
      ->check(CLI::IsMember(tables))
      ->capture_default_str();
  cmd->callback([] {
    const Format format = report::parse_format(args.format);
    const auto store = report::open_results(args.db, Store::Mode::kReadOnly);
    // Methods whose file states a caveat are marked as in every other table; their notes go
    // under the last table printed.
    std::vector<std::string> caveats;
    verdict::Options options = args.options;
    options.label = [&caveats](const std::string& method) {
      return report::method_label(method, caveats);
    };
    verdict::Verdict result;
    try {
      result = verdict::judge(*store, options);
    } catch (const verdict::VerdictError& e) {
      throw report::ReportError(e.what());
    }
    const bool claims = args.table != "spread";
    const bool spread = args.table != "claims";
    Table claims_table = verdict::claims_table(result, options);
    Table spread_table = verdict::spread_table(result, options);
    Table& last = spread ? spread_table : claims_table;
    last.footnotes.insert(last.footnotes.end(), caveats.begin(), caveats.end());
    if (claims) print_table(claims_table, format);
    if (claims && spread) std::fputs("\n", stdout);
    if (spread) print_table(spread_table, format);
  });
}

}  // namespace moebench::cli
