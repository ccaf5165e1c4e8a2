// The fast CPU expert backend against the reference (plain LibTorch autograd) and hand-written
// formulas: forward and every gradient, awkward shapes, determinism, and the dispatcher.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "baselines/registry.h"
#include "kernels/backends.h"
#include "kernels/expert_ops.h"
#include "kernels/expert_ops_cpu.h"
#include "kernels/routing.h"
#include "models/moe.h"

namespace moebench::kernels {
namespace {

struct Shape {
  int64_t N, H, I, E, K;
  bool per_pair;  // low-rank gate: gate_in is [N*E, K]
};

// Everything a run needs, in float64; run() casts to the dtype under test.
struct Problem {
  Shape s;
  torch::Tensor x_NH, gate_in, weights_NE, mask_NE, dy_NH;
  ExpertWeights w;
};

struct Result {
  torch::Tensor y, dx, dgate_in, dgate_NE, dG, dU, dD;
  std::vector<std::pair<const char*, torch::Tensor>> fields() const {
    return {{"y", y},   {"dx", dx}, {"dgate_in", dgate_in}, {"dgate", dgate_NE}, {"dG", dG},
            {"dU", dU}, {"dD", dD}};
  }
};

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

Problem make_problem(const Shape& s, const torch::Tensor& mask_NE, uint64_t seed) {
  torch::manual_seed(seed);
  Problem p;
  p.s = s;
  p.x_NH = torch::randn({s.N, s.H}, kF64);
  p.gate_in = torch::randn({s.per_pair ? s.N * s.E : s.N, s.K}, kF64);
  p.weights_NE = torch::rand({s.N, s.E}, kF64) + 0.1;
  p.w.gate_EIK = torch::randn({s.E, s.I, s.K}, kF64) / std::sqrt(double(s.K));
  p.w.up_EIH = torch::randn({s.E, s.I, s.H}, kF64) / std::sqrt(double(s.H));
  p.w.down_EHI = torch::randn({s.E, s.H, s.I}, kF64) / std::sqrt(double(s.I));
  p.mask_NE = mask_NE.to(torch::kBool);
  p.dy_NH = torch::randn({s.N, s.H}, kF64);
  return p;
}

// Random mask of the given density; token 0 always has no expert (the k_n = 0 case).
torch::Tensor random_mask(int64_t N, int64_t E, double density, uint64_t seed) {
  torch::manual_seed(seed + 1000);
  auto m = torch::rand({N, E}, kF64) < density;
  if (N > 1) m[0].fill_(false);
  return m;
}

torch::Tensor leaf(const torch::Tensor& t, torch::ScalarType dtype) {
  return t.to(dtype).detach().requires_grad_();
}

// One forward + backward (upstream gradient dy) through expert_swiglu with this backend.
Result run(const Problem& p, Backend backend, torch::ScalarType dtype) {
  const auto x = leaf(p.x_NH, dtype), gin = leaf(p.gate_in, dtype);
  const auto wt = leaf(p.weights_NE, dtype);
  ExpertWeights w{leaf(p.w.gate_EIK, dtype), leaf(p.w.up_EIH, dtype), leaf(p.w.down_EHI, dtype)};
  const Routing r = routing_from_mask(p.mask_NE, wt);
  const auto y = expert_swiglu(x, gin, p.s.per_pair, w, r, backend);
  (y * p.dy_NH.to(dtype)).sum().backward();
  return {y.detach(),        x.grad(),        gin.grad(),       wt.grad(),
          w.gate_EIK.grad(), w.up_EIH.grad(), w.down_EHI.grad()};
}

// got (any dtype) against a float64 reference: max abs error <= rel * the reference's scale.
void expect_close(const Result& got, const Result& ref, double rel, const std::string& what) {
  const auto g = got.fields(), r = ref.fields();
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_TRUE(g[i].second.defined()) << what << ": " << g[i].first << " missing";
    ASSERT_EQ(g[i].second.sizes(), r[i].second.sizes()) << what << ": " << g[i].first;
    const double scale = r[i].second.abs().max().item<double>();
    const double diff = (g[i].second.to(torch::kDouble) - r[i].second).abs().max().item<double>();
    EXPECT_LE(diff, rel * scale + 1e-300)
        << what << ": " << g[i].first << " max abs diff " << diff << " at scale " << scale;
  }
}

// cpu backend against reference in float64 (tight) and float32 (loose, against float64).
void check_against_reference(const Problem& p, const std::string& what) {
  const Result ref = run(p, Backend::kReference, torch::kDouble);
  expect_close(run(p, Backend::kCpu, torch::kDouble), ref, 1e-12, what + " f64");
  expect_close(run(p, Backend::kCpu, torch::kFloat), ref, 2e-5, what + " f32");
  // The reference in float32 has the same rounding budget: a sanity check of the tolerance.
  expect_close(run(p, Backend::kReference, torch::kFloat), ref, 2e-5, what + " f32 reference");
}

TEST(ExpertBackendCpu, RandomInputsFullRankGate) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    const Shape s{37, 100, 24, 5, 100, false};
    check_against_reference(make_problem(s, random_mask(s.N, s.E, 0.4, seed), seed),
                            "full-rank seed " + std::to_string(seed));
  }
}

TEST(ExpertBackendCpu, RandomInputsLowRankGate) {
  for (uint64_t seed : {11u, 12u, 13u}) {
    const Shape s{41, 100, 20, 6, 5, true};
    check_against_reference(make_problem(s, random_mask(s.N, s.E, 0.35, seed), seed),
                            "low-rank seed " + std::to_string(seed));
  }
}

TEST(ExpertBackendCpu, EmptyExpert) {
  for (bool per_pair : {false, true}) {
    const Shape s{29, 100, 16, 4, per_pair ? 4 : 100, per_pair};
    auto m = random_mask(s.N, s.E, 0.6, 21);
    m.select(1, 1).fill_(false);
    m.select(1, 3).fill_(false);  // the last expert too: its segment ends the pair list
    const Result got = run(make_problem(s, m, 21), Backend::kCpu, torch::kDouble);
    // An expert that got no token gets exactly zero weight gradients.
    EXPECT_TRUE(got.dU[1].eq(0).all().item<bool>());
    EXPECT_TRUE(got.dD[3].eq(0).all().item<bool>());
    EXPECT_TRUE(got.dG[1].eq(0).all().item<bool>());
    check_against_reference(make_problem(s, m, 21), "empty expert");
  }
}

TEST(ExpertBackendCpu, AllTokensOnOneExpert) {
  const Shape s{33, 100, 16, 4, 100, false};
  auto m = torch::zeros({s.N, s.E}, torch::kBool);
  m.select(1, 2).fill_(true);
  check_against_reference(make_problem(s, m, 31), "one expert");
}

TEST(ExpertBackendCpu, EveryTokenOnEveryExpert) {  // k = E
  for (bool per_pair : {false, true}) {
    const Shape s{19, 100, 12, 5, per_pair ? 3 : 100, per_pair};
    check_against_reference(make_problem(s, torch::ones({s.N, s.E}, torch::kBool), 41), "k = E");
  }
}

TEST(ExpertBackendCpu, SingleToken) {
  for (bool per_pair : {false, true}) {
    const Shape s{1, 100, 8, 3, per_pair ? 2 : 100, per_pair};
    auto m = torch::zeros({1, 3}, torch::kBool);
    m[0][0] = true;
    m[0][2] = true;
    check_against_reference(make_problem(s, m, 51), "N = 1");
  }
}

TEST(ExpertBackendCpu, NoPairsAtAll) {
  const Shape s{7, 100, 8, 3, 100, false};
  const Result got =
      run(make_problem(s, torch::zeros({7, 3}, torch::kBool), 52), Backend::kCpu, torch::kFloat);
  for (const auto& [name, t] : got.fields()) {
    EXPECT_TRUE(t.eq(0).all().item<bool>()) << name << " must be exactly zero";
  }
}

TEST(ExpertBackendCpu, TokensWithoutExpertsGetExactZeros) {
  const Shape s{50, 64, 16, 4, 64, false};
  auto m = random_mask(s.N, s.E, 0.5, 61);
  for (int64_t n : {0, 7, 49}) m[n].fill_(false);
  const Result got = run(make_problem(s, m, 61), Backend::kCpu, torch::kFloat);
  for (int64_t n : {0, 7, 49}) {
    EXPECT_TRUE(got.y[n].eq(0).all().item<bool>()) << "y row " << n;
    EXPECT_TRUE(got.dx[n].eq(0).all().item<bool>()) << "dx row " << n;
    EXPECT_TRUE(got.dgate_in[n].eq(0).all().item<bool>()) << "dgate_in row " << n;
  }
}

// E = 1 with every token on it is a dense SwiGLU FFN scaled by the gate: written out by hand
// with matmuls (no kernels code), differentiated by autograd.
TEST(ExpertBackendCpu, SingleExpertEqualsDenseSwiGlu) {
  const Shape s{23, 100, 20, 1, 100, false};
  const Problem p = make_problem(s, torch::ones({s.N, 1}, torch::kBool), 71);
  Result dense;
  {
    const auto x = leaf(p.x_NH, torch::kDouble), gin = leaf(p.gate_in, torch::kDouble);
    const auto wt = leaf(p.weights_NE, torch::kDouble);
    const auto G = leaf(p.w.gate_EIK, torch::kDouble), U = leaf(p.w.up_EIH, torch::kDouble);
    const auto D = leaf(p.w.down_EHI, torch::kDouble);
    const auto gp = torch::mm(gin, G[0].t());
    const auto h = gp * torch::sigmoid(gp) * torch::mm(x, U[0].t());
    const auto y = torch::mm(h, D[0].t()) * wt;  // wt [N, 1] broadcasts over H
    (y * p.dy_NH).sum().backward();
    dense = {y.detach(), x.grad(), gin.grad(), wt.grad(), G.grad(), U.grad(), D.grad()};
  }
  expect_close(run(p, Backend::kCpu, torch::kDouble), dense, 1e-12, "E = 1 dense");
  expect_close(run(p, Backend::kCpu, torch::kFloat), dense, 2e-5, "E = 1 dense f32");
}

// The top-k lowering (A = N*k, a different builder of the same Routing) through both backends.
TEST(ExpertBackendCpu, TopKRouting) {
  torch::manual_seed(81);
  const int64_t N = 45, H = 100, I = 16, E = 6, k = 3;
  const auto topk = std::get<1>(torch::rand({N, E}).topk(k, 1));
  auto run_topk = [&](Backend b) {
    torch::manual_seed(82);
    const auto x = torch::randn({N, H}, kF64).requires_grad_();
    const auto wk = torch::rand({N, k}, kF64).requires_grad_();
    ExpertWeights w{(torch::randn({E, I, H}, kF64) * 0.1).requires_grad_(),
                    (torch::randn({E, I, H}, kF64) * 0.1).requires_grad_(),
                    (torch::randn({E, H, I}, kF64) * 0.1).requires_grad_()};
    const auto y = expert_swiglu(x, x, false, w, routing_from_topk(topk, wk, E), b);
    y.pow(2).sum().backward();
    return std::vector<torch::Tensor>{y.detach(),        x.grad(),        wk.grad(),
                                      w.gate_EIK.grad(), w.up_EIH.grad(), w.down_EHI.grad()};
  };
  const auto ref = run_topk(Backend::kReference), got = run_topk(Backend::kCpu);
  for (size_t i = 0; i < ref.size(); ++i) {
    const double scale = ref[i].abs().max().item<double>();
    EXPECT_LE((got[i] - ref[i]).abs().max().item<double>(), 1e-12 * scale) << "field " << i;
  }
}

// Inputs that need no gradient get none, and the rest are still right.
TEST(ExpertBackendCpu, OnlySomeInputsNeedGradients) {
  const Shape s{31, 100, 16, 4, 100, false};
  const Problem p = make_problem(s, random_mask(s.N, s.E, 0.5, 91), 91);
  const Result ref = run(p, Backend::kReference, torch::kDouble);
  const auto x = leaf(p.x_NH, torch::kDouble);
  ExpertWeights w{p.w.gate_EIK, p.w.up_EIH, leaf(p.w.down_EHI, torch::kDouble)};
  const Routing r = routing_from_mask(p.mask_NE, p.weights_NE);  // gate needs no grad
  const auto y = expert_swiglu_cpu(x, p.gate_in, false, w, r);
  (y * p.dy_NH).sum().backward();
  EXPECT_FALSE(p.gate_in.grad().defined());
  EXPECT_FALSE(p.w.up_EIH.grad().defined());
  EXPECT_LE((x.grad() - ref.dx).abs().max().item<double>(),
            1e-12 * ref.dx.abs().max().item<double>());
  EXPECT_LE((w.down_EHI.grad() - ref.dD).abs().max().item<double>(),
            1e-12 * ref.dD.abs().max().item<double>());
  // Nothing needs a gradient at all: plain inference.
  torch::NoGradGuard no_grad;
  const auto y2 = expert_swiglu_cpu(p.x_NH, p.gate_in, false, p.w, r);
  EXPECT_FALSE(y2.requires_grad());
  EXPECT_LE((y2 - ref.y).abs().max().item<double>(), 1e-12 * ref.y.abs().max().item<double>());
}

TEST(ExpertBackendCpu, TwoRunsAreBitwiseEqual) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  for (bool per_pair : {false, true}) {
    const Shape s{300, 64, 32, 6, per_pair ? 8 : 64, per_pair};
    const Problem p = make_problem(s, random_mask(s.N, s.E, 0.4, 101), 101);
    const Result a = run(p, Backend::kCpu, torch::kFloat), b = run(p, Backend::kCpu, torch::kFloat);
    const auto fa = a.fields(), fb = b.fields();
    for (size_t i = 0; i < fa.size(); ++i) {
      EXPECT_TRUE(torch::equal(fa[i].second, fb[i].second)) << fa[i].first;
    }
  }
  torch::set_num_threads(threads);
}

TEST(ExpertBackendCpu, RejectsBadInputs) {
  const Shape s{10, 16, 8, 3, 16, false};
  const Problem p = make_problem(s, random_mask(s.N, s.E, 0.5, 111), 111);
  const Routing r = routing_from_mask(p.mask_NE, p.weights_NE);
  EXPECT_THROW(expert_swiglu_cpu(p.x_NH.to(torch::kInt), p.gate_in, false, p.w, r),
               std::invalid_argument);
  EXPECT_THROW(expert_swiglu_cpu(p.x_NH.to(torch::kFloat), p.gate_in, false, p.w, r),
               std::invalid_argument);  // mixed dtypes
  EXPECT_THROW(expert_swiglu_cpu(p.x_NH, p.gate_in, true, p.w, r), std::invalid_argument);
  Routing bad = r;
  bad.token = r.token.clone();
  if (bad.token.numel() > 0) bad.token[0] = s.N;  // out of range
  EXPECT_THROW(expert_swiglu_cpu(p.x_NH, p.gate_in, false, p.w, bad), std::invalid_argument);
  bad = r;
  bad.expert_offsets = r.expert_offsets.slice(0, 0, s.E);  // E entries instead of E+1
  EXPECT_THROW(expert_swiglu_cpu(p.x_NH, p.gate_in, false, p.w, bad), std::invalid_argument);
  try {
    expert_swiglu_cpu(p.x_NH.to(torch::kBFloat16), p.gate_in, false, p.w, r);
    FAIL() << "bfloat16 must be rejected";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("reference"), std::string::npos) << e.what();
  }
}

// ---- the individual ops --------------------------------------------------------------------

TEST(ExpertBackendCpuOps, TokenCsrByHand) {
  const auto csr = cpu::build_token_csr(torch::tensor({2, 0, 2, 1, 0}, torch::kLong), 4);
  EXPECT_TRUE(torch::equal(csr.offsets_N1, torch::tensor({0, 2, 3, 5, 5}, torch::kLong)));
  EXPECT_TRUE(torch::equal(csr.pairs_A, torch::tensor({1, 4, 3, 0, 2}, torch::kLong)));
  EXPECT_THROW(cpu::build_token_csr(torch::tensor({0, 4}, torch::kLong), 4), std::invalid_argument);
}

TEST(ExpertBackendCpuOps, GatherRows) {
  torch::manual_seed(121);
  const auto src = torch::randn({9, 7});
  const auto idx = torch::tensor({8, 0, 0, 3}, torch::kLong);
  EXPECT_TRUE(torch::equal(cpu::gather_rows(src, idx), src.index_select(0, idx)));
  EXPECT_THROW(cpu::gather_rows(src, torch::tensor({9}, torch::kLong)), std::invalid_argument);
}

// Offsets with an empty first, middle and last segment.
const std::vector<int64_t> kOffsets{0, 0, 5, 5, 12, 12};

TEST(ExpertBackendCpuOps, GroupedMmForwardMatchesReference) {
  torch::manual_seed(131);
  const auto off = torch::tensor(kOffsets, torch::kLong);
  const auto x = torch::randn({12, 100}, kF64), w = torch::randn({5, 9, 100}, kF64);
  const auto got = cpu::grouped_mm_forward(x, w, off), ref = grouped_mm(x, w, off);
  EXPECT_LE((got - ref).abs().max().item<double>(), 1e-12 * ref.abs().max().item<double>());
}

// Input-grad and weight-grad modes against autograd through the reference grouped_mm.
TEST(ExpertBackendCpuOps, GroupedMmGradModesMatchAutograd) {
  torch::manual_seed(132);
  const auto off = torch::tensor(kOffsets, torch::kLong);
  const auto x = torch::randn({12, 100}, kF64).requires_grad_();
  const auto w = torch::randn({5, 9, 100}, kF64).requires_grad_();
  const auto dout = torch::randn({12, 9}, kF64);
  (grouped_mm(x, w, off) * dout).sum().backward();
  const auto dx = cpu::grouped_mm_input_grad(dout, w.detach(), off);
  const auto dw = cpu::grouped_mm_weight_grad(dout, x.detach(), off, 5);
  EXPECT_LE((dx - x.grad()).abs().max().item<double>(),
            1e-12 * x.grad().abs().max().item<double>());
  EXPECT_LE((dw - w.grad()).abs().max().item<double>(),
            1e-12 * w.grad().abs().max().item<double>());
  for (int64_t e : {0, 2, 4}) EXPECT_TRUE(dw[e].eq(0).all().item<bool>()) << "empty expert " << e;
}

TEST(ExpertBackendCpuOps, CombineMatchesReference) {
  torch::manual_seed(141);
  const auto token = torch::tensor({0, 3, 5, 0, 1, 5, 3, 0}, torch::kLong);  // 2 and 4: no pairs
  const auto out = torch::randn({8, 100}), gate = torch::rand({8});
  const auto got = cpu::combine(out, gate, token, 6), ref = combine(out, gate, token, 6);
  EXPECT_LE((got - ref).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(got[2].eq(0).all().item<bool>());
  EXPECT_TRUE(got[4].eq(0).all().item<bool>());
  // Undefined gate = plain per-token sum: token 0 has pairs 0, 3, 7.
  const auto sum = cpu::combine(out, torch::Tensor(), token, 6);
  EXPECT_LE((sum[0] - (out[0] + out[3] + out[7])).abs().max().item<float>(), 1e-6);
}

// ---- the dispatcher ------------------------------------------------------------------------

TEST(ExpertBackendDispatch, AutoPicksByDeviceAndDtype) {
  EXPECT_EQ(resolve_backend("auto", torch::kCPU, torch::kFloat), Backend::kCpu);
  EXPECT_EQ(resolve_backend("auto", torch::kCPU, torch::kDouble), Backend::kCpu);
  EXPECT_EQ(resolve_backend("auto", torch::kCPU, torch::kBFloat16), Backend::kReference);
  EXPECT_EQ(resolve_backend("auto", torch::kCPU), Backend::kCpu);  // default dtype: float32
  EXPECT_EQ(resolve_backend("reference", torch::kCPU, torch::kBFloat16), Backend::kReference);
  EXPECT_EQ(resolve_backend("cpu", torch::kCPU, torch::kDouble), Backend::kCpu);
#ifdef MOEBENCH_WITH_CUDA
  EXPECT_EQ(resolve_backend("auto", torch::Device(torch::kCUDA, 0), torch::kBFloat16),
            Backend::kCuda);
  EXPECT_EQ(resolve_backend("auto", torch::Device(torch::kCUDA, 0), torch::kDouble),
            Backend::kReference);
#else
  EXPECT_EQ(resolve_backend("auto", torch::Device(torch::kCUDA, 0), torch::kFloat),
            Backend::kReference);
#endif
}

TEST(ExpertBackendDispatch, ForcedAndInvalidRequests) {
  EXPECT_THROW(resolve_backend("cpu", torch::kCPU, torch::kBFloat16), std::invalid_argument);
  EXPECT_THROW(resolve_backend("cpu", torch::Device(torch::kCUDA, 0), torch::kFloat),
               std::invalid_argument);
  EXPECT_THROW(resolve_backend("fast", torch::kCPU, torch::kFloat), std::invalid_argument);
  EXPECT_THROW(check_backend_request("CPU"), std::invalid_argument);
  EXPECT_NO_THROW(check_backend_request("auto"));
#ifdef MOEBENCH_WITH_CUDA
  EXPECT_THROW(resolve_backend("cuda", torch::kCPU, torch::kFloat), std::invalid_argument);
#else
  try {
    resolve_backend("cuda", torch::Device(torch::kCUDA, 0), torch::kFloat);
    FAIL() << "cuda must be refused in a build without it";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA"), std::string::npos) << e.what();
  }
#endif
}

// The MoE layer resolves per forward and reports what it used; both backends agree.
TEST(ExpertBackendDispatch, MoeLayerResolvesPerForward) {
  models::MoeOptions opts;
  opts.method = "topk";
  opts.experts = 4;
  opts.intermediate = 16;
  const int64_t H = 12;
  torch::manual_seed(151);
  models::MoeLayer fast(H, opts, baselines::make_policy(H, opts, 0.2), 0.2);
  opts.backend = "reference";
  models::MoeLayer ref(H, opts, baselines::make_policy(H, opts, 0.2), 0.2);
  {
    torch::NoGradGuard ng;
    const auto fp = fast->parameters(), rp = ref->parameters();
    ASSERT_EQ(fp.size(), rp.size());
    for (size_t i = 0; i < fp.size(); ++i) rp[i].copy_(fp[i]);
  }
  EXPECT_EQ(fast->last_backend_name(), "");
  const auto x = torch::randn({20, H});
  const auto yf = fast->forward(x, nullptr), yr = ref->forward(x, nullptr);
  EXPECT_EQ(fast->last_backend_name(), "cpu");
  EXPECT_EQ(ref->last_backend_name(), "reference");
  EXPECT_LE((yf - yr).abs().max().item<float>(), 1e-5 * (1 + yr.abs().max().item<float>()));
  fast->to(torch::kDouble);
  fast->forward(x.to(torch::kDouble), nullptr);
  EXPECT_EQ(fast->last_backend_name(), "cpu");
  opts.backend = "bogus";
  EXPECT_THROW(models::MoeLayer(H, opts, baselines::make_policy(H, opts, 0.2), 0.2),
               std::invalid_argument);
}

}  // namespace
}  // namespace moebench::kernels
