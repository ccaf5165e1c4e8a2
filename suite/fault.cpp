// MOEBENCH_FAULT: kill -9 at a named point, for the crash-safety tests.
#include "suite/fault.h"

#include <csignal>
#include <cstdlib>
#include <string>

namespace moebench {

void fault_point(const char* name, int64_t step) {
  static const char* spec = std::getenv("MOEBENCH_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  // MOEBENCH_FAULT_RANK=r: only data-parallel rank r (RANK) dies, for the rank-failure drill.
  static const char* only_rank = std::getenv("MOEBENCH_FAULT_RANK");
  if (only_rank != nullptr) {
    const char* rank = std::getenv("RANK");
    if (std::string(rank != nullptr ? rank : "0") != only_rank) return;
  }
  const std::string s = spec;
  if (s == name || s == std::string(name) + "@" + std::to_string(step)) std::raise(SIGKILL);
}

}  // namespace moebench
