// Shared test helpers: autograd gradients against central finite differences in double, and
// float results against double-precision slow-loop references.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace moebench::testing {

// `tensors` already hold .grad() of f() (call f().backward() first). About `samples` entries
// of each tensor (every entry when samples <= 0) are perturbed by ±1e-6 in place and restored.
inline void expect_gradients_match_finite_differences(const std::vector<torch::Tensor>& tensors,
                                                      const std::function<torch::Tensor()>& f,
                                                      int64_t samples = 7) {
  const double eps = 1e-6;
  for (const auto& p : tensors) {
    auto flat = p.detach().view({-1});
    const auto g = p.grad().view({-1});
    const int64_t step = samples <= 0 ? 1 : std::max<int64_t>(1, flat.numel() / samples);
    for (int64_t i = 0; i < flat.numel(); i += step) {
      torch::NoGradGuard ng;
      const double orig = flat[i].item<double>();
      flat[i] = orig + eps;
      const double up = f().item<double>();
      flat[i] = orig - eps;
      const double down = f().item<double>();
      flat[i] = orig;
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(g[i].item<double>(), fd, 1e-6 + 1e-5 * std::abs(fd)) << "element " << i;
    }
  }
}

// A float32 result against a double-precision reference: the largest absolute error must be
// within 2e-5 of the reference tensor's scale (its largest magnitude).
inline void expect_close_to_reference(const torch::Tensor& got, const torch::Tensor& reference,
                                      const char* what) {
  const double diff = (got.to(torch::kDouble) - reference).abs().max().item<double>();
  const double scale = reference.abs().max().item<double>();
  EXPECT_LE(diff, 2e-5 * scale + 1e-7) << what << ": max abs diff " << diff << ", scale " << scale;
}

}  // namespace moebench::testing
