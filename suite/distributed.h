// Data-parallel training over LibTorch's c10d (shared/DESIGN.md "Beyond one machine"): the
// rendezvous environment torchrun or srun sets, a Gloo process group, and the few collectives the
// trainer needs (scalar sums, bucketed gradient sums, a parameter broadcast).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace moebench::dist {

// Where this process sits in a data-parallel launch.
struct LaunchEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  int local_world = 1;  // processes on this machine (threads are split among them)
  std::string master_addr;
  int master_port = 0;
  std::string launcher = "none";  // "torchrun" (or `--nproc`), "srun", "none"
  bool distributed() const { return world > 1; }
};

// Reads the launch environment through `get` (std::getenv in use; a map in tests):
//  - torchrun (and `moebench train --nproc`): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//    MASTER_ADDR, MASTER_PORT;
//  - srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS (set for srun's job steps only, so a batch script
//    run without srun stays one process), SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE; MASTER_ADDR
//    must be exported (the emitted sbatch script does), MASTER_PORT defaults to one derived from
//    SLURM_JOB_ID;
//  - neither: one process.
// Throws std::invalid_argument naming the variable that is missing or malformed.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& get);
LaunchEnv launch_env();

// A c10d process group over every rank of the launch (Gloo; CPU tensors, and CUDA tensors
// through Gloo's staging). Every call is a collective: all ranks make the same calls in the same
// order. A rank that dies or stops answering makes the others' next call throw (at once when its
// sockets close, else after `timeout`).
class Group {
 public:
  Group(const LaunchEnv& env, std::chrono::milliseconds timeout);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Sums the values over the ranks, in place, in double precision.
  void sum(std::vector<double>& values);
  // Sums the gradients of `params` over the ranks, in buckets of about bucket_bytes (one
  // all-reduce per bucket of same-dtype, same-device gradients). A gradient undefined on some
  // ranks and defined on others counts as zeros there; one undefined on every rank stays
  // undefined (AdamW then skips that parameter, as it would in one process).
  void sum_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 25 << 20);
  // Copies rank 0's values of the tensors into every rank's (parameters and buffers, in place).
  void broadcast(const std::vector<torch::Tensor>& tensors);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_ = 1;
};

// Whether this build has c10d's Gloo backend (the Debian LibTorch with libgloo-dev's headers).
bool available();

}  // namespace moebench::dist
