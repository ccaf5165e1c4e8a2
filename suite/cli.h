// Subcommand registration for the moebench executable: each cli_*.cpp adds its commands.
// Commands throw std::exception on failure; main() prints the message and exits non-zero.
#pragma once

#include <CLI/CLI.hpp>
#include <exception>
#include <filesystem>
#include <string>

namespace moebench::cli {

// Options every command can see (set on the top-level app).
struct GlobalOptions {
  std::string data_dir;  // --data, default $MOEBENCH_DATA or ./data
  int threads = 0;       // --threads, 0 = all cores
  std::filesystem::path data() const;
};

// The one line a user sees for a failed command: the message without LibTorch's backtrace and
// without continuation lines, unless verbose.
std::string error_line(const std::exception& e, bool verbose);

void add_data_commands(CLI::App& app, GlobalOptions& global);
void add_env_command(CLI::App& app, GlobalOptions& global);
void add_layer_command(CLI::App& app, GlobalOptions& global);
void add_table_commands(CLI::App& app, GlobalOptions& global);
void add_train_command(CLI::App& app, GlobalOptions& global);
void add_matrix_command(CLI::App& app, GlobalOptions& global);
void add_flops_command(CLI::App& app, GlobalOptions& global);
void add_eval_command(CLI::App& app, GlobalOptions& global);
void add_bench_commands(CLI::App& app, GlobalOptions& global);
void add_report_command(CLI::App& app, GlobalOptions& global);
void add_verdict_command(CLI::App& app, GlobalOptions& global);
void add_exchange_commands(CLI::App& app, GlobalOptions& global);

}  // namespace moebench::cli
