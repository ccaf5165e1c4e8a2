// Active compute per token per MoE layer for every method (multiply-accumulates), the basis of
// the iso-compute comparison (METHODS.md §1 "Iso-compute" and §2-§7).
#pragma once

#include <cstdint>
#include <string>

#include "models/moe.h"

namespace moebench::models {

// MACs one token costs in one MoE layer: routing/gating work plus the experts it activates.
// `density` is the fraction of experts active per token for variable-k methods (RF, ReMoE);
// top-k style methods use k from the options. Multiply by 2 for FLOPs.
double moe_active_macs_per_token(const MoeOptions& o, int64_t hidden, double density);

}  // namespace moebench::models
