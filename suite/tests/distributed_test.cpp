// The data-parallel launch environment: torchrun's and srun's variables, read through a map.
#include "suite/distributed.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace moebench::dist {
namespace {

LaunchEnv read(const std::map<std::string, std::string>& vars) {
  return read_launch_env([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnv, NothingSetIsOneProcess) {
  const LaunchEnv e = read({});
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.launcher, "none");
}

TEST(LaunchEnv, TorchrunVariables) {
  const LaunchEnv e = read({{"RANK", "3"},
                            {"WORLD_SIZE", "8"},
                            {"LOCAL_RANK", "1"},
                            {"LOCAL_WORLD_SIZE", "2"},
                            {"MASTER_ADDR", "node07"},
                            {"MASTER_PORT", "29400"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world, 2);
  EXPECT_EQ(e.master_addr, "node07");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.distributed());
}

TEST(LaunchEnv, SrunVariablesWithMasterAddrExported) {
  const LaunchEnv e = read({{"SLURM_PROCID", "5"},
                            {"SLURM_STEP_NUM_TASKS", "8"},
                            {"SLURM_LOCALID", "1"},
                            {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                            {"SLURM_JOB_ID", "123456"},
                            {"MASTER_ADDR", "gpu-a01"}});
  EXPECT_EQ(e.launcher, "srun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world, 4);
  EXPECT_EQ(e.master_addr, "gpu-a01");
  EXPECT_EQ(e.master_port, 20000 + 123456 % 20000);  // 23456
}

TEST(LaunchEnv, BatchScriptWithoutSrunIsOneProcess) {
  // sbatch sets SLURM_PROCID=0 and SLURM_NTASKS for the batch step; only srun's steps have
  // SLURM_STEP_NUM_TASKS. Without srun the command is one process, whatever --ntasks says.
  const LaunchEnv e = read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.launcher, "none");
}

TEST(LaunchEnv, MissingOrBadVariablesAreNamed) {
  auto message = [](const std::map<std::string, std::string>& vars) {
    try {
      read(vars);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}})
                .find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "two"}}).find("WORLD_SIZE='two'"),
            std::string::npos);
  EXPECT_NE(
      message({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "29500"}})
          .find("rank 2 is not below the world size 2"),
      std::string::npos);
  EXPECT_NE(message({{"SLURM_PROCID", "1"}, {"SLURM_STEP_NUM_TASKS", "2"}})
                .find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(
      message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}})
          .find("MASTER_PORT=70000"),
      std::string::npos);
  // One rank needs no rendezvous.
  EXPECT_EQ(message({{"RANK", "0"}, {"WORLD_SIZE", "1"}}), "no error");
}

}  // namespace
}  // namespace moebench::dist
