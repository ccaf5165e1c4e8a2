// The run matrix: a plan (TOML) of methods × sizes × seeds (+ overrides) expanded into runs,
// each keyed by hash(config, seed), so done runs are skipped and interrupted ones resume.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "suite/config.h"
#include "suite/store.h"

namespace moebench {

struct PlannedRun {
  std::string method, size;
  int64_t seed = 0;
  RunConfig cfg;
  std::string run_key;
  // How cfg was built: load_config(base, overrides). base is a named config or the TOML file's
  // path as the plan resolved it, so `moebench train --config base --set ...` rebuilds it.
  std::string base;
  std::vector<std::string> overrides;
};

// Plan file:
//   sizes   = ["micro"]                 # named configs or TOML files (relative to the plan)
//   methods = ["routing_free", "topk"]  # moe.method of each run
//   seeds   = [42]
//   set     = ["train.steps=300"]       # overrides for every run (optional)
//   [method_set]                        # overrides for one method (optional)
//   dense = ["moe.dense_width=iso_param"]
// Throws ConfigError naming the plan file and the bad entry.
std::vector<PlannedRun> load_plan(const std::filesystem::path& plan);

// For each planned run: is it finished in the store (is_finished, the trainer's rule), so that
// the matrix skips it?
std::vector<bool> finished_in_store(const std::vector<PlannedRun>& runs, Store& store);

// SLURM emission (`moebench matrix --emit-slurm DIR`): one `moebench train` line per run in
// DIR/runs.txt, an sbatch array job DIR/matrix.sbatch whose task i runs line i, and
// DIR/merge.sh. SQLite is not shared between tasks (its locks and WAL do not hold on network file
// systems): task i writes its own store on the node's local disk, copied (through `moebench
// merge`) to DIR/db/task_i.sqlite when the task ends, and read back from there when the task is
// rerun; merge.sh then merges every task's store into `db`. With ranks > 1 each task trains its
// run data parallel: srun starts one rank per task slot (one GPU each when gpus > 0).
struct SlurmOptions {
  std::filesystem::path dir;
  std::string moebench;     // absolute path of the executable the jobs run
  std::string db;           // the store merge.sh merges every task's store into (made absolute)
  std::string checkpoints;  // checkpoint folder (made absolute; every rank and rerun must see it)
  std::string data_dir;     // --data for every run (made absolute)
  std::string plan;         // for the job name and the comments
  std::string partition;    // "" = the cluster's default
  std::string time = "24:00:00";
  int gpus = 1;   // GPUs per array task (ranks > 1: per rank); 0 = CPU-only tasks
  int cpus = 0;   // --cpus-per-task; 0 = leave it to the cluster
  int ranks = 1;  // data-parallel ranks per run (srun tasks of one array task)
};

// The shell command line that trains `run` (every argument single-quoted), without --db: the
// sbatch script appends the task's own store.
std::string train_command_line(const PlannedRun& run, const SlurmOptions& opts);
// Writes DIR/runs.txt with the given (pending) runs, in order, DIR/matrix.sbatch and
// DIR/merge.sh (both removed when there is nothing to run). Throws ConfigError on a bad
// --slurm-time, --slurm-gpus or --slurm-ranks.
void emit_slurm(const std::vector<PlannedRun>& pending, const SlurmOptions& opts);

}  // namespace moebench
