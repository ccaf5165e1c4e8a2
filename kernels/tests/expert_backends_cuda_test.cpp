// CUDA backend of the expert block and of routing_from_mask against the reference (DESIGN.md
// "Kernels": awkward shapes, forward and all gradients); skipped without a CUDA device.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/backends.h"
#include "kernels/expert_ops.h"
#include "kernels/routing.h"

namespace moebench::kernels {
namespace {

// Why the CUDA tests cannot run here, or "" when they can.
std::string cuda_skip_reason() {
#ifndef MOEBENCH_WITH_CUDA
  return "this build has no CUDA kernels (nvcc was not found at configure time)";
#else
  if (!torch::cuda::is_available()) {
    return "LibTorch sees no CUDA device (CPU-only LibTorch or no GPU on this machine)";
  }
  return "";
#endif
}

#define SKIP_WITHOUT_CUDA()                                \
  do {                                                     \
    const std::string skip_reason = cuda_skip_reason();    \
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason; \
  } while (0)

#ifdef MOEBENCH_WITH_CUDA

// One problem, in double on the CPU; every backend run starts from these values.
struct Problem {
  std::string name;
  bool per_pair = false;
  torch::Tensor x, gate_in, weights_NE, mask_NE, w_gate, w_up, w_down, proj_NH;
};

// Outputs and all gradients of loss = sum(y * proj), as double CPU tensors.
struct Result {
  torch::Tensor y, d_x, d_gate_in, d_weights, d_w_gate, d_w_up, d_w_down;
  std::vector<torch::Tensor> all() const {
    return {y, d_x, d_gate_in, d_weights, d_w_gate, d_w_up, d_w_down};
  }
};
const char* const kResultNames[] = {"y",          "d x",      "d gate_in", "d routing weights",
                                    "d gate_EIK", "d up_EIH", "d down_EHI"};

torch::Tensor dbl(torch::IntArrayRef shape, double scale) {
  return torch::randn(shape, torch::kDouble) * scale;
}

Problem make_problem(std::string name, int64_t N, int64_t H, int64_t I, int64_t K, int64_t E,
                     bool per_pair, torch::Tensor mask_NE, uint64_t seed) {
  torch::manual_seed(seed);
  Problem p;
  p.name = std::move(name);
  p.per_pair = per_pair;
  p.x = dbl({N, H}, 1.0);
  p.gate_in = dbl({per_pair ? N * E : N, K}, 1.0);
  p.weights_NE = torch::rand({N, E}, torch::kDouble) + 0.1;
  p.mask_NE = std::move(mask_NE);
  p.w_gate = dbl({E, I, K}, 1.0 / std::sqrt(static_cast<double>(K)));
  p.w_up = dbl({E, I, H}, 1.0 / std::sqrt(static_cast<double>(H)));
  p.w_down = dbl({E, H, I}, 1.0 / std::sqrt(static_cast<double>(I)));
  p.proj_NH = dbl({N, H}, 1.0);
  return p;
}

torch::Tensor random_mask(int64_t N, int64_t E, double p_active) {
  return torch::rand({N, E}) < p_active;
}

// The awkward shapes of DESIGN.md "Kernels".
std::vector<Problem> awkward_problems() {
  std::vector<Problem> ps;
  torch::manual_seed(7);
  auto m = random_mask(13, 4, 0.5);
  m[3].fill_(false);  // a token with no expert
  ps.push_back(make_problem("H=100 full-rank", 13, 100, 36, 100, 4, false, m, 1));
  ps.push_back(
      make_problem("low-rank gate per pair", 11, 100, 20, 7, 5, true, random_mask(11, 5, 0.5), 2));
  m = random_mask(9, 3, 0.6);
  m.select(1, 1).fill_(false);
  ps.push_back(make_problem("one expert empty", 9, 16, 12, 16, 3, false, m, 3));
  m = torch::zeros({10, 4}, torch::kBool);
  m.select(1, 2).fill_(true);
  ps.push_back(make_problem("all tokens to one expert", 10, 24, 8, 24, 4, false, m, 4));
  ps.push_back(
      make_problem("k = E", 7, 20, 12, 20, 3, false, torch::ones({7, 3}, torch::kBool), 5));
  ps.push_back(make_problem("E = 1 (dense FFN)", 6, 20, 12, 20, 1, false,
                            torch::ones({6, 1}, torch::kBool), 6));
  m = random_mask(8, 4, 0.5);
  for (int64_t n : {0, 5, 7}) m[n].fill_(false);
  ps.push_back(make_problem("zero-expert tokens", 8, 16, 8, 16, 4, false, m, 8));
  ps.push_back(make_problem("N = 1", 1, 100, 36, 4, 6, true,
                            torch::tensor({1, 0, 1, 1, 0, 1}).to(torch::kBool).reshape({1, 6}), 9));
  ps.push_back(make_problem("no pairs at all", 5, 16, 8, 16, 3, false,
                            torch::zeros({5, 3}, torch::kBool), 10));
  return ps;
}

torch::Tensor grad_or_zeros(const torch::Tensor& leaf) {
  return leaf.grad().defined() ? leaf.grad() : torch::zeros_like(leaf);
}

torch::Tensor to_cpu_double(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU, torch::kDouble);
}

// Inputs rounded to `dtype`, so the reference sees exactly the values the backend sees and
// only the arithmetic differs.
torch::Tensor rounded(const torch::Tensor& t, torch::ScalarType dtype) {
  return t.to(dtype).to(torch::kDouble);
}

// The reference expert block (plain LibTorch, autograd) in double on the CPU.
Result run_reference(const Problem& p, torch::ScalarType dtype) {
  auto leaf = [&](const torch::Tensor& t) { return rounded(t, dtype).requires_grad_(); };
  auto x = leaf(p.x), gate_in = leaf(p.gate_in), weights = leaf(p.weights_NE);
  auto w_gate = leaf(p.w_gate), w_up = leaf(p.w_up), w_down = leaf(p.w_down);
  const auto r = routing_from_mask(p.mask_NE, weights);
  const auto y =
      expert_swiglu(x, gate_in, p.per_pair, {w_gate, w_up, w_down}, r, Backend::kReference);
  (y * rounded(p.proj_NH, dtype)).sum().backward();
  return {y.detach(),
          grad_or_zeros(x),
          grad_or_zeros(gate_in),
          grad_or_zeros(weights),
          grad_or_zeros(w_gate),
          grad_or_zeros(w_up),
          grad_or_zeros(w_down)};
}

// The CUDA backend. The routing layout comes from the CPU routing_from_mask (so this test does
// not depend on routing_from_mask_cuda); the gates are taken from the device weights so that
// their gradient flows through the CUDA expert block.
Result run_cuda(const Problem& p, torch::ScalarType dtype) {
  const torch::Device dev(torch::kCUDA, 0);
  auto leaf = [&](const torch::Tensor& t) { return t.to(dev, dtype).detach().requires_grad_(); };
  auto x = leaf(p.x), gate_in = leaf(p.gate_in), weights = leaf(p.weights_NE);
  auto w_gate = leaf(p.w_gate), w_up = leaf(p.w_up), w_down = leaf(p.w_down);
  const auto layout = routing_from_mask(p.mask_NE, p.weights_NE);
  Routing r;
  r.num_tokens = layout.num_tokens;
  r.num_experts = layout.num_experts;
  r.token = layout.token.to(dev);
  r.expert = layout.expert.to(dev);
  r.expert_offsets = layout.expert_offsets.to(dev);
  r.gate = weights.reshape({-1}).index_select(0, r.flat_index());
  const auto y = expert_swiglu_cuda(x, gate_in, p.per_pair, {w_gate, w_up, w_down}, r);
  EXPECT_EQ(y.scalar_type(), dtype);
  EXPECT_TRUE(y.is_cuda());
  (y.to(torch::kDouble) * rounded(p.proj_NH, dtype).to(dev)).sum().backward();
  return {to_cpu_double(y),
          to_cpu_double(grad_or_zeros(x)),
          to_cpu_double(grad_or_zeros(gate_in)),
          to_cpu_double(grad_or_zeros(weights)),
          to_cpu_double(grad_or_zeros(w_gate)),
          to_cpu_double(grad_or_zeros(w_up)),
          to_cpu_double(grad_or_zeros(w_down))};
}

// Largest absolute error within `rel` of the reference's largest magnitude.
void expect_close(const Result& got, const Result& want, double rel) {
  const auto g = got.all(), w = want.all();
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_EQ(g[i].sizes(), w[i].sizes()) << kResultNames[i];
    if (w[i].numel() == 0) continue;
    const double diff = (g[i] - w[i]).abs().max().item<double>();
    const double scale = w[i].abs().max().item<double>();
    EXPECT_LE(diff, rel * scale + 1e-6)
        << kResultNames[i] << ": max abs diff " << diff << ", reference scale " << scale;
  }
}

void check_against_reference(torch::ScalarType dtype, double rel) {
  for (const auto& p : awkward_problems()) {
    SCOPED_TRACE(p.name);
    expect_close(run_cuda(p, dtype), run_reference(p, dtype), rel);
  }
}

#endif  // MOEBENCH_WITH_CUDA

TEST(ExpertBackendCuda, MatchesReferenceFloat32) {
  SKIP_WITHOUT_CUDA();
#ifdef MOEBENCH_WITH_CUDA
  // float32 GEMMs (no TF32) and float32 accumulation: only rounding-order differences.
  check_against_reference(torch::kFloat, 5e-5);
#endif
}

TEST(ExpertBackendCuda, MatchesReferenceBFloat16) {
  SKIP_WITHOUT_CUDA();
#ifdef MOEBENCH_WITH_CUDA
  // bfloat16 keeps 8 significant bits: each of the intermediates (gate_pre, up, h, out and
  // their gradients) is rounded at 2^-9 relative, the reference rounds nothing.
  check_against_reference(torch::kBFloat16, 5e-2);
#endif
}

TEST(ExpertBackendCuda, RoutingFromMaskMatchesReference) {
  SKIP_WITHOUT_CUDA();
#ifdef MOEBENCH_WITH_CUDA
  const torch::Device dev(torch::kCUDA, 0);
  torch::manual_seed(11);
  struct MaskCase {
    std::string name;
    torch::Tensor mask;
  };
  std::vector<MaskCase> cases = {
      {"random", random_mask(37, 6, 0.4)},
      {"all active (k = E)", torch::ones({9, 4}, torch::kBool)},
      {"none active", torch::zeros({9, 4}, torch::kBool)},
      {"E = 1", random_mask(12, 1, 0.5)},
      {"N = 1", torch::tensor({0, 1, 1, 0, 1}).to(torch::kBool).reshape({1, 5})},
      {"N = 0", torch::zeros({0, 3}, torch::kBool)},
      // Enough entries for the scan to span many thread blocks.
      {"large", random_mask(5000, 16, 0.3)},
      // A float mask: any nonzero counts as active, as in routing_from_mask.
      {"float mask", (torch::rand({20, 5}) < 0.5).to(torch::kFloat) * 2.5},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto weights = torch::rand(c.mask.sizes(), torch::kDouble);
    const auto want = routing_from_mask(c.mask, weights);
    auto w_dev = weights.to(dev, torch::kFloat).requires_grad_();
    const auto got = routing_from_mask_cuda(c.mask.to(dev), w_dev);
    EXPECT_EQ(got.num_tokens, want.num_tokens);
    EXPECT_EQ(got.num_experts, want.num_experts);
    ASSERT_TRUE(got.token.is_cuda());
    EXPECT_TRUE(torch::equal(got.token.cpu(), want.token));
    EXPECT_TRUE(torch::equal(got.expert.cpu(), want.expert));
    EXPECT_TRUE(torch::equal(got.expert_offsets.cpu(), want.expert_offsets));
    EXPECT_TRUE(torch::allclose(got.gate.cpu().to(torch::kDouble), want.gate, 1e-7, 0));
    // The gates stay differentiable in the weights: d(sum gate)/d weights = the mask.
    if (got.num_pairs() > 0) {
      got.gate.sum().backward();
      EXPECT_TRUE(torch::equal(w_dev.grad().cpu(), (c.mask != 0).to(torch::kFloat)));
    }
  }
#endif
}

TEST(ExpertBackendCuda, BitwiseDeterministic) {
  SKIP_WITHOUT_CUDA();
#ifdef MOEBENCH_WITH_CUDA
  torch::manual_seed(12);
  // Many pairs per token and per expert, so any order-dependent reduction would show.
  const auto p =
      make_problem("determinism", 512, 256, 128, 256, 8, false, random_mask(512, 8, 0.5), 13);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto a = run_cuda(p, dtype).all();
    const auto b = run_cuda(p, dtype).all();
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(torch::equal(a[i], b[i])) << kResultNames[i] << " differs between two runs";
    }
  }
#endif
}

TEST(ExpertBackendCuda, RejectsUnsupportedDtypeAndDevice) {
  SKIP_WITHOUT_CUDA();
#ifdef MOEBENCH_WITH_CUDA
  const torch::Device dev(torch::kCUDA, 0);
  const auto p = make_problem("dtype", 4, 8, 6, 8, 2, false, torch::ones({4, 2}, torch::kBool), 14);
  const auto layout = routing_from_mask(p.mask_NE, p.weights_NE);
  auto on = [&](const torch::Tensor& t) { return t.to(dev); };
  Routing r = layout;
  r.token = on(layout.token);
  r.expert = on(layout.expert);
  r.gate = on(layout.gate);
  r.expert_offsets = on(layout.expert_offsets);
  // float64 on the GPU is not a supported dtype of the CUDA kernels.
  EXPECT_THROW(expert_swiglu_cuda(on(p.x), on(p.gate_in), false,
                                  {on(p.w_gate), on(p.w_up), on(p.w_down)}, r),
               std::invalid_argument);
  // CPU tensors are refused with a message that points at the reference/cpu backends.
  EXPECT_THROW(expert_swiglu_cuda(p.x.to(torch::kFloat), p.gate_in.to(torch::kFloat), false,
                                  {p.w_gate, p.w_up, p.w_down}, r),
               std::invalid_argument);
#endif
}

}  // namespace
}  // namespace moebench::kernels
