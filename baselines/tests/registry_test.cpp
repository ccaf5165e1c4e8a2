// The method registry against the real modules: every method's description (options, layer
// weights, FLOP formula) matches what its policy and layer actually build and compute.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "baselines/registry.h"
#include "baselines/switch.h"
#include "models/method.h"
#include "models/routing_free.h"

namespace moebench::baselines {
namespace {

models::MoeOptions small_options(const std::string& method) {
  models::MoeOptions o;
  o.method = method;
  o.experts = 4;
  o.intermediate = 8;
  o.top_k = 2;
  return o;
}

TEST(Registry, NamesAreUniqueAndFound) {
  std::set<std::string> seen;
  for (const auto* m : all_methods()) {
    EXPECT_TRUE(seen.insert(m->name).second) << m->name;
    EXPECT_EQ(&find_method(m->name), m);
    EXPECT_FALSE(m->title.empty()) << m->name;
    EXPECT_FALSE(m->summary.empty()) << m->name;
    EXPECT_TRUE(static_cast<bool>(m->macs)) << m->name;
  }
  EXPECT_EQ(seen.size(), 7u);
  try {
    find_method("routingfree");
    FAIL() << "an unknown method must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("routing_free, topk"), std::string::npos) << e.what();
  }
}

TEST(Registry, MergedOptionsHoldEveryMethodsOwnOnce) {
  const auto& merged = method_option_fields();
  std::set<std::string> names;
  for (const auto& f : merged) EXPECT_TRUE(names.insert(f.name).second) << f.name;
  for (const auto* m : all_methods()) {
    for (const auto& f : m->options) {
      ASSERT_TRUE(names.count(f.name)) << m->name << " " << f.name;
      EXPECT_FALSE(f.help.empty()) << m->name << " " << f.name;
    }
  }
  // Shared keys stay shared: top-k, Switch and AoE all read aux_coef; RF and ReMoE rho_target.
  EXPECT_EQ(option_names_of("topk"), std::vector<std::string>{"aux_coef"});
  const auto remoe = option_names_of("remoe");
  EXPECT_NE(std::find(remoe.begin(), remoe.end(), "rho_target"), remoe.end());
}

// The typed options read back what was written, and names not given keep their defaults.
TEST(Registry, TypedOptionsRoundTrip) {
  SwitchOptions s;
  s.capacity_factor_train = 0.75;
  s.switch_norm = "megatron";
  models::OptionValues values;
  models::write_options(s, values);
  const auto back = models::options_from<SwitchOptions>(values);
  EXPECT_EQ(back.capacity_factor_train, 0.75);
  EXPECT_EQ(back.switch_norm, "megatron");
  EXPECT_EQ(back.jitter, 0.0);
  models::OptionValues partial;
  partial.set("theta", 0.5);
  const auto rf = models::options_from<models::RoutingFreeOptions>(partial);
  EXPECT_EQ(rf.theta, 0.5);
  EXPECT_EQ(rf.norm, "l2");
  partial.set("theta", "high");
  EXPECT_THROW(models::options_from<models::RoutingFreeOptions>(partial), std::invalid_argument);
}

// For every routed method: the layer weights `moebench layer` names exist in the module with the
// shapes the dimension symbols say; active_NE (derived once, in decide()) marks exactly the
// pairs the routing computes; and the dense method's FFN width is what its spec says.
TEST(Registry, SpecsDescribeTheRealLayers) {
  const int64_t H = 16, N = 24;
  for (const auto* m : all_methods()) {
    auto o = small_options(m->name);
    if (!m->routed()) {
      ASSERT_TRUE(static_cast<bool>(m->ffn_width)) << m->name;
      EXPECT_EQ(m->ffn_width(o), 2 * 8);  // iso_active: k·I
      continue;
    }
    torch::manual_seed(3);
    models::MoeLayer layer(H, o, m->make_policy(H, o, 0.3), 0.3);
    const auto params = layer->named_parameters(/*recurse=*/true);
    const std::map<std::string, int64_t> size = {
        {"H", H}, {"E", 4}, {"I", 8}, {"r", o.effective_rank()}};
    for (const auto& w : m->layer_weights) {
      ASSERT_TRUE(params.contains(w.param)) << m->name << " " << w.param;
      std::vector<int64_t> shape;
      for (const auto& d : w.dims) shape.push_back(size.at(d));
      EXPECT_EQ(params[w.param].sizes().vec(), shape) << m->name << " " << w.name;
    }
    const auto x = torch::randn({N, H});
    std::vector<models::PolicyOutput> outs;
    layer->forward(x, &outs);
    const auto& p = outs.at(0);
    ASSERT_EQ(p.active_NE.sizes().vec(), (std::vector<int64_t>{N, 4})) << m->name;
    EXPECT_EQ(p.active_NE.sum().item<int64_t>(), p.routing.num_pairs()) << m->name;
    const auto tok = p.routing.token.accessor<int64_t, 1>();
    const auto exp = p.routing.expert.accessor<int64_t, 1>();
    const auto act = p.active_NE.accessor<bool, 2>();
    for (int64_t a = 0; a < p.routing.num_pairs(); ++a) {
      EXPECT_TRUE(act[tok[a]][exp[a]]) << m->name << " pair " << a;
    }
  }
}

}  // namespace
}  // namespace moebench::baselines
