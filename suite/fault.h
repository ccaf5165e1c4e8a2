// Fault injection for the crash drills: MOEBENCH_FAULT="name" or "name@step" kills the process
// (SIGKILL, as `kill -9` would) when it reaches that point; with MOEBENCH_FAULT_RANK=r only
// data-parallel rank r does. Unset in normal use: one getenv.
#pragma once

#include <cstdint>

namespace moebench {

// Points: checkpoint.model_written, checkpoint.files_written, checkpoint.renamed,
// checkpoint.latest_written, eval.before_commit, eval.after_commit, step.done.
void fault_point(const char* name, int64_t step);

}  // namespace moebench
