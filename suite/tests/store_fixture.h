// Helpers shared by the tests that build hand-made stores and read back what the renderers write
// (report, verdict, html_report, plot tests): a fresh temp folder, a run row, a csv reader and a
// whole-file reader. Header-only and torch-free: it is compiled into store_tests (no torch) and
// suite_tests alike, so it includes nothing beyond suite/store.h and the standard library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "suite/store.h"

namespace moebench::test_support {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A fresh, empty folder temp/PREFIX<random number> (a leftover of that name is removed first).
inline std::filesystem::path make_temp_dir(const std::string& prefix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / (prefix + std::to_string(std::random_device{}()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Removes a folder from make_temp_dir, ignoring errors (a test must not fail on its cleanup);
// an empty path (a test skipped before it made one) is left alone.
inline void remove_temp_dir(const std::filesystem::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// The whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A run as the tests begin it: key METHOD-SIZE-SEED, on the cpu "reference" backend.
inline RunRow test_run_row(const std::string& method, const std::string& size, int64_t seed,
                           const std::string& config_json = "{}") {
  RunRow r;
  r.run_key = method + "-" + size + "-" + std::to_string(seed);
  r.config_json = config_json;
  r.method = method;
  r.size = size;
  r.seed = seed;
  r.device = "cpu";
  r.backend = "reference";
  return r;
}

// Minimal RFC 4180 reader (quoted fields, doubled quotes), independent of the renderer.
inline std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"', ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field), field.clear();
    } else if (c == '\n') {
      row.push_back(field), field.clear();
      rows.push_back(row), row.clear();
    } else {
      field += c;
    }
  }
  return rows;
}

}  // namespace moebench::test_support
