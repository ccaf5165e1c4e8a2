// Local multi-process launch for data-parallel training (a small torchrun for one machine).
#include "suite/launch.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace moebench {
namespace {

std::atomic<int> g_forward_signal{0};
void remember_signal(int sig) { g_forward_signal.store(sig); }

// A port the kernel says is free now (rank 0's store binds it a moment later).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("could not find a free local port: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::vector<std::string> own_command_line_without(const std::string& option) {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') {
      args.push_back(raw.substr(start, i - start));
      start = i + 1;
    }
  }
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == option) {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind(option + "=", 0) == 0) continue;
    kept.push_back(args[i]);
  }
  return kept;
}

int launch_local_ranks(int n, const std::vector<std::string>& args, std::chrono::seconds grace) {
  if (n < 1) throw std::invalid_argument(fmt::format("--nproc {} must be at least 1", n));
  if (args.empty()) throw std::invalid_argument("no command to launch");
  const int port = free_port();
  std::vector<pid_t> pids(static_cast<size_t>(n), -1);
  std::vector<int> codes(static_cast<size_t>(n), -1);
  g_forward_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = remember_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  for (int r = 0; r < n; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
    if (pid == 0) {
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "moebench: error: could not start rank %d: %s\n", r,
                   std::strerror(errno));
      ::_exit(127);
    }
    pids[static_cast<size_t>(r)] = pid;
  }
  int running = n;
  int first_failure = -1;
  std::chrono::steady_clock::time_point deadline{};
  bool sent_term = false;
  while (running > 0) {
    if (const int sig = g_forward_signal.exchange(0); sig != 0) {
      for (int r = 0; r < n; ++r) {
        if (codes[static_cast<size_t>(r)] < 0) ::kill(pids[static_cast<size_t>(r)], sig);
      }
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (int r = 0; r < n; ++r) {
        if (pids[static_cast<size_t>(r)] != done) continue;
        codes[static_cast<size_t>(r)] = exit_code(status);
        --running;
        if (codes[static_cast<size_t>(r)] != 0 && first_failure < 0) {
          first_failure = r;
          deadline = std::chrono::steady_clock::now() + grace;
          if (running > 0) {
            fmt::print(stderr,
                       "moebench: rank {} exited with status {}; the other ranks get {} s to "
                       "stop\n",
                       r, codes[static_cast<size_t>(r)], grace.count());
          }
        }
      }
      continue;
    }
    if (first_failure >= 0 && std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < n; ++r) {
        if (codes[static_cast<size_t>(r)] < 0) {
          ::kill(pids[static_cast<size_t>(r)], sent_term ? SIGKILL : SIGTERM);
        }
      }
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      sent_term = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return first_failure >= 0 ? codes[static_cast<size_t>(first_failure)] : codes[0];
}

}  // namespace moebench
