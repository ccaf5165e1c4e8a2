// Training loop: AdamW (no decay on 1-D params), warm-up + linear decay, clipping, gradient
// accumulation, validation, checkpoint/exact resume, divergence detection, SQLite rows.
#include "suite/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>

#include "baselines/registry.h"
#include "datasets/sampler.h"
#include "models/balance_stats.h"
#include "models/method.h"
#include "models/transformer.h"
#include "suite/checkpoint.h"
#include "suite/env_info.h"
#include "suite/evaluator.h"
#include "suite/fault.h"
#include "suite/run_context.h"
#include "suite/store.h"

namespace moebench {
namespace {

std::atomic<bool> g_stop{false};
constexpr double kHeartbeatSeconds = 10;

// Thrown inside the final evaluation when a stop was requested (Ctrl-C, SIGTERM).
struct StopRequested {};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, int(t % 3600 / 60))
                   : fmt::format("{}m{:02d}s", t / 60, int(t % 60));
}

// Active (token, expert) pairs / (real tokens · E), averaged over MoE layers; 1 for dense.
// Measured from the routing itself, so every method reports it the same way.
double routed_density(const std::vector<models::PolicyOutput>& layers, const torch::Tensor& mask) {
  if (layers.empty()) return 1.0;
  const auto keep = mask.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
  double sum = 0;
  for (const auto& l : layers) {
    sum += l.active_NE.index_select(0, keep).to(torch::kFloat).mean().item<double>();
  }
  return sum / static_cast<double>(layers.size());
}

// What one optimizer step measured (means over its micro-batches).
struct StepResult {
  double lm_loss = 0, aux_loss = 0, density = 0, grad_norm = 0, lr = 0;
  int64_t tokens = 0;
};

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : opts_(o), cfg_(o.cfg) {}
  TrainResult run();

 private:
  // The steps of run(), in order.
  void setup();
  void prepare_final_evaluation();
  bool resume();
  RunRow begin_row();
  RunStatus train_loop(int64_t first_step);
  StepResult train_step();
  // Refreshes this process's lease on the run every few seconds; throws if another process has
  // taken the run over (this one was presumed dead).
  void keep_lease();
  void mark_failed();
  void log_step(const StepResult& r, int64_t first_step);
  void evaluate_during_training();
  void finish(RunStatus status);

  double lr_at(int64_t step) const;
  // Mean validation loss over the configured batches (weighted by real tokens) + balance stats.
  double val_loss(models::BalanceStats* stats);
  void save();
  void write_eval(double val_loss, const models::BalanceStats& stats);
  // Routing flip rate on the first val batch against the snapshot beside the checkpoint; rows
  // only when that snapshot is from an earlier step (a resumed run has written later ones).
  std::vector<EvalRow> routing_flip();
  void save_pending_masks();
  // End of a done run: zero-shot tasks and the θ sweep, as store rows (printed unless quiet).
  std::vector<EvalRow> final_evaluation();

  TrainOptions opts_;
  RunConfig cfg_;
  std::string run_key_;
  RunContext ctx_;
  const models::MethodSpec* method_ = nullptr;
  std::unique_ptr<models::AuxController> controller_;
  std::unique_ptr<torch::optim::AdamW> optim_;
  std::vector<data::EvalTask> eval_tasks_;
  std::filesystem::path ckpt_dir_;
  int64_t total_steps_ = 0;
  int accum_ = 1;
  CheckpointState state_;
  // Timing of this process's share of the run.
  Clock::time_point t_start_;
  double wall_before_ = 0;
  int64_t tokens_window_ = 0;
  Clock::time_point window_start_;
  double tokens_per_s_ = 0;
  double last_val_ = std::nan("");
  double final_eval_s_ = 0;
  std::optional<eval::MaskSnapshot> pending_masks_;
  RunStatus status_ = RunStatus::kRunning;
  Clock::time_point last_heartbeat_;
  // Data parallel (one process: no group, rank 0 of 1).
  std::unique_ptr<dist::Group> group_;
  int rank_ = 0;
  int world_ = 1;
  // The store: rank 0's alone (null on the other ranks, which write nothing).
  Store* store_ = nullptr;
  bool leader() const { return rank_ == 0; }
  // Whether to stop before the next step; data parallel, every rank stops if any was asked to.
  bool stop_now();
  // Data parallel, after resume(): every rank at the same step, rank 0's weights everywhere.
  void sync_ranks();
};

void Trainer::setup() {
  ctx_ = build_run_context(cfg_, opts_.data_dir, Splits::kTrainAndValidation);
  method_ = &baselines::find_method(cfg_.moe.method);
  accum_ = grad_accum(cfg_.data);
  total_steps_ = cfg_.train.steps > 0 ? cfg_.train.steps
                                      : ctx_.train_sampler->num_samples() / cfg_.data.batch_size;
  controller_ = baselines::make_controller(ctx_.model->opts.moe, cfg_.model.layers);
  if (controller_) {
    // Data parallel, each rank runs accum_ / world_ of the step's micro-batches and λ's inputs
    // are summed over the ranks (LambdaCadence, ReMoE's step sparsity).
    controller_->set_micro_batches(accum_ / world_);
    if (group_) {
      controller_->set_rank_sum([g = group_.get()](std::vector<double>& v) { g->sum(v); });
    }
  }

  // Weight decay on everything but biases and norm weights, as the official code (RF's γ decays,
  // its offset b, a bias, does not).
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : ctx_.model->named_parameters()) {
    (takes_weight_decay(p.key()) ? decay : no_decay).push_back(p.value());
  }
  auto make = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(cfg_.optim.lr)
            .betas({cfg_.optim.betas[0], cfg_.optim.betas[1]})
            .eps(cfg_.optim.eps)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, make(cfg_.optim.weight_decay));
  groups.emplace_back(no_decay, make(0.0));
  optim_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(cfg_.optim.lr));
  ckpt_dir_ = opts_.checkpoint_root / run_key_;
}

// The zero-shot tasks are built before training, so that missing task data fails at once.
void Trainer::prepare_final_evaluation() {
  if (!cfg_.eval.theta_sweep.empty() && !threshold_of(cfg_) && !opts_.quiet) {
    fmt::print(stderr, "note: eval.theta_sweep needs a method with a threshold; skipped for {}\n",
               cfg_.moe.method);
  }
  eval_tasks_ = eval::load_eval_tasks(opts_.data_dir, cfg_.eval.tasks,
                                      static_cast<size_t>(cfg_.eval.max_examples));
}

// Loads the checkpoint when there is one; otherwise takes the flip rate's first reference, the
// routing at initialisation (replacing any snapshot a deleted run of the same key left behind).
bool Trainer::resume() {
  if (const auto checkpoint = find_checkpoint(ckpt_dir_)) {
    state_ = load_checkpoint(*checkpoint, *ctx_.model, ctx_.device, optim_.get());
    if (controller_) controller_->load_state(state_.controller);
    return true;
  }
  if (!leader()) return false;
  if (std::filesystem::exists(ckpt_dir_ / "LATEST")) {
    fmt::print(stderr, "warning: no complete checkpoint in {}: run {} starts over from step 0\n",
               ckpt_dir_.string(), run_key_);
  }
  std::filesystem::remove(ckpt_dir_ / "calib_masks.pt");
  routing_flip();
  save_pending_masks();
  return false;
}

void Trainer::sync_ranks() {
  if (!group_) return;
  std::vector<double> steps(static_cast<size_t>(world_), 0.0);
  steps[static_cast<size_t>(rank_)] = static_cast<double>(state_.step);
  group_->sum(steps);
  for (size_t r = 1; r < steps.size(); ++r) {
    if (steps[r] != steps[0]) {
      throw std::runtime_error(fmt::format(
          "rank {} found a checkpoint at step {} and rank 0 at step {} in {}: every rank must "
          "see the same checkpoint folder (put --checkpoints on storage all ranks share)",
          r, steps[r], steps[0], ckpt_dir_.string()));
    }
  }
  std::vector<torch::Tensor> tensors;
  for (const auto& p : ctx_.model->parameters()) tensors.push_back(p);
  for (const auto& b : ctx_.model->buffers()) tensors.push_back(b);
  group_->broadcast(tensors);
}

bool Trainer::stop_now() {
  const bool stop =
      g_stop.load() || (opts_.stop_after_steps > 0 && state_.step >= opts_.stop_after_steps);
  if (!group_) return stop;
  std::vector<double> any{stop ? 1.0 : 0.0};
  group_->sum(any);
  return any[0] > 0;
}

double Trainer::lr_at(int64_t step) const {
  const double peak = cfg_.optim.lr;
  const int64_t warm = cfg_.optim.warmup_steps;
  // Step 0 runs at learning rate 0, as the reference trainer's linear warm-up does.
  if (step < warm) return peak * static_cast<double>(step) / warm;
  const double frac = total_steps_ > warm ? static_cast<double>(step - warm) /
                                                static_cast<double>(total_steps_ - warm)
                                          : 1.0;
  const double floor = cfg_.optim.min_lr_ratio;
  return peak * (1.0 - (1.0 - floor) * std::min(1.0, frac));
}

double Trainer::val_loss(models::BalanceStats* stats) {
  return eval::validation_loss(*ctx_.model, *ctx_.val_sampler, ctx_.micro_batch,
                               cfg_.eval.val_batches, ctx_.device, stats)
      .loss;
}

void Trainer::save() {
  state_.controller = controller_ ? controller_->state() : std::map<std::string, double>{};
  state_.run_key = run_key_;
  save_checkpoint(ckpt_dir_, cfg_, *ctx_.model, *optim_, state_);
}

void Trainer::write_eval(double val_loss, const models::BalanceStats& stats) {
  const double nan = std::nan("");
  std::vector<EvalRow> evals;
  const auto n = static_cast<int64_t>(std::min<int64_t>(
      ctx_.val_sampler->num_samples(), int64_t{cfg_.eval.val_batches} * ctx_.micro_batch));
  evals.push_back({"val", "loss", val_loss, n, nan, nan, nan, std::nullopt, state_.step});
  evals.push_back({"val", "ppl", std::exp(val_loss), n, nan, nan, nan, std::nullopt, state_.step});
  std::vector<LayerStatRow> rows;
  for (int l = 0; l < stats.num_layers(); ++l) {
    for (const auto& [k, v] : stats.layer_summary(l)) rows.push_back({state_.step, l, -1, k, v});
    const auto load = stats.load(l);
    for (size_t e = 0; e < load.size(); ++e) {
      rows.push_back({state_.step, l, static_cast<int>(e), "load", load[e]});
    }
  }
  if (stats.num_layers() > 0) {
    for (const auto& [k, v] : stats.mean_summary()) rows.push_back({state_.step, -1, -1, k, v});
  }
  store_->append_evals(run_key_, evals);
  store_->append_layer_stats(run_key_, rows);
}

std::vector<EvalRow> Trainer::routing_flip() {
  if (!method_->routed()) return {};
  // The calibration batch: the first val batch, the same tokens at every eval point.
  const int micro = ctx_.micro_batch;
  if (ctx_.val_sampler->num_samples() < micro) return {};
  std::vector<int64_t> ids(micro);
  for (int i = 0; i < micro; ++i) ids[i] = i;
  const auto calib = eval::to_tensors(ctx_.val_sampler->make_batch(ids), ctx_.device);
  eval::MaskSnapshot now{state_.step,
                         eval::routing_masks(*ctx_.model, calib.inputs_BT, calib.mask_BT)};
  const auto path = ckpt_dir_ / "calib_masks.pt";
  std::vector<EvalRow> rows;
  if (std::filesystem::exists(path)) {
    eval::MaskSnapshot before;
    try {
      before = eval::load_masks(path);
    } catch (const std::exception& e) {
      // A damaged snapshot costs this eval point its flip rows, not the run.
      fmt::print(stderr, "\nwarning: {}; no flip rate at step {}\n", e.what(), state_.step);
      pending_masks_ = std::move(now);
      return {};
    }
    // A snapshot from this step or later was written before an interruption: the resumed run
    // repeats that trajectory exactly, and its rows are already stored.
    if (before.step >= state_.step) return {};
    rows = eval::flip_rows(eval::flip_rate(before.masks, now.masks), state_.step);
  }
  // Saved only once these rows are committed (save_pending_masks): a snapshot saved before a
  // crash would make the rerun take this step as already evaluated.
  pending_masks_ = std::move(now);
  return rows;
}

void Trainer::save_pending_masks() {
  if (!pending_masks_) return;
  std::filesystem::create_directories(ckpt_dir_);
  eval::save_masks(ckpt_dir_ / "calib_masks.pt", *pending_masks_);
  pending_masks_.reset();
}

std::vector<EvalRow> Trainer::final_evaluation() {
  std::vector<EvalRow> rows;
  std::vector<eval::TaskScore> scores;
  const auto scorer = eval::model_scorer(*ctx_.model, ctx_.device);
  const auto encode = [this](const std::string& text) { return ctx_.tokenizer->encode(text); };
  for (const auto& task : eval_tasks_) {
    if (g_stop.load()) throw StopRequested();
    scores.push_back(
        eval::score_task(task, encode, scorer, cfg_.model.seq_len, ctx_.tokenizer->eot_id()));
    const auto r = eval::task_rows(scores.back(), state_.step);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  if (!opts_.quiet && !scores.empty()) fmt::print(stderr, "{}", eval::format_scores(scores));
  const std::optional<double> trained_theta = threshold_of(cfg_);
  if (!cfg_.eval.theta_sweep.empty() && trained_theta) {
    const auto points =
        eval::theta_sweep(*ctx_.model, *ctx_.val_sampler, ctx_.micro_batch, cfg_.eval.val_batches,
                          ctx_.device, cfg_.eval.theta_sweep, *trained_theta);
    if (g_stop.load()) throw StopRequested();
    for (const auto& p : points) {
      const auto r = eval::val_rows(p.val, state_.step, p.theta, p.density);
      rows.insert(rows.end(), r.begin(), r.end());
      if (!opts_.quiet) {
        fmt::print(stderr, "  θ = {:<6g} val loss {:.4f} (ppl {:.2f}) density {:.3f}\n", p.theta,
                   p.val.loss, p.val.ppl, p.density);
      }
    }
  }
  return rows;
}

RunRow Trainer::begin_row() {
  const EnvInfo env = collect_env(cfg_.train.threads);
  RunRow row;
  row.run_key = run_key_;
  row.config_json = to_canonical_json(cfg_);
  row.method = cfg_.moe.method;
  row.size = opts_.size_name;
  row.seed = cfg_.train.seed;
  row.commit = env.commit;
  row.dirty = env.dirty;
  row.torch_version = env.torch_version;
  row.device = ctx_.device.is_cuda() ? "cuda" : fmt::format("cpu x{}", env.threads);
  if (world_ > 1) row.device += fmt::format(", {} ranks", world_);
  // What the MoE layers will resolve on every forward: the model's device and dtype.
  row.backend = kernels::backend_name(
      kernels::resolve_backend(cfg_.kernels.backend, ctx_.device,
                               cfg_.train.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat));
  row.status_step = state_.step;
  store_->begin_run(row);
  store_->record_env({{"commit", env.commit},
                      {"torch_version", env.torch_version},
                      {"blas", env.blas},
                      {"threads", std::to_string(env.threads)},
                      {"matmul_gflops", fmt::format("{:.1f}", env.matmul_gflops)}});
  return row;
}

// One optimizer step: the micro-batches of this step, clipping, AdamW, the controller's step.
StepResult Trainer::train_step() {
  StepResult r;
  r.lr = lr_at(state_.step);
  for (auto& g : optim_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(g.options()).lr(r.lr);
  }
  // The step's micro-batches first: the LM loss is the step's total NLL over its total real
  // tokens, so each micro-batch's NLL sum is divided by the step's token count (a mean of
  // per-micro-batch means would weight short micro-batches up).
  // Data parallel, rank r takes micro-batches r, r + W, r + 2W, ... of the step (so λ's update
  // points fall where one process's do), and the token count is the whole step's.
  std::vector<eval::BatchTensors> batches;
  for (int m = rank_; m < accum_; m += world_) {
    batches.push_back(
        eval::to_tensors(ctx_.train_sampler->batch(state_.step * accum_ + m), ctx_.device));
    r.tokens += batches.back().real_tokens;
  }
  if (group_) {
    // Stochastic layers (Switch's jitter) draw a stream of their own per rank and step, so a
    // resumed run repeats them.
    torch::manual_seed(static_cast<uint64_t>(cfg_.train.seed) * 1000003ULL +
                       static_cast<uint64_t>(rank_) * 7919ULL + static_cast<uint64_t>(state_.step));
    std::vector<double> tokens{static_cast<double>(r.tokens)};
    group_->sum(tokens);
    r.tokens = static_cast<int64_t>(tokens[0]);
  }
  const double step_tokens = static_cast<double>(std::max<int64_t>(1, r.tokens));
  double nll_sum = 0, aux_sum = 0, density_sum = 0;
  for (const auto& b : batches) {
    auto out = ctx_.model->forward(b.inputs_BT, b.mask_BT);
    const auto nll = models::masked_lm_nll_sum(out.logits, b.targets_BT, b.mask_BT);
    auto loss = nll / step_tokens;
    if (controller_) {
      // The balancing terms are per micro-batch means: averaged over the step's micro-batches.
      auto aux = controller_->loss(out.routing, b.mask_BT.reshape({-1}), /*training=*/true);
      aux_sum += aux.item<double>();
      loss = loss + aux / accum_;
    }
    density_sum += routed_density(out.routing, b.mask_BT);
    loss.backward();
    nll_sum += nll.item<double>();
  }
  if (group_) {
    // Each rank's loss already carries the whole step's normalisation: the step's gradient is the
    // sum of the ranks' (and so are its loss figures).
    group_->sum_gradients(ctx_.model->parameters());
    std::vector<double> sums{nll_sum, aux_sum, density_sum};
    group_->sum(sums);
    nll_sum = sums[0];
    aux_sum = sums[1];
    density_sum = sums[2];
  }
  r.grad_norm = cfg_.optim.grad_clip > 0 ? torch::nn::utils::clip_grad_norm_(
                                               ctx_.model->parameters(), cfg_.optim.grad_clip)
                                         : 0.0;
  optim_->step();
  optim_->zero_grad();
  if (controller_) controller_->after_optimizer_step();
  r.lm_loss = nll_sum / step_tokens;
  r.aux_loss = aux_sum / accum_;
  r.density = density_sum / accum_;
  return r;
}

// A step row every log_every steps (and at the last), with the progress line.
void Trainer::log_step(const StepResult& s, int64_t first_step) {
  if (!leader()) return;
  const bool log_now =
      state_.step % std::max<int64_t>(1, cfg_.train.log_every) == 0 || state_.step == total_steps_;
  if (!log_now) return;
  const double elapsed = since(t_start_);
  tokens_per_s_ = tokens_window_ / std::max(1e-9, since(window_start_));
  tokens_window_ = 0;
  window_start_ = Clock::now();
  StepRow r;
  r.step = state_.step;
  r.tokens = state_.tokens;
  r.lm_loss = s.lm_loss;
  r.aux_loss = s.aux_loss;
  r.loss = s.lm_loss + s.aux_loss;
  r.lambda = controller_ && controller_->metrics().count("lambda")
                 ? controller_->metrics().at("lambda")
                 : std::nan("");
  r.density = s.density;
  r.lr = s.lr;
  r.grad_norm = s.grad_norm;
  r.tokens_per_s = tokens_per_s_;
  r.elapsed_s = wall_before_ + elapsed;
  store_->append_steps(run_key_, {r});
  if (!opts_.quiet) {
    const double eta = elapsed / static_cast<double>(state_.step - first_step) *
                       static_cast<double>(total_steps_ - state_.step);
    fmt::print(stderr,
               "\rstep {:>6}/{} loss {:.4f} lm {:.4f} density {:.3f}{} lr {:.2e} "
               "tok/s {:.0f} ETA {}   ",
               state_.step, total_steps_, r.loss, s.lm_loss, r.density,
               std::isfinite(r.lambda) ? fmt::format(" λ {:.3g}", r.lambda) : "", s.lr,
               tokens_per_s_, format_duration(eta));
  }
}

// Validation, balance statistics and the flip rate every eval_every steps (not at the last:
// finish() evaluates the end).
void Trainer::evaluate_during_training() {
  if (!leader()) return;
  const bool eval_now = cfg_.train.eval_every > 0 && state_.step % cfg_.train.eval_every == 0 &&
                        state_.step < total_steps_;
  if (!eval_now) return;
  models::BalanceStats stats;
  last_val_ = val_loss(&stats);
  const auto flips = routing_flip();
  store_->write([&] {
    write_eval(last_val_, stats);
    store_->append_evals(run_key_, flips);
  });
  save_pending_masks();
  if (!opts_.quiet) {
    fmt::print(stderr, "\n  val loss {:.4f} (ppl {:.2f})\n", last_val_, std::exp(last_val_));
  }
}

// Marks the run failed while an exception is on its way out. When the store itself is what
// failed (a full disk), that write may fail too: the original error is the one to report, and
// the run's lease going stale lets the same command resume it later.
void Trainer::mark_failed() {
  if (store_ == nullptr) return;
  try {
    store_->finish_run(run_key_, RunStatus::kFailed, state_.step, state_.wall_s, state_.tokens);
  } catch (const std::exception& e) {
    fmt::print(stderr, "\nwarning: could not mark run {} failed: {}\n", run_key_, e.what());
  }
}

void Trainer::keep_lease() {
  if (store_ == nullptr) return;
  if (since(last_heartbeat_) < kHeartbeatSeconds) return;
  last_heartbeat_ = Clock::now();
  if (!store_->heartbeat_lease(run_key_)) {
    throw std::runtime_error(fmt::format(
        "run {} was taken over by another process (this one looked dead for over {} s); stopping",
        run_key_, Store::kLeaseStaleSeconds));
  }
}

// Steps until the end, a stop request, or divergence; a failure marks the run failed.
RunStatus Trainer::train_loop(int64_t first_step) {
  t_start_ = Clock::now();
  window_start_ = t_start_;
  wall_before_ = state_.wall_s;
  ctx_.model->train();
  try {
    while (state_.step < total_steps_) {
      if (stop_now()) return RunStatus::kInterrupted;
      const StepResult s = train_step();
      ++state_.step;
      state_.tokens += s.tokens;
      tokens_window_ += s.tokens;
      if (!std::isfinite(s.lm_loss) || !std::isfinite(s.aux_loss) ||
          s.lm_loss > cfg_.train.diverge_loss) {
        fmt::print(stderr, "\nrun {} diverged at step {}: lm loss {}\n", run_key_, state_.step,
                   s.lm_loss);
        return RunStatus::kDiverged;
      }
      fault_point("step.done", state_.step);
      keep_lease();
      log_step(s, first_step);
      evaluate_during_training();
      if (leader() && cfg_.train.checkpoint_every > 0 &&
          state_.step % cfg_.train.checkpoint_every == 0) {
        state_.wall_s = wall_before_ + since(t_start_);
        save();
      }
    }
  } catch (...) {
    state_.wall_s = wall_before_ + since(t_start_);
    mark_failed();
    throw;
  }
  return RunStatus::kDone;
}

void Trainer::finish(RunStatus status) {
  if (!leader()) return;  // the other ranks' part ended with the last step
  if (!opts_.quiet) fmt::print(stderr, "\n");
  state_.wall_s = wall_before_ + since(t_start_);
  if (status == RunStatus::kInterrupted) {
    try {
      save();
    } catch (...) {
      mark_failed();
      throw;
    }
    store_->finish_run(run_key_, RunStatus::kInterrupted, state_.step, state_.wall_s,
                       state_.tokens);
    fmt::print(stderr, "run {} interrupted at step {}; the same command resumes it\n", run_key_,
               state_.step);
    return;
  }
  if (status == RunStatus::kDiverged) {
    store_->finish_run(run_key_, RunStatus::kDiverged, state_.step, state_.wall_s, state_.tokens);
    return;
  }
  // The trained weights are kept first: if the evaluation below fails or is stopped, the same
  // command resumes at the last step and only re-runs the evaluation.
  try {
    save();
    if (!opts_.quiet) {
      fmt::print(stderr, "final evaluation at step {}: validation{}{}\n", state_.step,
                 eval_tasks_.empty() ? "" : fmt::format(", {} zero-shot tasks", eval_tasks_.size()),
                 cfg_.eval.theta_sweep.empty() || !threshold_of(cfg_) ? "" : ", θ sweep");
    }
    const auto eval_start = Clock::now();
    models::BalanceStats stats;
    last_val_ = val_loss(&stats);
    auto extra = routing_flip();
    const auto zero_shot = final_evaluation();
    extra.insert(extra.end(), zero_shot.begin(), zero_shot.end());
    final_eval_s_ = since(eval_start);
    fault_point("eval.before_commit", state_.step);
    // Final evaluation rows and the 'done' status land together or not at all.
    store_->write([&] {
      write_eval(last_val_, stats);
      store_->append_evals(run_key_, extra);
      store_->finish_run(run_key_, RunStatus::kDone, state_.step, state_.wall_s, state_.tokens);
    });
    fault_point("eval.after_commit", state_.step);
    save_pending_masks();
  } catch (const StopRequested&) {
    store_->finish_run(run_key_, RunStatus::kInterrupted, state_.step, state_.wall_s,
                       state_.tokens);
    fmt::print(stderr,
               "\nrun {} interrupted during its final evaluation; the same command "
               "redoes it\n",
               run_key_);
    status_ = RunStatus::kInterrupted;
    return;
  } catch (...) {
    mark_failed();
    throw;
  }
  if (!opts_.quiet) {
    fmt::print(stderr, "run {} done: {} steps in {}, val loss {:.4f} (ppl {:.2f})\n", run_key_,
               state_.step, format_duration(state_.wall_s), last_val_, std::exp(last_val_));
  }
}

TrainResult Trainer::run() {
  validate(cfg_);
  run_key_ = run_key(cfg_);
  rank_ = opts_.launch.rank;
  world_ = opts_.launch.world;
  TrainResult result;
  result.run_key = run_key_;
  result.rank = rank_;
  if (world_ > 1) {
    const int accum = grad_accum(cfg_.data);
    if (accum % world_ != 0) {
      throw std::invalid_argument(fmt::format(
          "data parallel over {} ranks splits each step's micro-batches among them, but this "
          "config has {} per step (data.batch_size {} / data.micro_batch {}); set a "
          "data.micro_batch that makes it a multiple of {}",
          world_, accum, cfg_.data.batch_size, cfg_.data.micro_batch, world_));
    }
    group_ = std::make_unique<dist::Group>(opts_.launch, opts_.dist_timeout);
  }
  // Rank 0 alone opens the store: it skips a finished run, refuses a run another process holds,
  // and tells the other ranks which (0 train, 1 finished, 2 held elsewhere, 3 failed to start).
  std::unique_ptr<Store> store;
  std::vector<double> decision{0, 0};  // {what, the finished run's status}
  std::string busy;
  if (leader()) {
    try {
      store = std::make_unique<Store>(opts_.db_path.string());
      // A finished run (done, or diverged: a rerun would diverge the same way) is not trained
      // again; `moebench matrix` applies the same rule.
      if (auto existing = store->find_run(run_key_); existing && is_finished(existing->status)) {
        decision = {1, static_cast<double>(static_cast<int>(existing->status))};
        result.steps = existing->status_step;
        result.wall_s = existing->wall_s;
      } else if (const auto holder = store->acquire_lease(run_key_, Store::kLeaseStaleSeconds)) {
        // One process per run: a second trainer (another terminal, a requeued job, a second
        // matrix worker) is told who holds it; a holder that died is taken over.
        decision = {2, 0};
        busy = fmt::format(
            "run {} is being trained by {} (pid {} on {}, heartbeat {:.0f} s ago); not starting "
            "it twice",
            run_key_, holder->owner, holder->pid, holder->host, holder->heartbeat_age_s);
      }
    } catch (...) {
      if (group_) {
        std::vector<double> failed{3, 0};
        group_->sum(failed);
      }
      throw;
    }
  }
  if (group_) group_->sum(decision);
  if (decision[0] == 1) {
    result.skipped = true;
    result.status = static_cast<RunStatus>(static_cast<int>(decision[1]));
    return result;
  }
  if (decision[0] == 2) throw RunBusy(leader() ? busy : "rank 0 found the run held elsewhere");
  if (decision[0] == 3)
    throw std::runtime_error("rank 0 failed before training (its error says why)");
  store_ = store.get();
  struct Release {
    Store* store;
    const std::string& key;
    ~Release() {
      try {
        if (store != nullptr) store->release_lease(key);
      } catch (...) {
        // The lease then goes stale and is taken over.
      }
    }
  } release{store_, run_key_};
  last_heartbeat_ = Clock::now();
  setup();
  if (leader()) prepare_final_evaluation();
  const bool resumed = resume();
  sync_ranks();
  int64_t first_step = state_.step;
  if (leader()) {
    first_step = begin_row().status_step;
    if (!opts_.quiet) {
      const auto pc = models::count_parameters(*ctx_.model);
      fmt::print(stderr,
                 "run {} ({} {} seed {}): {} parameters ({} non-embedding), {} steps x {} seqs of "
                 "{} tokens{}{}\n",
                 run_key_, cfg_.moe.method, opts_.size_name, cfg_.train.seed, pc.total,
                 pc.non_embedding, total_steps_, cfg_.data.batch_size, cfg_.model.seq_len,
                 world_ > 1 ? fmt::format(", data parallel over {} ranks", world_) : "",
                 resumed ? fmt::format(", resuming at step {}", state_.step) : "");
    }
  }
  status_ = train_loop(first_step);
  finish(status_);
  result.status = status_;
  result.steps = state_.step;
  result.final_val_loss = last_val_;
  result.wall_s = state_.wall_s;
  result.tokens_per_s = tokens_per_s_;
  result.final_eval_s = final_eval_s_;
  return result;
}

}  // namespace

void request_stop() { g_stop.store(true); }

bool takes_weight_decay(const std::string& parameter_name) {
  auto ends_with = [&](const std::string& suffix) {
    return parameter_name.size() >= suffix.size() &&
           parameter_name.compare(parameter_name.size() - suffix.size(), suffix.size(), suffix) ==
               0;
  };
  return !(parameter_name == "bias" || ends_with(".bias") || ends_with("norm.weight"));
}

TrainResult train(const TrainOptions& opts) {
  g_stop.store(false);
  Trainer t(opts);
  return t.run();
}

}  // namespace moebench
