// Active MACs per token per MoE layer: gate cost + active experts' SwiGLU cost, per method.
// Routing-Free: all E low-rank projections A_e x, then ρE experts with the low-rank gate B_e z.
#include "models/flops.h"

#include <stdexcept>

namespace moebench::models {

double moe_active_macs_per_token(const MoeOptions& o, int64_t hidden, double density) {
  const double H = static_cast<double>(hidden), E = static_cast<double>(o.experts),
               I = static_cast<double>(o.intermediate), r = static_cast<double>(o.effective_rank()),
               k = static_cast<double>(o.effective_top_k());
  const double full_expert = 3 * H * I;              // G, U, D
  const double low_rank_expert = I * r + 2 * H * I;  // B (fed z), U, D
  const std::string& m = o.method;
  if (m == "topk") return E * H + k * full_expert;
  if (m == "switch") return E * H + full_expert;
  if (m == "remoe") return E * H + density * E * full_expert;
  if (m == "routing_free") return E * r * H + density * E * low_rank_expert;
  if (m == "aoe") return E * r * H + k * low_rank_expert;
  if (m == "self_routing") return k * full_expert;  // the logits are free: a slice of x
  if (m == "dense") return 3 * H * (k * I);         // iso-active width k·I
  throw std::invalid_argument("no FLOP model for method '" + m + "'");
}

}  // namespace moebench::models
