// Parameter counts at the paper's S size against the published figure (top-k) and against
// hand-derived formulas (Routing-Free, with and without the official code's unused gates).
#include <gtest/gtest.h>

#include "baselines/registry.h"
#include "models/method.h"
#include "models/transformer.h"

namespace moebench::models {
namespace {

ModelOptions paper_s(const std::string& method) {
  ModelOptions o;  // METHODS.md: 12 layers, H 512, 16/16 heads of 32, E 12, I 128, r 32
  o.vocab_size = 50257, o.hidden = 512, o.layers = 12, o.q_heads = 16, o.kv_heads = 16;
  o.head_dim = 32, o.max_seq_len = 512;
  o.moe.method = method, o.moe.experts = 12, o.moe.intermediate = 128, o.moe.rank = 32;
  o.moe.top_k = 3;
  o.make_policy = baselines::find_method(method).make_policy;
  return o;
}

TEST(ParamCount, TopKAtSMatchesThePaper) {
  Transformer m(paper_s("topk"));
  const auto c = count_parameters(*m);
  EXPECT_EQ(c.non_embedding, 40'980'992);  // METHODS.md "Parameter check"
  EXPECT_EQ(c.total, 92'444'160);
}

TEST(ParamCount, RoutingFreeAtSByHand) {
  Transformer m(paper_s("routing_free"));
  const auto c = count_parameters(*m);
  const int64_t H = 512, E = 12, I = 128, r = 32, L = 12;
  const int64_t attn = 4 * H * H, norms = 2 * H;
  const int64_t experts = E * (r * H + I * r + 2 * I * H) + 2 * E;  // A, B, U, D, γ, b
  const int64_t expected = L * (attn + norms + experts) + H;        // + final norm
  EXPECT_EQ(c.non_embedding, expected);
  EXPECT_EQ(c.non_embedding, 34'419'488);
  // The official code also allocates a full gate G_e [I, H] per expert that never trains.
  EXPECT_EQ(c.non_embedding + L * E * I * H, 43'856'672);
  EXPECT_EQ(c.total - c.non_embedding, 2 * 50257 * H);
}

}  // namespace
}  // namespace moebench::models
