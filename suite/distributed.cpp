// Launch environment and the Gloo process group (c10d) for data-parallel training.
#include "suite/distributed.h"

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>

#ifdef MOEBENCH_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace moebench::dist {
namespace {

int parse_int(const char* name, const char* text, int min) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > 1 << 20) {
    throw std::invalid_argument(fmt::format(
        "{}='{}' is not an integer ≥ {} (a data-parallel launch variable)", name, text, min));
  }
  return static_cast<int>(v);
}

// The leading count of SLURM's "2(x3),1" task-per-node lists: this node's share when every node
// runs the same number, which is how the emitted scripts launch.
int leading_count(const char* text) {
  const int n = std::atoi(text);
  return n > 0 ? n : 1;
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& get) {
  auto need = [&](const char* name, const char* why) -> const char* {
    const char* v = get(name);
    if (v == nullptr || *v == '\0') {
      throw std::invalid_argument(fmt::format("{} is not set: {}", name, why));
    }
    return v;
  };
  LaunchEnv env;
  if (get("WORLD_SIZE") != nullptr || get("RANK") != nullptr) {
    env.launcher = "torchrun";
    env.world = parse_int("WORLD_SIZE", need("WORLD_SIZE", "torchrun sets it with RANK"), 1);
    env.rank = parse_int("RANK", need("RANK", "torchrun sets it with WORLD_SIZE"), 0);
    const char* local = get("LOCAL_RANK");
    env.local_rank = local != nullptr ? parse_int("LOCAL_RANK", local, 0) : env.rank;
    const char* local_world = get("LOCAL_WORLD_SIZE");
    env.local_world =
        local_world != nullptr ? parse_int("LOCAL_WORLD_SIZE", local_world, 1) : env.world;
    if (env.world > 1) {
      env.master_addr = need("MASTER_ADDR", "the address of rank 0 (torchrun sets it)");
      env.master_port =
          parse_int("MASTER_PORT", need("MASTER_PORT", "rank 0's port (torchrun sets it)"), 1);
    }
  } else if (get("SLURM_STEP_NUM_TASKS") != nullptr && get("SLURM_PROCID") != nullptr) {
    env.launcher = "srun";
    env.world = parse_int("SLURM_STEP_NUM_TASKS", get("SLURM_STEP_NUM_TASKS"), 1);
    env.rank = parse_int("SLURM_PROCID", get("SLURM_PROCID"), 0);
    const char* local = get("SLURM_LOCALID");
    env.local_rank = local != nullptr ? parse_int("SLURM_LOCALID", local, 0) : 0;
    const char* per_node = get("SLURM_STEP_TASKS_PER_NODE");
    env.local_world = per_node != nullptr ? leading_count(per_node) : 1;
    if (env.world > 1) {
      env.master_addr =
          need("MASTER_ADDR",
               "export the first node's name before srun, e.g. "
               "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)");
      if (const char* port = get("MASTER_PORT")) {
        env.master_port = parse_int("MASTER_PORT", port, 1);
      } else {
        const char* job = get("SLURM_JOB_ID");
        env.master_port = 20000 + (job != nullptr ? std::atoi(job) % 20000 : 0);
      }
    }
  }
  if (env.rank >= env.world) {
    throw std::invalid_argument(
        fmt::format("rank {} is not below the world size {}", env.rank, env.world));
  }
  if (env.master_port > 65535) {
    throw std::invalid_argument(fmt::format("MASTER_PORT={} is not a port", env.master_port));
  }
  return env;
}

LaunchEnv launch_env() {
  return read_launch_env([](const char* name) { return std::getenv(name); });
}

#ifdef MOEBENCH_HAVE_GLOO

struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;

  void all_reduce(std::vector<at::Tensor>& tensors) { pg->allreduce(tensors)->wait(); }
};

namespace {

std::shared_ptr<::gloo::transport::Device> make_device(const LaunchEnv& env) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

Group::Group(const LaunchEnv& env, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), rank_(env.rank), world_(env.world) {
  c10d::TCPStoreOptions store_opts;
  store_opts.port = static_cast<std::uint16_t>(env.master_port);
  store_opts.isServer = env.rank == 0;
  store_opts.numWorkers = static_cast<std::size_t>(env.world);
  store_opts.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_opts);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(make_device(env));
    impl_->pg =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world, opts);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format(
        "rank {} of {} could not join the process group at {}:{} ({}); check MASTER_ADDR and "
        "MASTER_PORT, and that every rank was started",
        env.rank, env.world, env.master_addr, env.master_port, e.what()));
  }
}

Group::~Group() = default;

void Group::sum(std::vector<double>& values) {
  if (values.empty()) return;
  auto t = torch::tensor(values, torch::kDouble);
  std::vector<at::Tensor> tensors{t};
  impl_->all_reduce(tensors);
  const double* p = t.data_ptr<double>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = p[i];
}

void Group::sum_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  // Which gradients exist on any rank: those get zeros where a rank has none.
  std::vector<double> defined(params.size());
  for (size_t i = 0; i < params.size(); ++i) defined[i] = params[i].grad().defined() ? 1.0 : 0.0;
  sum(defined);
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    if (defined[i] == 0) continue;
    const auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  // Buckets of consecutive gradients sharing dtype and device, flattened into one buffer each.
  size_t begin = 0;
  while (begin < grads.size()) {
    size_t end = begin;
    int64_t bytes = 0;
    while (end < grads.size() && grads[end].scalar_type() == grads[begin].scalar_type() &&
           grads[end].device() == grads[begin].device() &&
           (end == begin || bytes + grads[end].nbytes() <= static_cast<size_t>(bucket_bytes))) {
      bytes += static_cast<int64_t>(grads[end].nbytes());
      ++end;
    }
    std::vector<torch::Tensor> flat;
    for (size_t i = begin; i < end; ++i) flat.push_back(grads[i].reshape({-1}));
    std::vector<at::Tensor> bucket{torch::cat(flat)};
    impl_->all_reduce(bucket);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(bucket[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    begin = end;
  }
}

void Group::broadcast(const std::vector<torch::Tensor>& tensors) {
  for (const auto& t : tensors) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    impl_->pg->broadcast(one)->wait();
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

bool available() { return true; }

#else  // no Gloo headers at build time

struct Group::Impl {};

Group::Group(const LaunchEnv& env, std::chrono::milliseconds /*timeout*/)
    : rank_(env.rank), world_(env.world) {
  throw std::runtime_error(
      "this moebench was built without c10d's Gloo backend, so it cannot train data parallel; "
      "install libgloo-dev (scripts/setup.sh does) and rebuild");
}

Group::~Group() = default;
void Group::sum(std::vector<double>& /*values*/) {}
void Group::sum_gradients(const std::vector<torch::Tensor>& /*params*/, int64_t /*bucket*/) {}
void Group::broadcast(const std::vector<torch::Tensor>& /*tensors*/) {}
bool available() { return false; }

#endif

}  // namespace moebench::dist
