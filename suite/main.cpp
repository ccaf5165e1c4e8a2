// moebench: the suite's single executable (CLI11). Subcommands live in suite/cli_*.cpp.
// Errors end with "moebench: error: ..." on stderr and exit status 1 (2 for usage errors).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <thread>

#include "datasets/corpus.h"
#include "kernels/blas_runtime.h"
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

namespace {

// When parsing stopped at a command that needs a sub-command and did not get a known one: the
// message naming the word and the commands it could have been; "" otherwise.
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* cur = &app;
  std::string path = "moebench";
  int pos = 0;  // where the deepest parsed command's name stands in argv
  while (!cur->get_subcommands().empty()) {
    cur = cur->get_subcommands().front();
    path += " " + cur->get_name();
    while (++pos < argc && argv[pos] != cur->get_name()) {
    }
  }
  if (cur->get_require_subcommand_min() == 0) return "";
  std::string known;
  for (const auto* sub : cur->get_subcommands([](CLI::App*) { return true; })) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
  }
  // The first word after it that is neither an option nor an option's value.
  for (int i = pos + 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word[0] == '-') {
      const CLI::Option* opt = cur->get_option_no_throw(word.substr(0, word.find('=')));
      if (opt && word.find('=') == std::string::npos && opt->get_items_expected_min() > 0) ++i;
      continue;
    }
    return fmt::format("unknown command '{}' for `{}` (commands: {}; see {} --help)", word, path,
                       known, path);
  }
  return fmt::format("`{}` needs a command: {} (see {} --help)", path, known, path);
}

}  // namespace

std::filesystem::path GlobalOptions::data() const {
  return data_dir.empty() ? data::default_data_dir() : std::filesystem::path(data_dir);
}

}  // namespace moebench::cli

int main(int argc, char** argv) {
  moebench::kernels::use_native_blas_kernels(argv);
  moebench::kernels::keep_tensor_memory();
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
  moebench::cli::add_report_command(app, global);
  moebench::cli::add_verdict_command(app, global);
  moebench::cli::add_exchange_commands(app, global);
  bool verbose = false;
  app.add_flag("--verbose", verbose, "on an error, print the full detail (LibTorch backtraces)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A word that is no command (at the top or under `data`, `table`, ...): say which, not only
    // CLI11's "a subcommand is required".
    const std::string unknown =
        e.get_exit_code() != 0 ? moebench::cli::unknown_command(app, argc, argv) : "";
    if (!unknown.empty()) {
      fmt::print(stderr, "moebench: error: {}\n", unknown);
      return 2;
    }
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "moebench: error: {}\n", moebench::cli::error_line(e, verbose));
    return 1;
  }
  return 0;
}
