// The evaluator: zero-shot log-likelihood scoring (acc, acc_norm, greedy target accuracy and
// perplexity, Wilson intervals), validation perplexity, the Routing-Free θ sweep and the routing
// flip rate. Spec: shared/spec/DATA.md "Zero-shot evaluation available offline",
// shared/spec/METHODS.md "Metrics every run reports".
//
// Shape legend: B batch rows, T sequence positions, V vocabulary, N tokens, E experts.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "datasets/eval_tasks.h"
#include "datasets/sampler.h"
#include "models/balance_stats.h"
#include "models/transformer.h"
#include "suite/config.h"
#include "suite/store.h"

namespace moebench {

namespace eval {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kZ95 = 1.959963984540054;  // two-sided 95% normal quantile

// --- model-free scoring core --------------------------------------------------------------------

// Wilson score interval for `successes` out of `n` (NaN, NaN for n = 0). Unlike the normal
// approximation it stays inside [0, 1] and is sensible at 0 and n successes, which small
// near-chance evaluations hit.
struct Interval {
  double low = kNaN;
  double high = kNaN;
};
Interval wilson_interval(int64_t successes, int64_t n, double z = kZ95);

// One log-likelihood query: the model reads context + continuation[:-1] and is scored on every
// continuation token.
struct ScoreRequest {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
  bool want_greedy = true;  // false: the scorer may skip the argmax (ScoreResult::greedy false)
};
struct ScoreResult {
  double logprob = 0;   // sum over the continuation tokens of log p(token | prefix)
  int64_t tokens = 0;   // continuation tokens scored
  bool greedy = false;  // every continuation token was the argmax prediction (if want_greedy)
};
// Scores a list of requests (in any internal order; results in request order).
using ScoreFn = std::function<std::vector<ScoreResult>(const std::vector<ScoreRequest>&)>;
using EncodeFn = std::function<std::vector<int32_t>(const std::string&)>;

// Encodes context and continuation separately (as lm-eval does: the choice's leading space stays
// with the choice) and fits them into a model window of max_seq_len positions. The model input
// is context + continuation[:-1], so the context keeps its LAST max_seq_len + 1 - |continuation|
// tokens (left truncation: the words right before the answer matter most). An empty context
// becomes [eot_id] (the first continuation token needs something to be predicted from). A
// continuation longer than max_seq_len keeps its first max_seq_len tokens after one context
// token.
ScoreRequest make_request(const EncodeFn& encode, const std::string& context,
                          const std::string& continuation, int64_t max_seq_len, int32_t eot_id);

// The requests of one multiple-choice item: every choice is read after the SAME context, cut as
// make_request cuts it for the item's longest choice (in tokens). lm-eval cuts each request on
// its own, so in a window as short as ours a shorter choice would be read after more context
// than its rivals; here the choices differ in nothing but themselves, and the scorer can read
// the context once per item (model_scorer packs requests that share a context). With one choice
// this is make_request.
std::vector<ScoreRequest> make_choice_requests(const EncodeFn& encode, const std::string& context,
                                               const std::vector<std::string>& continuations,
                                               int64_t max_seq_len, int32_t eot_id);

// One metric of a task, as a table and the store show it.
struct Metric {
  std::string name;  // acc | acc_norm | target_ppl
  double value = kNaN;
  int64_t n = 0;
  double ci_low = kNaN;  // Wilson 95% for accuracies; NaN for a perplexity
  double ci_high = kNaN;
  double chance = kNaN;  // the task's chance level for accuracies; NaN for a perplexity
};

struct TaskScore {
  std::string task;
  std::string primary_metric;
  double chance = 0;
  int64_t n = 0;  // items scored
  std::vector<Metric> metrics;
  const Metric* find(const std::string& name) const;  // nullptr when absent
};

// Scores every item of a task with one call of `score` (which batches as it likes).
//  kMultipleChoice (requests from make_choice_requests): acc = the choice with the highest
//    log-likelihood sum is the answer;
//    acc_norm = the same with each sum divided by the choice's length in UTF-8 bytes (lm-eval's
//    length normalisation; lm-eval counts Python characters, which equals bytes for ASCII).
//    Ties break to the LOWER choice index (a deterministic rule; a model that assigns equal
//    scores gets credit only when the answer is the first of the tied choices).
//  kGreedyTarget: acc = every target token is the greedy prediction; target_ppl =
//    exp(-Σ logprob / Σ tokens) over all items (token-weighted).
// Accuracies carry a Wilson 95% interval and the task's chance level. Throws
// std::invalid_argument for an item with no choices or an answer index out of range.
TaskScore score_task(const data::EvalTask& task, const EncodeFn& encode, const ScoreFn& score,
                     int64_t max_seq_len, int32_t eot_id);

// --- model-backed pieces ------------------------------------------------------------------------

// A ScoreFn over a model: consecutive requests with the same context (a multiple-choice item's
// choices) packed into one row of up to twice the window, the context once and each choice
// attending to it and to its own tokens at its unpacked positions (models::PackedLayout; not for
// methods whose routing couples a forward's tokens, MethodSpec::couples_tokens); choices that do
// not fit start a new row with the context again; rows sorted by length and batched (at most
// max_rows rows and about max_batch_tokens padded positions per forward), right-padded, one
// teacher-forced forward per batch under NoGradGuard in eval mode (the model's mode is
// restored), the last block's queries and FFN and the head only at the scored positions (each
// distinct position once; models::PackedLayout::outputs_BQ; not for methods whose routing
// couples tokens), log_softmax in fp32 (the argmax only for requests that want greedy). The
// decoder is causal and the padding mask reaches the routers (Switch's capacity ignores padded
// rows), so right padding does not change a request's score. (Switch's capacity still couples
// the real tokens of one forward, so there a request's batch-mates can matter, as in any batched
// evaluation of a capacity-limited model.) The model must outlive the returned function.
ScoreFn model_scorer(models::TransformerImpl& model, torch::Device device, int64_t max_rows = 32,
                     int64_t max_batch_tokens = 4096);

// A sampler batch as tensors on `device`: ids as int64 [B, T], the padding mask as float [B, T]
// (1 = real token). The trainer and the evaluator read batches through this one function.
struct BatchTensors {
  torch::Tensor inputs_BT, targets_BT, mask_BT;
  int64_t real_tokens = 0;
};
BatchTensors to_tensors(const data::Batch& b, torch::Device device);

// Validation loss over the first `max_batches` batches of `micro_batch` sequences of the
// sampler's split, in order (0 = all): the token-weighted mean cross-entropy over real tokens
// (padding excluded); perplexity = exp(loss) (METHODS.md, "Perplexity = exp(validation loss)").
// Balance statistics of the same forwards go to `stats` when given.
struct ValResult {
  double loss = kNaN;
  double ppl = kNaN;
  int64_t tokens = 0;     // real tokens scored
  int64_t sequences = 0;  // rows read
};
ValResult validation_loss(models::TransformerImpl& model, const data::BatchSampler& sampler,
                          int micro_batch, int64_t max_batches, torch::Device device,
                          models::BalanceStats* stats = nullptr);

// The Routing-Free θ sweep: for each θ, set_theta, validation loss, perplexity and the measured
// density (active pairs / (real tokens · E), averaged over layers). θ goes back to
// `trained_theta` afterwards, also when a forward throws.
struct ThetaPoint {
  double theta = 0;
  ValResult val;
  double density = kNaN;
};
std::vector<ThetaPoint> theta_sweep(models::TransformerImpl& model,
                                    const data::BatchSampler& sampler, int micro_batch,
                                    int64_t max_batches, torch::Device device,
                                    const std::vector<double>& thetas, double trained_theta);

// --- routing flip rate --------------------------------------------------------------------------

// The active masks of one forward over a calibration batch: one bool [N, E] tensor per MoE layer
// (CPU), rows of the real tokens only (mask_BT = 1), in row-major token order. Empty for dense.
std::vector<torch::Tensor> routing_masks(models::TransformerImpl& model,
                                         const torch::Tensor& inputs_BT,
                                         const torch::Tensor& mask_BT);

// ReMoE's routing flip rate between two snapshots of the same calibration tokens: per layer the
// fraction of the N·E (token, expert) entries that differ, averaged over layers (`entry`); and
// per layer the fraction of tokens whose expert set changed, averaged over layers (`token`).
// Throws std::invalid_argument when the layer counts or shapes differ.
struct FlipRate {
  double entry = kNaN;
  double token = kNaN;
  int64_t tokens = 0;  // N
};
FlipRate flip_rate(const std::vector<torch::Tensor>& before,
                   const std::vector<torch::Tensor>& after);

// A calibration snapshot and the training step it was taken at, saved beside the checkpoint
// (atomically: temp file + rename) so that a resumed run compares against the right one.
struct MaskSnapshot {
  int64_t step = -1;
  std::vector<torch::Tensor> masks;
};
void save_masks(const std::filesystem::path& path, const MaskSnapshot& snapshot);
MaskSnapshot load_masks(const std::filesystem::path& path);

// --- tasks and store rows -----------------------------------------------------------------------

// Builds the named tasks from the data cache (corpus + held-out split). Unknown names throw
// std::invalid_argument listing the known ones, before any corpus is read; missing sources throw
// std::runtime_error naming the command that fetches them.
std::vector<data::EvalTask> load_eval_tasks(const std::filesystem::path& data_dir,
                                            const std::vector<std::string>& names,
                                            size_t max_items);
void check_task_names(const std::vector<std::string>& names);

// Store rows. A task's metrics are written under their names, plus a marker row
// "primary_<metric>" (same numbers) that tells tables which metric the task leads with.
inline constexpr const char* kPrimaryPrefix = "primary_";
std::vector<EvalRow> task_rows(const TaskScore& score, int64_t step,
                               std::optional<double> theta = std::nullopt);
// val/loss and val/ppl (n = sequences), plus val/density unless `density` is NaN.
std::vector<EvalRow> val_rows(const ValResult& val, int64_t step, std::optional<double> theta,
                              double density = kNaN);
// routing/flip_rate and routing/token_flip_rate (n = calibration tokens).
std::vector<EvalRow> flip_rows(const FlipRate& flip, int64_t step);

// Plain-text table of task scores: task, metric, value, 95% CI, chance, n.
std::string format_scores(const std::vector<TaskScore>& scores);

}  // namespace eval
}  // namespace moebench
