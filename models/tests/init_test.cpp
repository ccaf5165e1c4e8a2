// Initialisation (METHODS.md "Initialisation as published"): the distributions each layer init
// gives, checked against their closed forms, and the backbone shared by methods with one seed.
#include <gtest/gtest.h>

#include <cmath>

#include "baselines/registry.h"
#include "models/method.h"
#include "models/transformer.h"

namespace moebench::models {
namespace {

ModelOptions options(const std::string& method, LayerInit init) {
  ModelOptions o;
  o.vocab_size = 512, o.hidden = 128, o.layers = 2, o.q_heads = 4, o.kv_heads = 2;
  o.head_dim = 32, o.max_seq_len = 16;
  o.moe.method = method, o.moe.experts = 8, o.moe.intermediate = 128, o.moe.rank = 32;
  o.moe.top_k = 2;
  const auto& spec = baselines::find_method(method);
  o.make_policy = spec.make_policy;
  if (spec.ffn_width) o.dense_intermediate = spec.ffn_width(o.moe);
  o.layer_init = init;
  return o;
}

Transformer build(const std::string& method, LayerInit init, uint64_t seed = 7) {
  torch::manual_seed(seed);
  return Transformer(options(method, init));
}

torch::Tensor param(Transformer& m, const std::string& name) {
  for (const auto& p : m->named_parameters()) {
    if (p.key() == name) return p.value().detach();
  }
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

double std_of(const torch::Tensor& t) { return t.to(torch::kDouble).std().item<double>(); }

// U(-b, b) has standard deviation b/√3 and never leaves [-b, b].
void expect_linear_default(const torch::Tensor& w, const std::string& what) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(w.size(-1)));
  EXPECT_LE(w.abs().max().item<double>(), bound) << what;
  EXPECT_GT(w.abs().max().item<double>(), 0.95 * bound) << what;  // fills the range
  EXPECT_NEAR(std_of(w), bound / std::sqrt(3.0), 0.03 * bound) << what;
  EXPECT_NEAR(w.to(torch::kDouble).mean().item<double>(), 0.0, 0.05 * bound) << what;
}

void expect_normal(const torch::Tensor& w, double std, const std::string& what) {
  EXPECT_NEAR(std_of(w), std, 0.03 * std) << what;
  // A normal sample of this size reaches past 3σ somewhere; a uniform of this std never does.
  EXPECT_GT(w.abs().max().item<double>(), 3.0 * std) << what;
}

TEST(Init, TorchDefaultInTheDecoderLayersOfRoutingFree) {
  auto m = build("routing_free", LayerInit::kTorchDefault);
  // At this size (H = 128, r = 32, I = 128): A, U, attention U(±1/√128) (std 0.051); B fed the
  // r = 32 wide z: U(±1/√32) (std 0.102); D U(±1/√128).
  for (const char* name : {"block0.attn.wq", "block1.attn.wo", "block0.moe.policy.A",
                           "block0.moe.w_gate", "block0.moe.w_up", "block1.moe.w_down"}) {
    expect_linear_default(param(m, name), name);
  }
  EXPECT_NEAR(std_of(param(m, "block0.moe.w_gate")), 1.0 / std::sqrt(32.0 * 3.0), 0.003);
  // The embedding and the head keep HF's N(0, 0.02); γ, b and norm weights their constants.
  expect_normal(param(m, "embed.weight"), 0.02, "embed");
  expect_normal(param(m, "head"), 0.02, "head");
  EXPECT_TRUE(param(m, "block0.moe.policy.gamma").eq(1.0).all().item<bool>());
  EXPECT_TRUE(param(m, "block0.attn_norm.weight").eq(1.0).all().item<bool>());
}

TEST(Init, NormalEverywhereForTheFairMode) {
  for (const char* method : {"routing_free", "topk", "dense"}) {
    auto m = build(method, LayerInit::kNormal);
    for (const auto& p : m->named_parameters()) {
      if (p.value().dim() < 2) continue;
      expect_normal(p.value().detach(), 0.02, std::string(method) + " " + p.key());
    }
  }
}

TEST(Init, PublishedInitOfEachMethod) {
  // The official RF, AoE and ReMoE code keeps PyTorch's default in its decoder layers; the
  // HF-style models (top-k and the rest) draw N(0, 0.02).
  for (const auto& name : baselines::method_names()) {
    const bool torch_default = name == "routing_free" || name == "aoe" || name == "remoe";
    EXPECT_EQ(baselines::find_method(name).published_init == LayerInit::kTorchDefault,
              torch_default)
        << name;
  }
}

TEST(Init, SameSeedSameBackboneAcrossMethods) {
  // The embedding, the attention of every block and the head come from the backbone generator:
  // equal for methods whose FFNs differ in shape, different for another seed.
  auto topk = build("topk", LayerInit::kNormal), rf = build("routing_free", LayerInit::kNormal);
  auto dense = build("dense", LayerInit::kNormal), other = build("topk", LayerInit::kNormal, 8);
  for (const char* name :
       {"embed.weight", "block0.attn.wq", "block1.attn.wk", "block1.attn.wo", "head"}) {
    EXPECT_TRUE(param(topk, name).equal(param(rf, name))) << name;
    EXPECT_TRUE(param(topk, name).equal(param(dense, name))) << name;
    EXPECT_FALSE(param(topk, name).equal(param(other, name))) << name;
  }
  // RF and AoE both start from PyTorch's default in published mode: they share their attention.
  auto rf_pub = build("routing_free", LayerInit::kTorchDefault);
  auto aoe_pub = build("aoe", LayerInit::kTorchDefault);
  EXPECT_TRUE(param(rf_pub, "block1.attn.wv").equal(param(aoe_pub, "block1.attn.wv")));
}

}  // namespace
}  // namespace moebench::models
