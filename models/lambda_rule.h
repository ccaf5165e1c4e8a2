// The multiplicative λ controller of the Routing-Free paper (METHODS.md §1), shared by RF's
// unified balancing loss and ReMoE's RF-paper variant (§4).
#pragma once

namespace moebench::models {

// λ ← min(1, λ·(1+η)^sign(ρ − ρ*)), in fp32 like the official code. bf16_quirk rounds the
// result to bfloat16 as the official code stores it (an option, off by default).
float multiplicative_lambda_step(float lambda, double rho, double rho_target, double eta,
                                 bool bf16_quirk);

}  // namespace moebench::models
