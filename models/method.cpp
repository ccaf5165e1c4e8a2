// Pieces several method files share when they describe themselves: the expert weights as
// `moebench layer` names them and the SwiGLU expert MACs (METHODS.md §1 "Iso-compute").
#include "models/method.h"

namespace moebench::models {

std::vector<LayerWeight> expert_layer_weights(std::vector<LayerWeight> policy_weights,
                                              bool low_rank) {
  policy_weights.push_back(
      low_rank ? LayerWeight{"B",
                             {"E", "I", "r"},
                             "low-rank gate (SiLU branch, fed z = A_e x)",
                             "w_gate"}
               : LayerWeight{"G", {"E", "I", "H"}, "gate projection (SiLU branch)", "w_gate"});
  policy_weights.push_back({"U", {"E", "I", "H"}, "up projection", "w_up"});
  policy_weights.push_back({"D", {"E", "H", "I"}, "down projection", "w_down"});
  return policy_weights;
}

LayerWeight policy_weight(const std::string& name, std::vector<std::string> dims,
                          const std::string& doc) {
  return {name, std::move(dims), doc, "policy." + name};
}

double full_expert_macs(const MoeOptions& o, int64_t hidden) {
  return 3.0 * static_cast<double>(hidden) * static_cast<double>(o.intermediate);
}

double low_rank_expert_macs(const MoeOptions& o, int64_t hidden) {
  const double H = static_cast<double>(hidden), I = static_cast<double>(o.intermediate);
  return I * static_cast<double>(o.effective_rank()) + 2 * H * I;
}

}  // namespace moebench::models
