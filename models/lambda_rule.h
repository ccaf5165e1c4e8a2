// The multiplicative λ controller of the Routing-Free paper (METHODS.md §1), shared by RF's
// unified balancing loss and ReMoE's RF-paper variant (§4), and the cadence of its updates.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace moebench::models {

// Sums a few scalars over the data-parallel ranks, in place, on every rank. A collective: every
// rank calls it at the same points. Unset (empty) in a single process.
using RankSum = std::function<void(std::vector<double>&)>;

// λ ← min(1, λ·(1+η)^sign(ρ − ρ*)), in fp32 like the official code. bf16_quirk rounds the
// result to bfloat16 as the official code stores it (an option, off by default).
float multiplicative_lambda_step(float lambda, double rho, double rho_target, double eta,
                                 bool bf16_quirk);

// The published number of λ updates per optimizer step at S (M and L: 4), and the help text of
// the `moe.lambda_updates` option that RF and ReMoE's RF-paper variant both declare.
inline constexpr int64_t kPublishedLambdaUpdates = 2;
inline constexpr const char* kLambdaUpdatesHelp =
    "lambda updates per optimizer step, rho averaged over the micro-batches between updates "
    "(published: 2 at S, 4 at M and L); 0 = after every micro-batch";

// When λ moves within an optimizer step. The official runs update λ a fixed number of times per
// optimizer step (2 at S, 4 at M and L: one per accumulation step, with ρ averaged over the 4
// GPUs), whatever the micro-batching here. With U updates per step and A micro-batches per step,
// micro-batch m (0-based) ends with floor((m+1)·U/A) − floor(m·U/A) updates, all using the mean
// ρ of the micro-batches since the previous update. So A = 8, U = 2 updates after micro-batches 3
// and 7 with the mean of four ρ each; A = 1, U = 2 applies two updates with that batch's ρ.
// U = 0 keeps the per-micro-batch cadence (one update after every training forward).
// Data parallel (W ranks, A/W micro-batches each): A is the rank's own count and each update's ρ
// is the mean over the ranks' intervals (set_rank_sum), as the official code averages λ's input
// over GPUs. With rank r taking the step's micro-batches r, r+W, r+2W, ..., the updates fall
// where one process's would whenever U ≤ A/W, so λ moves exactly as in one process.
class LambdaCadence {
 public:
  explicit LambdaCadence(int updates_per_step = 0) : updates_per_step_(updates_per_step) {}
  // Micro-batches per optimizer step (the trainer's gradient accumulation); 1 until set.
  void set_micro_batches(int per_step) { micro_batches_ = per_step < 1 ? 1 : per_step; }
  int micro_batches() const { return micro_batches_; }
  // Data parallel: the interval's ρ sum and count are summed over the ranks before an update.
  void set_rank_sum(RankSum sum) { rank_sum_ = std::move(sum); }

  // Records one training forward's ρ. Returns the number of λ updates due now (0 while the
  // interval is still collecting) and sets *rho_mean to the interval's mean ρ when it is > 0.
  int observe(double rho, double* rho_mean);
  // The optimizer step ended: a new step's micro-batches start from 0. A partial interval (a
  // step that ended early) is dropped, as no update point was reached.
  void end_step();

  // The position in the step and the open interval, so a checkpoint taken anywhere resumes
  // exactly; keys are prefixed ("cadence_").
  void save(std::map<std::string, double>& state) const;
  void load(const std::map<std::string, double>& state);

 private:
  int updates_per_step_;
  int micro_batches_ = 1;
  int micro_index_ = 0;  // micro-batches seen in this optimizer step
  double rho_sum_ = 0;   // ρ of the micro-batches since the last update
  int rho_count_ = 0;
  RankSum rank_sum_;
};

}  // namespace moebench::models
