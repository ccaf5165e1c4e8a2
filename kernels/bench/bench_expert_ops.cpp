// Google Benchmark of the expert block (forward + backward) per backend, beside the naive
// per-expert loop and the dense-GEMM limit. Spec: shared/DESIGN.md "Kernels"; METHODS.md "Paper
// configurations" (layer shapes S/M/L).
//
// Every row: expert_swiglu/shape:S/gate:full/tokens:2048/density:0.25/load:zipf/backend:cpu/
// dtype:fp32 with counters tflops (useful FLOPs of fwd+bwd per second) and ratio_to_dense
// (dense-chain time / this time, measured in the same function; 1.0 = at the limit).
// MOEBENCH_BENCH_FULL=1 adds the paper-recipe micro-batch (8192 tokens) on the CPU.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/backends.h"
#include "kernels/bench/naive_moe.h"
#include "kernels/blas_runtime.h"
#include "kernels/expert_ops.h"
#include "kernels/routing.h"

namespace moebench::kernels::bench {
namespace {

constexpr uint64_t kSeed = 1234;
constexpr double kZipfS = 1.2;
constexpr int kCpuThreads = 2;

struct LayerShape {
  const char* name;
  int64_t H, I, E, r;  // r: the RF / AoE low-rank gate width
};
constexpr LayerShape kShapes[] = {
    {"S", 512, 128, 12, 32}, {"M", 768, 192, 16, 48}, {"L", 1024, 256, 24, 64}};

enum class Peer { kReference, kCpu, kCuda, kNaive, kDense };

struct Config {
  LayerShape shape;
  bool low_rank = false;  // gate branch fed z = A_e x ([N*E, r]) instead of x
  int64_t tokens = 0;
  double density = 0;  // k / E; each token has exactly k experts
  bool zipf = false;   // expert popularity ~ 1/rank^1.2, else uniform
  Peer peer = Peer::kReference;
  bool cuda = false;
  torch::Dtype dtype = torch::kFloat;

  int64_t k() const { return std::llround(density * shape.E); }
  int64_t K() const { return low_rank ? shape.r : shape.H; }
  int64_t pairs() const { return tokens * k(); }
  torch::TensorOptions opts() const {
    return torch::TensorOptions().dtype(dtype).device(cuda ? torch::kCUDA : torch::kCPU);
  }
};

std::string peer_name(const Config& c) {
  std::string base;
  switch (c.peer) {
    case Peer::kReference:
      base = "reference";
      break;
    case Peer::kCpu:
      return "cpu";
    case Peer::kCuda:
      return "cuda";
    case Peer::kNaive:
      base = "naive";
      break;
    case Peer::kDense:
      base = "dense";
      break;
  }
  // Peers run on the device under test; the suffix keeps CPU and GPU rows apart.
  return c.cuda ? base + "-cuda" : base;
}

std::string bench_name(const Config& c) {
  char density[16];
  std::snprintf(density, sizeof(density), "%g", c.density);
  std::string name = std::string("expert_swiglu/shape:") + c.shape.name +
                     "/gate:" + (c.low_rank ? "lowrank" : "full") +
                     "/tokens:" + std::to_string(c.tokens) + "/density:" + density;
  // The dense chain has no routing, so the expert load does not apply to it.
  if (c.peer != Peer::kDense) name += std::string("/load:") + (c.zipf ? "zipf" : "uniform");
  name += "/backend:" + peer_name(c);
  name += std::string("/dtype:") + (c.dtype == torch::kBFloat16 ? "bf16" : "fp32");
  return name;
}

// Exactly k distinct experts per token; expert e drawn with weight 1/(e+1)^s (Zipf) or 1.
torch::Tensor sample_mask(const Config& c) {
  const int64_t E = c.shape.E;
  auto p_E = torch::ones({E}, torch::kDouble);
  if (c.zipf) p_E = torch::pow(torch::arange(1, E + 1, torch::kDouble), -kZipfS);
  const auto topk_Nk = torch::multinomial(p_E.expand({c.tokens, E}).contiguous(), c.k(), false);
  return torch::zeros({c.tokens, E}, torch::kBool).scatter_(1, topk_Nk, true);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One forward + backward of some problem; leaves get their grads cleared between calls.
struct Problem {
  std::function<void()> step;
  std::vector<torch::Tensor> leaves;
  bool cuda = false;

  void clear_grads() {
    for (auto& t : leaves) t.mutable_grad() = torch::Tensor();
  }
  double timed_step() {
    clear_grads();
    if (cuda) torch::cuda::synchronize();
    const double t0 = now_s();
    step();
    if (cuda) torch::cuda::synchronize();
    return now_s() - t0;
  }
};

torch::Tensor leaf(torch::Tensor t) { return t.requires_grad_(); }

// The limit: one dense SwiGLU chain over A = N*k rows with the same useful FLOPs (no gather,
// no routing, no combine): x_AH @ U^T and g_AK @ G^T, then [A, I] @ D^T, forward + backward.
Problem dense_problem(const Config& c) {
  torch::manual_seed(kSeed);
  const auto o = c.opts();
  const int64_t A = c.pairs(), H = c.shape.H, I = c.shape.I;
  Problem p;
  p.cuda = c.cuda;
  auto x_AH = leaf(torch::randn({A, H}, o));
  auto g_AK = c.low_rank ? leaf(torch::randn({A, c.K()}, o)) : x_AH;
  auto gate_IK = leaf(torch::randn({I, c.K()}, o) * 0.02);
  auto up_IH = leaf(torch::randn({I, H}, o) * 0.02);
  auto down_HI = leaf(torch::randn({H, I}, o) * 0.02);
  auto dy_AH = torch::randn({A, H}, o);
  p.leaves = {x_AH, gate_IK, up_IH, down_HI};
  if (c.low_rank) p.leaves.push_back(g_AK);
  p.step = [=] {
    const auto h_AI = torch::silu(torch::mm(g_AK, gate_IK.t())) * torch::mm(x_AH, up_IH.t());
    torch::mm(h_AI, down_HI.t()).backward(dy_AH);
  };
  return p;
}

Problem expert_problem(const Config& c) {
  torch::manual_seed(kSeed);
  const auto o = c.opts();
  const int64_t N = c.tokens, H = c.shape.H, I = c.shape.I, E = c.shape.E;
  Problem p;
  p.cuda = c.cuda;
  const auto mask_NE = sample_mask(c).to(o.device());
  auto x_NH = leaf(torch::randn({N, H}, o));
  // Full-rank experts gate on x itself; low-rank ones on the precomputed z_e = A_e x.
  auto gate_in = c.low_rank ? leaf(torch::randn({N * E, c.K()}, o)) : x_NH;
  auto weights_NE = leaf(torch::rand({N, E}, o));
  ExpertWeights w{leaf(torch::randn({E, I, c.K()}, o) * 0.02),
                  leaf(torch::randn({E, I, H}, o) * 0.02), leaf(torch::randn({E, H, I}, o) * 0.02)};
  auto dy_NH = torch::randn({N, H}, o);
  p.leaves = {x_NH, weights_NE, w.gate_EIK, w.up_EIH, w.down_EHI};
  if (c.low_rank) p.leaves.push_back(gate_in);
  const bool per_pair = c.low_rank;
  if (c.peer == Peer::kNaive) {
    p.step = [=] { naive_moe(x_NH, gate_in, per_pair, w, mask_NE, weights_NE).backward(dy_NH); };
    return p;
  }
  const Backend backend = c.peer == Peer::kCpu    ? Backend::kCpu
                          : c.peer == Peer::kCuda ? Backend::kCuda
                                                  : Backend::kReference;
  // Building the routing is part of the timed step: the naive loop pays for finding its tokens.
  // The cuda backend builds it with its own GPU kernel (one host sync) where it is compiled in.
  Routing (*build)(const torch::Tensor&, const torch::Tensor&) = routing_from_mask;
#ifdef MOEBENCH_WITH_CUDA
  if (backend == Backend::kCuda) build = routing_from_mask_cuda;
#endif
  p.step = [=] {
    const Routing r = build(mask_NE, weights_NE);
    expert_swiglu(x_NH, gate_in, per_pair, w, r, backend).backward(dy_NH);
  };
  return p;
}

// Median of a few dense-chain steps after one warm-up: the reference time for ratio_to_dense.
double dense_median_s(const Config& c) {
  Config d = c;
  d.peer = Peer::kDense;
  Problem p = dense_problem(d);
  const double first = p.timed_step();  // warm-up (allocator, BLAS threads)
  const int reps = first > 0.5 ? 3 : 5;
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(p.timed_step());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void run_benchmark(benchmark::State& state, const Config& c) {
  Problem p;
  double dense_s = 0;
  try {
    p = c.peer == Peer::kDense ? dense_problem(c) : expert_problem(c);
    p.timed_step();  // warm-up; also where an unbuilt backend throws
    dense_s = dense_median_s(c);
  } catch (const std::exception& e) {
    state.SkipWithError((peer_name(c) + ": " + e.what()).c_str());
    return;
  }
  double total_s = 0;
  int64_t n = 0;
  for (auto _ : state) {
    try {
      const double t = p.timed_step();
      state.SetIterationTime(t);
      total_s += t;
      ++n;
    } catch (const std::exception& e) {
      state.SkipWithError((peer_name(c) + ": " + e.what()).c_str());
      break;
    }
  }
  if (n == 0) return;
  const double mean_s = total_s / n;
  const double flops = 3 * expert_flops(c.pairs(), c.shape.H, c.shape.I, c.K());
  state.counters["tflops"] = flops / mean_s / 1e12;
  state.counters["ratio_to_dense"] = dense_s / mean_s;
  state.counters["dense_ms"] = dense_s * 1e3;
}

void register_all() {
  const bool full = [] {
    const char* v = std::getenv("MOEBENCH_BENCH_FULL");
    return v != nullptr && std::string(v) == "1";
  }();
  struct Device {
    bool cuda;
    std::vector<torch::Dtype> dtypes;
    std::vector<Peer> peers;
    std::vector<int64_t> tokens;
  };
  std::vector<Device> devices;
  devices.push_back({false,
                     {torch::kFloat},
                     {Peer::kReference, Peer::kCpu, Peer::kNaive, Peer::kDense},
                     full ? std::vector<int64_t>{2048, 8192} : std::vector<int64_t>{2048}});
  if (torch::cuda::is_available()) {
    devices.push_back({true,
                       {torch::kFloat, torch::kBFloat16},
                       {Peer::kReference, Peer::kCuda, Peer::kNaive, Peer::kDense},
                       {2048, 8192}});
  }
  for (const Device& dev : devices) {
    for (const torch::Dtype dtype : dev.dtypes) {
      for (const LayerShape& shape : kShapes) {
        for (const bool low_rank : {false, true}) {
          for (const int64_t tokens : dev.tokens) {
            for (const double density : {0.25, 0.5}) {
              for (const Peer peer : dev.peers) {
                for (const bool zipf : {false, true}) {
                  if (peer == Peer::kDense && zipf) continue;  // load does not apply
                  Config c{shape, low_rank, tokens, density, zipf, peer, dev.cuda, dtype};
                  benchmark::RegisterBenchmark(bench_name(c).c_str(), run_benchmark, c)
                      ->UseManualTime()
                      ->Unit(benchmark::kMillisecond);
                }
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moebench::kernels::bench

int main(int argc, char** argv) {
  moebench::kernels::use_native_blas_kernels(argv);  // before any matmul: may re-execute
  moebench::kernels::keep_tensor_memory();
  using namespace moebench::kernels::bench;
  // The CPU numbers are for the 2-core reproduction machine; pin them so runs compare.
  torch::set_num_threads(kCpuThreads);
  benchmark::AddCustomContext("moebench_device", torch::cuda::is_available() ? "cuda" : "cpu");
  benchmark::AddCustomContext("moebench_torch_threads", std::to_string(kCpuThreads));
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
