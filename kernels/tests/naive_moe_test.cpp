// The benchmark's naive peer (kernels/bench/naive_moe.h) must compute exactly the expert block:
// forward against a per-token scalar loop, forward and every gradient against expert_swiglu.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/bench/naive_moe.h"
#include "kernels/expert_ops.h"
#include "kernels/routing.h"

namespace moebench::kernels {
namespace {

struct Case {
  int64_t N, H, I, E, K;
  bool per_pair;  // low-rank gate: gate_in is [N*E, K]
};

struct Inputs {
  torch::Tensor x_NH, gate_in, weights_NE, mask_NE, dy_NH;
  ExpertWeights w;
  std::vector<torch::Tensor> leaves() const {
    return {x_NH, gate_in, weights_NE, w.gate_EIK, w.up_EIH, w.down_EHI};
  }
};

Inputs make_inputs(const Case& c, const torch::Tensor& mask_NE, uint64_t seed) {
  torch::manual_seed(seed);
  const auto d = torch::TensorOptions().dtype(torch::kDouble);
  Inputs in;
  in.x_NH = torch::randn({c.N, c.H}, d).requires_grad_();
  in.gate_in = torch::randn({c.per_pair ? c.N * c.E : c.N, c.K}, d).requires_grad_();
  in.weights_NE = torch::rand({c.N, c.E}, d).requires_grad_();
  in.w.gate_EIK = (torch::randn({c.E, c.I, c.K}, d) * 0.3).requires_grad_();
  in.w.up_EIH = (torch::randn({c.E, c.I, c.H}, d) * 0.3).requires_grad_();
  in.w.down_EHI = (torch::randn({c.E, c.H, c.I}, d) * 0.3).requires_grad_();
  in.mask_NE = mask_NE;
  in.dy_NH = torch::randn({c.N, c.H}, d);
  return in;
}

// y[n] by hand: one token, one expert, one output element at a time, in doubles.
torch::Tensor per_token_loop(const Case& c, const Inputs& in) {
  const auto x = in.x_NH.detach().contiguous();
  const auto g = in.gate_in.detach().contiguous();
  const auto wt = in.weights_NE.detach().contiguous();
  const auto m = in.mask_NE.contiguous();
  const auto G = in.w.gate_EIK.detach().contiguous();
  const auto U = in.w.up_EIH.detach().contiguous();
  const auto D = in.w.down_EHI.detach().contiguous();
  auto y = torch::zeros({c.N, c.H}, torch::kDouble);
  auto xa = x.accessor<double, 2>();
  auto ga = g.accessor<double, 2>();
  auto wa = wt.accessor<double, 2>();
  auto ma = m.accessor<bool, 2>();
  auto Ga = G.accessor<double, 3>();
  auto Ua = U.accessor<double, 3>();
  auto Da = D.accessor<double, 3>();
  auto ya = y.accessor<double, 2>();
  std::vector<double> h(c.I);
  for (int64_t n = 0; n < c.N; ++n) {
    for (int64_t e = 0; e < c.E; ++e) {
      if (!ma[n][e]) continue;
      const int64_t grow = c.per_pair ? n * c.E + e : n;
      for (int64_t i = 0; i < c.I; ++i) {
        double a = 0, b = 0;
        for (int64_t k = 0; k < c.K; ++k) a += Ga[e][i][k] * ga[grow][k];
        for (int64_t j = 0; j < c.H; ++j) b += Ua[e][i][j] * xa[n][j];
        h[i] = a / (1 + std::exp(-a)) * b;
      }
      for (int64_t j = 0; j < c.H; ++j) {
        double o = 0;
        for (int64_t i = 0; i < c.I; ++i) o += Da[e][j][i] * h[i];
        ya[n][j] += wa[n][e] * o;
      }
    }
  }
  return y;
}

// Forward of naive vs the loop and vs expert_swiglu; all six gradients vs expert_swiglu's.
void check_case(const Case& c, const torch::Tensor& mask_NE, uint64_t seed) {
  const Inputs in = make_inputs(c, mask_NE, seed);
  const auto y_naive =
      bench::naive_moe(in.x_NH, in.gate_in, c.per_pair, in.w, in.mask_NE, in.weights_NE);
  EXPECT_TRUE(torch::allclose(y_naive.detach(), per_token_loop(c, in), 1e-10, 1e-10));
  const auto grads_naive = torch::autograd::grad({y_naive}, in.leaves(), {in.dy_NH});

  const Routing r = routing_from_mask(in.mask_NE, in.weights_NE);
  const auto y_ref = expert_swiglu(in.x_NH, in.gate_in, c.per_pair, in.w, r, Backend::kReference);
  EXPECT_TRUE(torch::allclose(y_naive.detach(), y_ref.detach(), 1e-10, 1e-10));
  const auto grads_ref = torch::autograd::grad({y_ref}, in.leaves(), {in.dy_NH});
  const char* names[] = {"x", "gate_in", "weights", "gate_w", "up_w", "down_w"};
  for (size_t i = 0; i < grads_ref.size(); ++i) {
    ASSERT_TRUE(grads_naive[i].defined()) << names[i];
    EXPECT_TRUE(torch::allclose(grads_naive[i], grads_ref[i], 1e-10, 1e-10))
        << names[i] << " max diff " << (grads_naive[i] - grads_ref[i]).abs().max().item<double>();
  }
  // Gradients reach the gate weights only where the mask routes a token.
  EXPECT_EQ(grads_naive[2].masked_select(in.mask_NE.logical_not()).abs().sum().item<double>(), 0);
}

// A mask with an awkward pattern: expert 1 empty, token 0 with no expert, token 1 with all.
torch::Tensor awkward_mask(int64_t N, int64_t E, uint64_t seed) {
  torch::manual_seed(seed);
  auto m = torch::rand({N, E}) < 0.4;
  m.select(1, 1).fill_(false);
  m[0].fill_(false);
  m[1].fill_(true);
  m[1][1] = false;
  return m;
}

TEST(NaiveMoe, FullRankGateAwkwardMask) {
  const Case c{37, 100, 24, 5, 100, false};
  check_case(c, awkward_mask(c.N, c.E, 1), 11);
}

TEST(NaiveMoe, LowRankGatePerPair) {
  const Case c{29, 20, 12, 6, 7, true};
  check_case(c, awkward_mask(c.N, c.E, 2), 12);
}

TEST(NaiveMoe, AllTokensToOneExpert) {
  const Case c{16, 12, 8, 4, 12, false};
  auto m = torch::zeros({c.N, c.E}, torch::kBool);
  m.select(1, 2).fill_(true);
  check_case(c, m, 13);
}

TEST(NaiveMoe, EveryTokenEveryExpert) {  // k = E
  const Case c{10, 9, 5, 3, 4, true};
  check_case(c, torch::ones({c.N, c.E}, torch::kBool), 14);
}

TEST(NaiveMoe, RejectsMismatchedMask) {
  const Case c{8, 6, 4, 3, 6, false};
  const Inputs in = make_inputs(c, torch::ones({c.N, c.E}, torch::kBool), 15);
  EXPECT_THROW(bench::naive_moe(in.x_NH, in.gate_in, false, in.w,
                                torch::ones({c.N, c.E + 1}, torch::kBool), in.weights_NE),
               std::invalid_argument);
}

}  // namespace
}  // namespace moebench::kernels
