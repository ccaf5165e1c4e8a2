// The attention layer against a slow float64 loop written from the definitions (METHODS.md,
// "Paper configurations"): rotate-half RoPE at each token's position, query head h reading kv
// head h / (q_heads / kv_heads), softmax of q·k / √d over the keys a query may see, heads
// concatenated and projected. Covers the causal path, packed rows (own positions and key masks)
// and the query subsets the zero-shot scorer asks for.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "models/transformer.h"

namespace moebench::models {
namespace {

constexpr int64_t kHidden = 24, kHeadDim = 6;

struct Case {
  int64_t q_heads, kv_heads;
};

Attention make_attention(const Case& c) {
  ModelOptions o;
  o.hidden = kHidden, o.q_heads = c.q_heads, o.kv_heads = c.kv_heads, o.head_dim = kHeadDim;
  o.attn_dropout = 0.0;
  Attention a(o);
  torch::NoGradGuard g;
  for (auto* w : {&a->wq, &a->wk, &a->wv, &a->wo}) w->normal_(0, 0.3);
  a->eval();
  return a;
}

// RoPE tables in float for the layer ([B, 1, T, d]) from each token's position.
std::pair<torch::Tensor, torch::Tensor> rope_tables(const std::vector<std::vector<int64_t>>& pos) {
  const auto B = static_cast<int64_t>(pos.size()), T = static_cast<int64_t>(pos[0].size());
  auto cos = torch::empty({B, 1, T, kHeadDim}, torch::kDouble);
  auto sin = torch::empty({B, 1, T, kHeadDim}, torch::kDouble);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < kHeadDim; ++j) {
        const int64_t i = j % (kHeadDim / 2);
        const double ang = static_cast<double>(pos[b][t]) *
                           std::pow(1e4, -2.0 * static_cast<double>(i) / kHeadDim);
        cos[b][0][t][j] = std::cos(ang);
        sin[b][0][t][j] = std::sin(ang);
      }
    }
  }
  return {cos.to(torch::kFloat), sin.to(torch::kFloat)};
}

// out[b][q] for the query at position `query[b][q]`, attending to keys s with allowed(b, t, s).
template <typename Allowed>
torch::Tensor slow_attention(const Attention& a, const torch::Tensor& x,
                             const std::vector<std::vector<int64_t>>& pos,
                             const std::vector<std::vector<int64_t>>& query, Allowed allowed) {
  const int64_t B = x.size(0), T = x.size(1), H = a->q_heads, KV = a->kv_heads, d = kHeadDim;
  const auto xd = x.to(torch::kDouble);
  const auto X = xd.accessor<double, 3>();
  const auto wq = a->wq.to(torch::kDouble), wk = a->wk.to(torch::kDouble);
  const auto wv = a->wv.to(torch::kDouble), wo = a->wo.to(torch::kDouble);
  const auto Wq = wq.accessor<double, 2>(), Wk = wk.accessor<double, 2>();
  const auto Wv = wv.accessor<double, 2>(), Wo = wo.accessor<double, 2>();
  // Projection of token (b, t) by rows [r0, r0 + d) of W, rotated at its position if asked.
  auto project = [&](const auto& W, int64_t r0, int64_t b, int64_t t, bool rotate) {
    std::vector<double> v(d, 0.0);
    for (int64_t j = 0; j < d; ++j) {
      for (int64_t c = 0; c < kHidden; ++c) v[j] += W[r0 + j][c] * X[b][t][c];
    }
    if (!rotate) return v;
    std::vector<double> r(d);
    for (int64_t j = 0; j < d; ++j) {
      const int64_t i = j % (d / 2);
      const double ang =
          static_cast<double>(pos[b][t]) * std::pow(1e4, -2.0 * static_cast<double>(i) / d);
      const double partner = j < d / 2 ? -v[j + d / 2] : v[j - d / 2];
      r[j] = v[j] * std::cos(ang) + partner * std::sin(ang);
    }
    return r;
  };
  const auto Q = static_cast<int64_t>(query[0].size());
  auto out = torch::zeros({B, Q, kHidden}, torch::kDouble);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t qi = 0; qi < Q; ++qi) {
      const int64_t t = query[b][qi];
      std::vector<double> heads(H * d, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kv = h / (H / KV);
        const auto q = project(Wq, h * d, b, t, true);
        std::vector<double> score(T, -INFINITY);
        double mx = -INFINITY;
        for (int64_t s = 0; s < T; ++s) {
          if (!allowed(b, t, s)) continue;
          const auto k = project(Wk, kv * d, b, s, true);
          double dot = 0;
          for (int64_t j = 0; j < d; ++j) dot += q[j] * k[j];
          score[s] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, score[s]);
        }
        double z = 0;
        for (int64_t s = 0; s < T; ++s) z += std::isinf(score[s]) ? 0.0 : std::exp(score[s] - mx);
        for (int64_t s = 0; s < T; ++s) {
          if (std::isinf(score[s])) continue;
          const auto v = project(Wv, kv * d, b, s, false);
          const double p = std::exp(score[s] - mx) / z;
          for (int64_t j = 0; j < d; ++j) heads[h * d + j] += p * v[j];
        }
      }
      for (int64_t c = 0; c < kHidden; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < H * d; ++j) acc += Wo[c][j] * heads[j];
        out[b][qi][c] = acc;
      }
    }
  }
  return out;
}

torch::Tensor as_index(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(rows.size()), -1});
}

double max_error(const torch::Tensor& got, const torch::Tensor& ref) {
  return (got.to(torch::kDouble) - ref).abs().max().item<double>();
}

TEST(Attention, CausalRowsAndQuerySubsetsMatchSlowFloat64Loop) {
  for (const Case c : {Case{4, 2}, Case{3, 3}, Case{4, 1}}) {
    torch::manual_seed(3);
    auto a = make_attention(c);
    const int64_t B = 2, T = 7;
    const auto x = torch::randn({B, T, kHidden});
    std::vector<std::vector<int64_t>> pos(B), all(B);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) pos[b].push_back(t), all[b].push_back(t);
    }
    const auto causal = [](int64_t, int64_t t, int64_t s) { return s <= t; };
    torch::NoGradGuard g;
    // The plain path takes [T, d] tables.
    const auto [cos, sin] = rope_tables(pos);
    const auto full = a->forward(x, cos[0][0], sin[0][0]);
    EXPECT_LT(max_error(full, slow_attention(a, x, pos, all, causal)), 1e-5)
        << c.q_heads << "/" << c.kv_heads;
    // A subset of queries per row (repeats allowed), same keys.
    const std::vector<std::vector<int64_t>> some = {{6, 2, 2}, {0, 5, 3}};
    const auto part = a->forward(x, cos[0][0], sin[0][0], {}, as_index(some));
    ASSERT_EQ(part.sizes(), (std::vector<int64_t>{B, 3, kHidden}));
    EXPECT_LT(max_error(part, slow_attention(a, x, pos, some, causal)), 1e-5);
  }
}

TEST(Attention, PackedRowsWithOwnPositionsAndKeyMasksMatchSlowFloat64Loop) {
  // One row: a 3-token context, then two 2-token continuations, each at positions 3, 4 and
  // seeing the context and its own tokens; a second row of 7 plain tokens with a padding tail.
  torch::manual_seed(4);
  auto a = make_attention({4, 2});
  const int64_t B = 2, T = 7;
  const auto x = torch::randn({B, T, kHidden});
  const std::vector<std::vector<int64_t>> pos = {{0, 1, 2, 3, 4, 3, 4}, {0, 1, 2, 3, 4, 5, 6}};
  const std::vector<std::vector<int>> segment = {{-1, -1, -1, 0, 0, 1, 1},
                                                 {-1, -1, -1, -1, -1, 2, 3}};
  auto ok = [&](int64_t b, int64_t t, int64_t s) {
    return s <= t && (segment[b][s] == -1 || segment[b][s] == segment[b][t]);
  };
  auto allowed = torch::zeros({B, T, T}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t s = 0; s < T; ++s) allowed[b][t][s] = ok(b, t, s);
    }
  }
  const auto [cos, sin] = rope_tables(pos);
  std::vector<std::vector<int64_t>> all(B);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) all[b].push_back(t);
  }
  torch::NoGradGuard g;
  EXPECT_LT(max_error(a->forward(x, cos, sin, allowed), slow_attention(a, x, pos, all, ok)), 1e-5);
  const std::vector<std::vector<int64_t>> some = {{2, 4, 6}, {6, 1, 1}};
  EXPECT_LT(max_error(a->forward(x, cos, sin, allowed, as_index(some)),
                      slow_attention(a, x, pos, some, ok)),
            1e-5);
}

TEST(Attention, GradientsMatchAPlainFloat64Formulation) {
  // Training runs the same forward with autograd: the gradients of the weights and the input in
  // double precision against the textbook formulation (K and V repeated per query head, scores
  // scaled after the product, a fresh masked copy).
  torch::manual_seed(5);
  auto a = make_attention({4, 2});
  a->to(torch::kDouble);
  const int64_t B = 2, T = 6, H = 4, KV = 2, d = kHeadDim;
  const auto x0 = torch::randn({B, T, kHidden}, torch::kDouble);
  std::vector<std::vector<int64_t>> pos(B, std::vector<int64_t>(T));
  for (auto& r : pos) {
    for (int64_t t = 0; t < T; ++t) r[t] = t;
  }
  auto [cos, sin] = rope_tables(pos);
  cos = cos[0][0].to(torch::kDouble), sin = sin[0][0].to(torch::kDouble);
  const auto weight = torch::randn({B, T, kHidden}, torch::kDouble);

  auto x = x0.clone().requires_grad_(true);
  (a->forward(x, cos, sin) * weight).sum().backward();
  const std::vector<torch::Tensor> got = {a->wq.grad(), a->wk.grad(), a->wv.grad(), a->wo.grad(),
                                          x.grad()};

  std::vector<torch::Tensor> w;
  for (const auto* p : {&a->wq, &a->wk, &a->wv, &a->wo}) {
    w.push_back(p->detach().clone().requires_grad_(true));
  }
  auto xr = x0.clone().requires_grad_(true);
  auto rot = [&](const torch::Tensor& t) {
    return t * cos + torch::cat({-t.narrow(-1, d / 2, d / 2), t.narrow(-1, 0, d / 2)}, -1) * sin;
  };
  auto q = rot(torch::linear(xr, w[0]).view({B, T, H, d}).transpose(1, 2));
  auto k =
      rot(torch::linear(xr, w[1]).view({B, T, KV, d}).transpose(1, 2)).repeat_interleave(H / KV, 1);
  auto v = torch::linear(xr, w[2]).view({B, T, KV, d}).transpose(1, 2).repeat_interleave(H / KV, 1);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(d));
  scores = scores.masked_fill(torch::ones({T, T}, torch::kBool).triu(1), -INFINITY);
  const auto o = torch::matmul(torch::softmax(scores, -1), v);
  (torch::linear(o.transpose(1, 2).reshape({B, T, H * d}), w[3]) * weight).sum().backward();
  const std::vector<torch::Tensor> ref = {w[0].grad(), w[1].grad(), w[2].grad(), w[3].grad(),
                                          xr.grad()};
  // The layer takes its softmax in fp32 (for bf16 runs) even in double: float-level agreement.
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << i;
    const double scale = ref[i].abs().max().item<double>();
    EXPECT_LT((got[i] - ref[i]).abs().max().item<double>(), 1e-5 * scale) << "gradient " << i;
  }
}

}  // namespace
}  // namespace moebench::models
