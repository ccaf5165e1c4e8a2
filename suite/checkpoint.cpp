// Crash-safe checkpoints: write into a temporary folder, fsync, rename, then the LATEST pointer;
// read back only what the manifest vouches for (shared design: "Runs you can trust").
#include "suite/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "datasets/hashing.h"
#include "suite/fault.h"

namespace moebench {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kLatest = "LATEST";
constexpr const char* kFiles[] = {"model.pt", "state.json", "config.json"};
constexpr size_t kKeep = 2;  // complete checkpoints kept per run: the newest and a fallback

[[noreturn]] void os_error(const std::string& what, const fs::path& path) {
  throw std::runtime_error(
      fmt::format("cannot {} {}: {}", what, path.string(), std::strerror(errno)));
}

// Flushes a file's (or a folder's) contents to the disk.
void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) os_error("open", path);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) os_error("sync", path);
}

// Writes `text` to `path`, checking every call, and fsyncs it.
void write_durably(const fs::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) os_error("create", path);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved ? saved : ENOSPC;
      os_error("write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    os_error("sync", path);
  }
  if (::close(fd) != 0) os_error("close", path);
}

// Size and FNV-1a 64 of a file, streamed.
struct FileSum {
  uint64_t size = 0;
  uint64_t hash = data::kFnvOffset;
};

FileSum sum_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  FileSum s;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    s.hash = data::fnv1a64(buf.data(), n, s.hash);
    s.size += n;
  }
  return s;
}

std::string hex(uint64_t h) { return fmt::format("{:016x}", h); }

Json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    throw std::runtime_error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// Where the model's weights live (its first parameter's device; the CPU for an empty model).
torch::Device model_device(models::TransformerImpl& model) {
  const auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

std::string step_name(int64_t step) { return fmt::format("step-{:09d}", step); }

// The step of a "step-<N>" folder name, or -1.
int64_t step_of(const fs::path& p) {
  const std::string n = p.filename().string();
  if (n.rfind("step-", 0) != 0 || n.size() <= 5) return -1;
  const std::string digits = n.substr(5);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

// Why `checkpoint` is not a complete, consistent checkpoint ("" = it is).
std::string check(const fs::path& checkpoint) {
  try {
    const Json manifest = read_json(checkpoint / "manifest.json");
    for (const char* f : kFiles) {
      const auto& entry = manifest.at("files").at(f);
      const fs::path path = checkpoint / f;
      if (!fs::exists(path)) return std::string(f) + " is missing";
      const FileSum s = sum_file(path);
      if (s.size != entry.at("size").get<uint64_t>()) {
        return fmt::format("{} has {} bytes, the manifest says {}", f, s.size,
                           entry.at("size").get<uint64_t>());
      }
      if (hex(s.hash) != entry.at("fnv1a64").get<std::string>()) {
        return std::string(f) + " does not match its checksum";
      }
    }
    const int64_t step = read_json(checkpoint / "state.json").at("step").get<int64_t>();
    if (step != manifest.at("step").get<int64_t>()) {
      return fmt::format("state.json is at step {}, the weights at step {}", step,
                         manifest.at("step").get<int64_t>());
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The run's checkpoints, newest first: LATEST's target, then every other step-<N>/ by step.
std::vector<fs::path> candidates(const fs::path& dir) {
  std::vector<fs::path> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory() && step_of(entry.path()) >= 0) steps.push_back(entry.path());
  }
  std::sort(steps.begin(), steps.end(),
            [](const fs::path& a, const fs::path& b) { return step_of(a) > step_of(b); });
  std::ifstream latest(dir / kLatest);
  std::string name;
  if (latest && std::getline(latest, name) && !name.empty()) {
    const auto it = std::find(steps.begin(), steps.end(), dir / name);
    if (it != steps.end()) std::rotate(steps.begin(), it, it + 1);
  }
  return steps;
}

}  // namespace

// Writes a LibTorch archive through our own checked, fsynced file. LibTorch's own file writer
// aborts the process (std::terminate from a destructor) when the disk fills up, so the archive
// never sees a failure: the first error is kept, the rest of the bytes are dropped, and the
// error is thrown once LibTorch is done.
void save_archive(torch::serialize::OutputArchive& archive, const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) os_error("create", path);
  int error = 0;
  archive.save_to([&](const void* data, size_t n) -> size_t {
    const char* bytes = static_cast<const char*>(data);
    for (size_t done = 0; error == 0 && done < n;) {
      const ssize_t w = ::write(fd, bytes + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        error = w < 0 ? errno : ENOSPC;
      } else {
        done += static_cast<size_t>(w);
      }
    }
    return n;
  });
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    errno = error;
    os_error("write", path);
  }
}

void save_checkpoint(const fs::path& run_dir, const RunConfig& cfg, models::TransformerImpl& model,
                     torch::optim::Optimizer& optimizer, const CheckpointState& state) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + run_dir.string() + ": " + ec.message());
  const fs::path final_dir = run_dir / step_name(state.step);
  const fs::path tmp = run_dir / fmt::format(".tmp-{}-{}", step_name(state.step), ::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec) || ec) {
    throw std::runtime_error("cannot create " + tmp.string() + ": " + ec.message());
  }
  try {
    torch::serialize::OutputArchive archive;
    model.save(archive);
    torch::serialize::OutputArchive optim_archive;
    optimizer.save(optim_archive);
    archive.write("optimizer", optim_archive);
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      archive.write("rng_cpu", gen.get_state());
    }
    // On a GPU, dropout and Switch's jitter draw from the device's generator: exact resume
    // needs its state too.
    if (const auto device = model_device(model); device.is_cuda()) {
      auto gen = at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      archive.write("rng_cuda", gen.get_state());
    }
    save_archive(archive, tmp / "model.pt");
    fault_point("checkpoint.model_written", state.step);
    Json j;
    j["step"] = state.step;
    j["tokens"] = state.tokens;
    j["wall_s"] = state.wall_s;
    j["controller"] = state.controller;
    j["run_key"] = state.run_key;
    write_durably(tmp / "state.json", j.dump(2));
    write_durably(tmp / "config.json", to_canonical_json(cfg));
    Json manifest;
    manifest["step"] = state.step;
    for (const char* f : kFiles) {
      const FileSum s = sum_file(tmp / f);
      manifest["files"][f] = {{"size", s.size}, {"fnv1a64", hex(s.hash)}};
    }
    write_durably(tmp / "manifest.json", manifest.dump(2));
    fsync_path(tmp);
    fault_point("checkpoint.files_written", state.step);
    // The same step again (a run stopped and resumed at a checkpoint step): replaced whole.
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir, ec);
    if (ec) throw std::runtime_error("cannot rename " + tmp.string() + ": " + ec.message());
    fsync_path(run_dir);
    fault_point("checkpoint.renamed", state.step);
    write_durably(run_dir / (std::string(kLatest) + ".tmp"), final_dir.filename().string() + "\n");
    fs::rename(run_dir / (std::string(kLatest) + ".tmp"), run_dir / kLatest, ec);
    if (ec)
      throw std::runtime_error("cannot rename " + (run_dir / kLatest).string() + ": " +
                               ec.message());
    fsync_path(run_dir);
    fault_point("checkpoint.latest_written", state.step);
  } catch (...) {
    fs::remove_all(tmp, ec);  // the previous checkpoint stays the newest complete one
    throw;
  }
  // Kept: the new checkpoint and the newest complete one before it (the fallback); removed: the
  // rest, damaged ones included, and temporary folders of dead writers.
  size_t kept = 0;
  for (const auto& c : candidates(run_dir)) {
    if (kept < kKeep && (c == final_dir || check(c).empty())) {
      ++kept;
    } else {
      fs::remove_all(c, ec);
    }
  }
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(entry.path(), ec);
  }
}

std::optional<fs::path> find_checkpoint(const fs::path& dir) {
  if (step_of(dir) >= 0 && fs::exists(dir / "manifest.json")) {
    const std::string why = check(dir);
    if (why.empty()) return dir;
    fmt::print(stderr, "warning: checkpoint {} is damaged ({})\n", dir.string(), why);
    return std::nullopt;
  }
  for (const auto& c : candidates(dir)) {
    const std::string why = check(c);
    if (why.empty()) return c;
    fmt::print(stderr,
               "warning: checkpoint {} is incomplete or damaged ({}); trying an older one\n",
               c.string(), why);
  }
  return std::nullopt;
}

CheckpointState read_checkpoint_state(const fs::path& checkpoint) {
  const Json j = read_json(checkpoint / "state.json");
  CheckpointState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.tokens = j.value("tokens", int64_t{0});
    s.wall_s = j.value("wall_s", 0.0);
    s.controller = j.value("controller", std::map<std::string, double>{});
    s.run_key = j.value("run_key", std::string());
  } catch (const Json::exception& e) {
    throw std::runtime_error((checkpoint / "state.json").string() + ": " + e.what());
  }
  return s;
}

RunConfig read_checkpoint_config(const fs::path& checkpoint) {
  std::ifstream in(checkpoint / "config.json");
  if (!in) throw std::runtime_error("cannot read " + (checkpoint / "config.json").string());
  try {
    return config_from_json(std::string(std::istreambuf_iterator<char>(in), {}));
  } catch (const ConfigError& e) {
    throw std::runtime_error((checkpoint / "config.json").string() + ": " + e.what());
  }
}

CheckpointState load_checkpoint(const fs::path& checkpoint, models::TransformerImpl& model,
                                torch::Device device, torch::optim::Optimizer* optimizer) {
  CheckpointState state = read_checkpoint_state(checkpoint);
  const fs::path path = checkpoint / "model.pt";
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string(), device);
    model.load(archive);
    if (optimizer) {
      torch::serialize::InputArchive optim_archive;
      archive.read("optimizer", optim_archive);
      optimizer->load(optim_archive);
      // load_from moved every tensor to `device`; generator states are CPU byte tensors.
      torch::Tensor rng;
      archive.read("rng_cpu", rng);
      {
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(rng.to(torch::kCPU));
      }
      torch::Tensor rng_cuda;
      if (device.is_cuda() && archive.try_read("rng_cuda", rng_cuda)) {
        auto gen = at::globalContext().defaultGenerator(model_device(model));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(rng_cuda.to(torch::kCPU));
      }
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() +
                             " does not fit this run's model: " + e.what_without_backtrace());
  }
  return state;
}

}  // namespace moebench
