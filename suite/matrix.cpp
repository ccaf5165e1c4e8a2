// Plan expansion for `moebench matrix` (methods × sizes × seeds, with overrides).
// Every run is a full RunConfig; its run_key decides whether it is done, resumable or new.
#include "suite/matrix.h"

#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <fmt/format.h>

#include <map>

namespace moebench {
namespace {

std::vector<std::string> strings(const toml::node_view<const toml::node>& node,
                                 const std::string& what, const std::string& file) {
  std::vector<std::string> out;
  if (!node) return out;
  const auto* arr = node.as_array();
  if (!arr) throw ConfigError(fmt::format("plan {}: '{}' must be a list of strings", file, what));
  for (const auto& v : *arr) {
    const auto s = v.value<std::string>();
    if (!s) throw ConfigError(fmt::format("plan {}: '{}' must be a list of strings", file, what));
    out.push_back(*s);
  }
  return out;
}

}  // namespace

std::vector<PlannedRun> load_plan(const std::filesystem::path& plan) {
  const std::string file = plan.string();
  if (!std::filesystem::exists(plan)) {
    throw ConfigError(fmt::format("plan {} not found (see suite/plans/ for examples)", file));
  }
  toml::table t;
  try {
    t = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("plan {}:{}:{}: {}", file, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key != "sizes" && key != "methods" && key != "seeds" && key != "set" &&
        key != "method_set") {
      throw ConfigError(
          fmt::format("plan {}: unknown key '{}' (known: sizes, methods, seeds, set, "
                      "method_set)",
                      file, key));
    }
  }
  const auto tv = toml::node_view<const toml::node>(t);
  const auto sizes = strings(tv["sizes"], "sizes", file);
  const auto methods = strings(tv["methods"], "methods", file);
  const auto sets = strings(tv["set"], "set", file);
  std::vector<int64_t> seeds;
  if (const auto* arr = t["seeds"].as_array()) {
    for (const auto& v : *arr) {
      const auto s = v.value<int64_t>();
      if (!s) throw ConfigError(fmt::format("plan {}: 'seeds' must be a list of integers", file));
      seeds.push_back(*s);
    }
  }
  if (sizes.empty() || methods.empty() || seeds.empty()) {
    throw ConfigError(
        fmt::format("plan {}: 'sizes', 'methods' and 'seeds' must each list at "
                    "least one entry",
                    file));
  }
  std::map<std::string, std::vector<std::string>> per_method;
  if (const auto* tbl = t["method_set"].as_table()) {
    for (const auto& [k, v] : *tbl) {
      const std::string m(k.str());
      per_method[m] = strings(tv["method_set"][m], "method_set." + m, file);
    }
  }
  std::vector<PlannedRun> runs;
  for (const auto& size : sizes) {
    // Sizes that are not built-in names are TOML files next to the plan.
    const std::string base = is_named_config(size) ? size : (plan.parent_path() / size).string();
    for (const auto& method : methods) {
      for (int64_t seed : seeds) {
        std::vector<std::string> o = {"moe.method=" + method, fmt::format("train.seed={}", seed)};
        o.insert(o.end(), sets.begin(), sets.end());
        if (auto it = per_method.find(method); it != per_method.end()) {
          o.insert(o.end(), it->second.begin(), it->second.end());
        }
        PlannedRun r;
        r.method = method;
        r.size = is_named_config(size) ? size : std::filesystem::path(size).stem().string();
        r.seed = seed;
        try {
          r.cfg = load_config(base, o);
        } catch (const ConfigError& e) {
          throw ConfigError(
              fmt::format("plan {} ({} {} seed {}): {}", file, method, size, seed, e.what()));
        }
        r.run_key = run_key(r.cfg);
        runs.push_back(std::move(r));
      }
    }
  }
  return runs;
}

}  // namespace moebench
