// Self-Routing (arXiv 2604.00421; shared/spec/METHODS.md §6; OUR READING OF THE ABSTRACT, paper
// text not obtained): E fixed coordinates of the MoE input are the expert logits, no router.
#pragma once

#include <string>
#include <vector>

#include "models/method.h"
#include "models/moe.h"

namespace moebench::baselines {

// The `moe` keys of Self-Routing (METHODS.md §6); k is the shared moe.top_k.
struct SelfRoutingOptions {
  std::string self_routing_subspace = "last";
  template <class F>
  void fields(F&& f) {
    f("self_routing_subspace", self_routing_subspace, models::one_of({"last", "first", "strided"}),
      "which E input channels are the logits");
  }
};

const models::MethodSpec& self_routing_method();

// The E input channels S used as logits (logit j = x[S[j]]), for H hidden channels:
//   "last"    (default): S[j] = H − E + j        (the last E channels)
//   "first":             S[j] = j                (the first E channels)
//   "strided":           S[j] = floor(j · H / E) (0, H/E, 2H/E, ... when E divides H; spread
//                                                 over all of H when it does not)
// Throws std::invalid_argument for another name or E > H.
std::vector<int64_t> self_routing_coordinates(int64_t hidden, int64_t experts,
                                              const std::string& subspace);

// Our reading of the abstract (METHODS.md §6): logits = x[S]; softmax -> top-k -> renormalise
// as the top-k MoE of §2; no router parameters and no balancing loss (make_controller gives
// nullptr). Experts are full-rank SwiGLU fed by x. scores_NE: softmax over all E logits.
class SelfRoutingPolicyImpl : public models::RoutingPolicyImpl {
 public:
  SelfRoutingPolicyImpl(int64_t hidden, const models::MoeOptions& opts);
  models::PolicyOutput route(const torch::Tensor& x_NH) override;
  int64_t gate_input_width() const override { return hidden_; }
  const std::vector<int64_t>& coordinates() const { return coords_; }

 private:
  int64_t hidden_, experts_, k_;
  std::vector<int64_t> coords_;
  // Not a registered buffer: Module::to(dtype) would cast it to a float type.
  torch::Tensor index_E_;
};

}  // namespace moebench::baselines
