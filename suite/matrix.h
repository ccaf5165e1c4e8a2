// The run matrix: a plan (TOML) of methods × sizes × seeds (+ overrides) expanded into runs,
// each keyed by hash(config, seed), so done runs are skipped and interrupted ones resume.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "suite/config.h"

namespace moebench {

struct PlannedRun {
  std::string method, size;
  int64_t seed = 0;
  RunConfig cfg;
  std::string run_key;
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

}  // namespace moebench
