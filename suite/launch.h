// `moebench train --nproc N`: starts N copies of this command on this machine as the ranks of a
// data-parallel run, with the variables torchrun would set, and watches them.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace moebench {

// Runs `args` (argv[0] onwards; the executable is this one, /proc/self/exe) as ranks 0..n-1 with
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT.
// SIGINT and SIGTERM are passed on to every rank. When a rank fails, the others get `grace` to
// fail too (their next collective does, at once when the rank's sockets closed), then SIGTERM,
// then SIGKILL. Returns the exit status to use: rank 0's when every rank succeeded, else the
// first failure's (128 + signal for a rank killed by one).
int launch_local_ranks(int n, const std::vector<std::string>& args,
                       std::chrono::seconds grace = std::chrono::seconds(60));

// This process's command line as the kernel holds it (/proc/self/cmdline), with one option and
// its value removed (`--name V` or `--name=V`).
std::vector<std::string> own_command_line_without(const std::string& option);

}  // namespace moebench
