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

namespace moebench::models {

int LambdaCadence::observe(double rho, double* rho_mean) {
  rho_sum_ += rho;
  ++rho_count_;
  const int m = micro_index_++;
  int due = 1;
  if (updates_per_step_ > 0) {
    const auto u = static_cast<int64_t>(updates_per_step_);
    const auto a = static_cast<int64_t>(micro_batches_);
    due = static_cast<int>((m + 1) * u / a - m * u / a);
  }
  if (due == 0) return 0;
  if (rank_sum_) {
    std::vector<double> interval{rho_sum_, static_cast<double>(rho_count_)};
    rank_sum_(interval);
    *rho_mean = interval[0] / interval[1];
  } else {
    *rho_mean = rho_sum_ / rho_count_;
  }
  rho_sum_ = 0;
  rho_count_ = 0;
  return due;
}

void LambdaCadence::end_step() {
  micro_index_ = 0;
  rho_sum_ = 0;
  rho_count_ = 0;
}

void LambdaCadence::save(std::map<std::string, double>& state) const {
  state["cadence_micro_index"] = micro_index_;
  state["cadence_rho_sum"] = rho_sum_;
  state["cadence_rho_count"] = rho_count_;
}

void LambdaCadence::load(const std::map<std::string, double>& state) {
  auto get = [&](const char* key, double fallback) {
    const auto it = state.find(key);
    return it == state.end() ? fallback : it->second;
  };
  micro_index_ = static_cast<int>(get("cadence_micro_index", 0));
  rho_sum_ = get("cadence_rho_sum", 0);
  rho_count_ = static_cast<int>(get("cadence_rho_count", 0));
}

}  // namespace moebench::models
