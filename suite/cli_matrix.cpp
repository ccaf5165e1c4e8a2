// `moebench matrix --plan FILE`: runs every planned run that is not done yet, in order, with
// runs done/left and an ETA; Ctrl-C stops after checkpointing the current run.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <filesystem>

#include "suite/cli.h"
#include "suite/matrix.h"
#include "suite/store.h"
#include "suite/trainer.h"

namespace moebench::cli {
namespace {

struct MatrixArgs {
  std::string plan;
  std::string db = "results/moebench.sqlite";
  std::string checkpoints = "checkpoints";
  bool dry_run = false;
  std::string emit_slurm;  // folder; "" = train here
  std::string slurm_partition;
  std::string slurm_time = "24:00:00";
  int slurm_gpus = 1;
  int slurm_ranks = 1;
};

void on_signal(int) { request_stop(); }

std::string minutes(double s) { return fmt::format("{:.1f} min", s / 60.0); }

}  // namespace

void add_matrix_command(CLI::App& app, GlobalOptions& global) {
  static MatrixArgs args;
  auto* cmd = app.add_subcommand(
      "matrix",
      "run a plan of methods x sizes x seeds (suite/plans/*.toml). Runs are keyed by "
      "hash(config, seed): done runs are skipped, interrupted ones resume from their checkpoint, "
      "so the same command continues a matrix after a crash or Ctrl-C.");
  cmd->add_option("--plan", args.plan, "plan file (TOML: sizes, methods, seeds, set, method_set)")
      ->required();
  cmd->add_option("--db", args.db, "SQLite store")->capture_default_str();
  cmd->add_option("--checkpoints", args.checkpoints, "checkpoint folder")->capture_default_str();
  cmd->add_flag("--dry-run", args.dry_run, "list the runs and their state; train nothing");
  auto* emit = cmd->add_option(
      "--emit-slurm", args.emit_slurm,
      "train nothing here: write DIR/runs.txt (one `moebench train` line per run not yet done "
      "in --db), DIR/matrix.sbatch (a SLURM array job, task i runs line i in a store of its own; "
      "submit it with sbatch) and DIR/merge.sh (merges the tasks' stores into --db)");
  cmd->add_option("--slurm-partition", args.slurm_partition, "partition (default: the cluster's)")
      ->needs(emit);
  cmd->add_option("--slurm-time", args.slurm_time, "time limit per task, HH:MM:SS or D-HH:MM:SS")
      ->capture_default_str()
      ->needs(emit);
  cmd->add_option("--slurm-gpus", args.slurm_gpus,
                  "GPUs per run (with --slurm-ranks: per rank; 0 = CPU-only tasks)")
      ->capture_default_str()
      ->needs(emit);
  cmd->add_option("--slurm-ranks", args.slurm_ranks,
                  "data-parallel ranks per run: srun starts them as the tasks of one array task, "
                  "one GPU each with --slurm-gpus 1")
      ->capture_default_str()
      ->needs(emit);
  cmd->callback([&global] {
    const auto runs = load_plan(args.plan);
    std::vector<bool> done;
    {
      Store store(args.db);
      done = finished_in_store(runs, store);
      for (size_t i = 0; args.dry_run && i < runs.size(); ++i) {
        const auto row = store.find_run(runs[i].run_key);
        fmt::print("{}  {:<13} {:<6} seed {:<4} {}\n", runs[i].run_key, runs[i].method,
                   runs[i].size, runs[i].seed, row ? to_string(row->status) : "new");
      }
    }
    if (args.dry_run) return;
    if (!args.emit_slurm.empty()) {
      std::vector<PlannedRun> pending;
      for (size_t i = 0; i < runs.size(); ++i) {
        if (!done[i]) pending.push_back(runs[i]);
      }
      SlurmOptions so;
      so.dir = args.emit_slurm;
      // The jobs run this very executable (on a shared file system) unless it cannot be found.
      std::error_code ec;
      const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
      so.moebench = ec ? "moebench" : self.string();
      so.db = args.db;
      so.checkpoints = args.checkpoints;
      so.data_dir = global.data().string();
      so.plan = args.plan;
      so.partition = args.slurm_partition;
      so.time = args.slurm_time;
      so.gpus = args.slurm_gpus;
      so.ranks = args.slurm_ranks;
      so.cpus = global.threads;
      emit_slurm(pending, so);
      const auto dir = std::filesystem::absolute(args.emit_slurm).lexically_normal();
      fmt::print("matrix {}: {} runs, {} already done; wrote {} lines to {}\n", args.plan,
                 runs.size(), runs.size() - pending.size(), pending.size(),
                 (dir / "runs.txt").string());
      if (!pending.empty())
        fmt::print("submit with: sbatch {}\nwhen the array has ended: sh {}\n",
                   (dir / "matrix.sbatch").string(), (dir / "merge.sh").string());
      return;
    }
    size_t left = 0;
    for (bool d : done) left += !d;
    fmt::print(stderr, "matrix {}: {} runs, {} done, {} to run\n", args.plan, runs.size(),
               runs.size() - left, left);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    double trained_s = 0;
    size_t trained = 0, failed = 0, busy = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (done[i]) continue;
      const auto& r = runs[i];
      const std::string eta =
          trained > 0 ? minutes(trained_s / trained * static_cast<double>(left)) : "?";
      fmt::print(stderr, "[{}/{}] {} {} seed {} ({} left, ETA {})\n", runs.size() - left + 1,
                 runs.size(), r.method, r.size, r.seed, left, eta);
      TrainOptions o;
      o.cfg = r.cfg;
      if (global.threads > 0) o.cfg.train.threads = global.threads;
      o.size_name = r.size;
      o.db_path = args.db;
      o.data_dir = global.data();
      o.checkpoint_root = args.checkpoints;
      const auto t0 = std::chrono::steady_clock::now();
      TrainResult res;
      try {
        res = train(o);
      } catch (const RunBusy& e) {
        // Another worker on the same plan and database has it: move on.
        fmt::print(stderr, "skipping: {}\n", e.what());
        ++busy;
        --left;
        continue;
      } catch (const std::exception& e) {
        // One broken run must not cost the rest of the matrix; the store marks it failed.
        fmt::print(stderr, "run {} ({} {}) failed: {}\n", r.run_key, r.method, r.size, e.what());
        ++failed;
        --left;
        continue;
      }
      if (res.status == RunStatus::kInterrupted) {
        fmt::print(stderr, "matrix stopped; the same command resumes it\n");
        std::exit(130);
      }
      trained_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++trained;
      --left;
    }
    fmt::print(stderr, "matrix {}: {} trained, {} failed, {} left to other workers\n", args.plan,
               trained, failed, busy);
    if (failed > 0) std::exit(1);
  });
}

}  // namespace moebench::cli
