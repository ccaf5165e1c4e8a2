// moebench: the suite's single executable (CLI11). Subcommands live in suite/cli_*.cpp.
// Errors end with "moebench: error: ..." on stderr and exit status 1 (2 for usage errors).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <thread>

#include "datasets/corpus.h"
#include "suite/cli.h"

namespace moebench::cli {

std::filesystem::path GlobalOptions::data() const {
  return data_dir.empty() ? data::default_data_dir() : std::filesystem::path(data_dir);
}

}  // namespace moebench::cli

int main(int argc, char** argv) {
  using moebench::cli::GlobalOptions;
  CLI::App app{
      "moebench: trains and evaluates Routing-Free MoE beside its baselines (top-k, Switch, "
      "ReMoE, AoE, Self-Routing, dense) on one transformer, one data pipeline and shared expert "
      "kernels; every run is stored in SQLite.\n\nStart with `moebench data fetch`, then "
      "`moebench data prepare --vocab gpt2`; `moebench SUBCOMMAND --help` explains each command."};
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--data", global.data_dir,
                 "data cache folder (tarballs, extracted corpus, vocabularies, token shards); "
                 "default $MOEBENCH_DATA or ./data")
      ->envname("MOEBENCH_DATA");
  app.add_option("--threads", global.threads, "CPU threads for LibTorch and tokenizing (0 = all)")
      ->check(CLI::Range(0, 1024));
  moebench::cli::add_data_commands(app, global);
  moebench::cli::add_env_command(app, global);
  moebench::cli::add_layer_command(app, global);
  moebench::cli::add_table_commands(app, global);
  moebench::cli::add_train_command(app, global);
  moebench::cli::add_matrix_command(app, global);
  moebench::cli::add_flops_command(app, global);
  moebench::cli::add_eval_command(app, global);
  moebench::cli::add_bench_commands(app, global);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "moebench: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
