// Shared helpers for the datasets tests: where the fetched data lives, temp folders.
// Tests needing fetched or prepared data skip, naming the command to run, when it is absent.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace moebench::data::testing {

inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("MOEBENCH_DATA"); env && *env) return env;
  return std::filesystem::path(MOEBENCH_SOURCE_DIR) / "data";
}

// Skips the calling test (GTEST_SKIP, so call it from the test body) when `needed`, a file that
// fetched or prepared data provides, is missing, naming the command that makes it.
#define MOEBENCH_SKIP_WITHOUT_DATA(needed, command)                                    \
  do {                                                                                 \
    const std::filesystem::path moebench_needed_ = (needed);                           \
    if (!std::filesystem::exists(moebench_needed_)) {                                  \
      GTEST_SKIP() << "needs " << moebench_needed_.string() << ": run `" << (command)  \
                   << "` first (make test does; MOEBENCH_DATA picks the data folder)"; \
    }                                                                                  \
  } while (0)

inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(MOEBENCH_SOURCE_DIR) / "datasets" / "tests" / "fixtures" / name;
}

// A fresh, empty folder under the build tree (kept after the test for inspection).
inline std::filesystem::path temp_dir(const std::string& tag) {
  std::random_device rd;
  auto dir =
      std::filesystem::path(MOEBENCH_BINARY_DIR) / "test_tmp" / (tag + "_" + std::to_string(rd()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A fresh folder under the system temp dir, named after the running test, removed at its end.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("moebench_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good());
}

}  // namespace moebench::data::testing
