// The multiplicative λ controller (METHODS.md §1), fp32 with the optional bf16 rounding.
#include "models/lambda_rule.h"

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>

namespace moebench::models {

float multiplicative_lambda_step(float lambda, double rho, double rho_target, double eta,
                                 bool bf16_quirk) {
  const int sign = rho > rho_target ? 1 : (rho < rho_target ? -1 : 0);
  float next = lambda * std::pow(1.0f + static_cast<float>(eta), static_cast<float>(sign));
  next = std::min(1.0f, next);
  if (bf16_quirk) next = c10::BFloat16(next);  // what the official code stores
  return next;
}

}  // namespace moebench::models
