// moebench: the suite's single executable (CLI11). Subcommands live in suite/cli_*.cpp.
// Errors end with "moebench: error: ..." on stderr and exit status 1 (2 for usage errors).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <thread>

#include "datasets/corpus.h"
#include "suite/cli.h"

namespace moebench::cli {

std::string error_line(const std::exception& e, bool verbose) {
  std::string text = e.what();
  // LibTorch errors carry a C++ backtrace after their message; the user gets the message.
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e); c10 && !verbose) {
    text = c10->what_without_backtrace();
  }
  if (verbose) return text;
  // One line: the first one, which names the file, key or value.
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text = text.substr(0, newline) + " (--verbose for detail)";
  return text;
}

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
  bool verbose = false;
  app.add_flag("--verbose", verbose, "on an error, print the full detail (LibTorch backtraces)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A first word that is no command: say which, not only "a subcommand is required".
    std::string known;
    bool is_command = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known += (known.empty() ? "" : ", ") + sub->get_name();
      is_command = is_command || (argc > 1 && sub->check_name(argv[1]));
    }
    if (argc > 1 && argv[1][0] != '-' && !is_command) {
      fmt::print(stderr, "moebench: error: unknown command '{}' (commands: {}; see --help)\n",
                 argv[1], known);
      return 2;
    }
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "moebench: error: {}\n", moebench::cli::error_line(e, verbose));
    return 1;
  }
  return 0;
}
