// MOEBENCH_FAULT: kill -9 at a named point, for the crash-safety tests.
#include "suite/fault.h"

#include <csignal>
#include <cstdlib>
#include <string>

namespace moebench {

void fault_point(const char* name, int64_t step) {
  static const char* spec = std::getenv("MOEBENCH_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  const std::string s = spec;
  if (s == name || s == std::string(name) + "@" + std::to_string(step)) std::raise(SIGKILL);
}

}  // namespace moebench
