// `moebench train`: one run from a named config or TOML file plus --set overrides.
// Ctrl-C checkpoints and marks the run interrupted; the same command resumes it.
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <thread>

#include "suite/cli.h"
#include "suite/config.h"
#include "suite/distributed.h"
#include "suite/launch.h"
#include "suite/trainer.h"

namespace moebench::cli {
namespace {

struct TrainArgs {
  std::string config = "micro";
  std::vector<std::string> sets;
  std::string db = "results/moebench.sqlite";
  std::string checkpoints = "checkpoints";
  bool quiet = false;
  int nproc = 1;
  int dist_timeout_s = 600;
};

void on_signal(int) { request_stop(); }

}  // namespace

void add_train_command(CLI::App& app, GlobalOptions& global) {
  static TrainArgs args;
  auto* train_cmd = app.add_subcommand(
      "train",
      "train one run and store it in SQLite. The run key is a hash of the full config and the "
      "seed: a finished run is skipped, an interrupted one resumes from its checkpoint. Exit "
      "status: 0 done, 3 diverged, 130 interrupted.");
  train_cmd
      ->add_option("--config", args.config,
                   "named config (tiny, micro, S, M, L) or a TOML file (which may say base = "
                   "\"micro\")")
      ->capture_default_str();
  train_cmd->add_option("--set", args.sets,
                        "override a key, e.g. --set moe.method=topk --set train.steps=50 "
                        "(repeatable; unknown keys are errors)");
  train_cmd->add_option("--db", args.db, "SQLite store")->capture_default_str();
  train_cmd->add_option("--checkpoints", args.checkpoints, "checkpoint folder (one per run key)")
      ->capture_default_str();
  train_cmd->add_flag("--quiet", args.quiet, "no progress line");
  train_cmd
      ->add_option("--nproc", args.nproc,
                   "data parallel on this machine: start N processes (ranks) over Gloo, each "
                   "training its share of every global batch with train.threads / N threads. "
                   "Launched by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, ...) or srun (SLURM's "
                   "variables), `moebench train` joins that launch instead (README, Clusters)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  train_cmd
      ->add_option("--dist-timeout", args.dist_timeout_s,
                   "data parallel: seconds a rank waits in a collective (for a rank that died "
                   "or hangs) before the run fails")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  train_cmd->callback([&global] {
    const dist::LaunchEnv launch = dist::launch_env();
    if (args.nproc > 1) {
      if (launch.distributed()) {
        throw std::invalid_argument(
            fmt::format("--nproc {} inside a launch that already has {} ranks ({}); drop --nproc",
                        args.nproc, launch.world, launch.launcher));
      }
      if (!dist::available()) {
        throw std::runtime_error(
            "this moebench was built without c10d's Gloo backend, so --nproc cannot work; "
            "install libgloo-dev (scripts/setup.sh does) and rebuild");
      }
      std::exit(launch_local_ranks(args.nproc, own_command_line_without("--nproc")));
    }
    TrainOptions o;
    o.cfg = load_config(args.config, args.sets);
    if (global.threads > 0) o.cfg.train.threads = global.threads;
    // The ranks on one machine share its cores.
    if (global.threads <= 0 && launch.local_world > 1) {
      const int all = o.cfg.train.threads > 0
                          ? o.cfg.train.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      o.cfg.train.threads = std::max(1, all / launch.local_world);
    }
    o.launch = launch;
    o.dist_timeout = std::chrono::seconds(args.dist_timeout_s);
    o.size_name =
        args.config.find('/') == std::string::npos && args.config.find(".toml") == std::string::npos
            ? args.config
            : std::filesystem::path(args.config).stem().string();
    o.db_path = args.db;
    o.data_dir = global.data();
    o.checkpoint_root = args.checkpoints;
    o.quiet = args.quiet;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const TrainResult r = train(o);
    if (r.rank != 0) {
      // Rank 0 reports the run; the others only say how their part ended.
    } else if (r.skipped) {
      fmt::print("run {} is already {} in {} ({} steps); nothing to do\n", r.run_key,
                 to_string(r.status), args.db, r.steps);
    } else {
      // A run resumed at its last step only evaluates: no training throughput to show.
      fmt::print(
          "run {}: {} after {} steps, val loss {:.4f}, {}{:.1f} s{}\n", r.run_key,
          to_string(r.status), r.steps, r.final_val_loss,
          r.tokens_per_s > 0 ? fmt::format("{:.0f} tokens/s, ", r.tokens_per_s) : "", r.wall_s,
          r.final_eval_s > 0 ? fmt::format(" + {:.1f} s final evaluation", r.final_eval_s) : "");
    }
    if (r.status == RunStatus::kDiverged) std::exit(3);
    if (r.status == RunStatus::kInterrupted) std::exit(130);
  });
}

}  // namespace moebench::cli
