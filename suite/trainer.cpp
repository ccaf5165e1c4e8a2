// Training loop: AdamW (no decay on 1-D params), warm-up + linear decay, clipping, gradient
// accumulation, validation, checkpoint/exact resume, divergence detection, SQLite rows.
#include "suite/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "baselines/aoe.h"
#include "datasets/prepare.h"
#include "datasets/sampler.h"
#include "datasets/vocab.h"
#include "models/balance_stats.h"
#include "models/transformer.h"
#include "suite/env_info.h"
#include "suite/evaluator.h"
#include "suite/store.h"

namespace moebench {
namespace {

std::atomic<bool> g_stop{false};

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

}  // namespace

// Declared in suite/evaluator.h: `moebench eval` rebuilds checkpoints with it.
torch::Device run_device(const RunConfig& cfg) {
  if (cfg.train.device == "cuda" && !torch::cuda::is_available()) {
    throw std::runtime_error("train.device=cuda but LibTorch sees no CUDA device");
  }
  const bool cuda =
      cfg.train.device == "cuda" || (cfg.train.device == "auto" && torch::cuda::is_available());
  return cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

models::ModelOptions model_options(const RunConfig& c, int64_t vocab_size) {
  models::ModelOptions o;
  o.vocab_size = vocab_size;
  o.hidden = c.model.hidden;
  o.layers = c.model.layers;
  o.q_heads = c.model.q_heads;
  o.kv_heads = c.model.kv_heads;
  o.head_dim = effective_head_dim(c.model);
  o.max_seq_len = c.model.seq_len;
  o.rope_theta = c.model.rope_theta;
  o.norm_eps = c.model.norm_eps;
  o.attn_dropout = c.model.attn_dropout;
  o.init_std = c.model.init_std;
  auto& m = o.moe;
  m.method = c.moe.method;
  m.experts = c.moe.experts;
  m.intermediate = c.moe.intermediate;
  m.rank = effective_rank(c.moe);
  m.theta = c.moe.theta;
  m.norm = c.moe.norm;
  m.gamma_init = c.moe.gamma_init;
  m.bias_init = c.moe.bias_init;
  m.rho_target = c.moe.rho_target;
  m.eta = c.moe.eta;
  m.lambda0 = c.moe.lambda0;
  m.eb_weight = c.moe.eb_weight;
  m.tb_weight = c.moe.tb_weight;
  m.mask_padding = c.moe.mask_padding;
  m.lambda_bf16 = c.moe.lambda_bf16;
  m.top_k = effective_top_k(c.moe);
  m.aux_coef = c.moe.aux_coef;
  m.capacity_factor_train = c.moe.capacity_factor_train;
  m.capacity_factor_eval = c.moe.capacity_factor_eval;
  m.z_loss_coef = c.moe.z_loss_coef;
  m.jitter = c.moe.jitter;
  m.switch_norm = c.moe.switch_norm;
  m.remoe_variant = c.moe.remoe_variant;
  m.remoe_alpha = c.moe.remoe_alpha;
  m.remoe_lambda0 = c.moe.remoe_lambda0;
  m.remoe_rf_lambda0 = c.moe.remoe_rf_lambda0;
  m.remoe_rf_eta = c.moe.remoe_rf_eta;
  m.aoe_variant = c.moe.aoe_variant;
  m.self_routing_subspace = c.moe.self_routing_subspace;
  if (m.method == "aoe" && m.aoe_variant == "aoe_paper") {
    // Parameter-matched width (METHODS.md §5). m.rank was fixed above from the ORIGINAL
    // intermediate (moe.rank, or I/4), so widening leaves r unchanged.
    m.intermediate = baselines::aoe_wide_intermediate(c.model.hidden, m.intermediate, m.rank);
  }
  m.backend = c.kernels.backend;
  o.dense_intermediate = c.moe.dense_width == "iso_param"
                             ? int64_t{c.moe.experts} * c.moe.intermediate
                             : int64_t{effective_top_k(c.moe)} * c.moe.intermediate;
  return o;
}

namespace {

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

// Everything a resumed run needs besides the tensors in the archive.
struct TrainState {
  int64_t step = 0;    // optimizer steps done
  int64_t tokens = 0;  // real (non-padding) training tokens seen
  double wall_s = 0;   // training wall time so far, across resumes
  std::map<std::string, double> controller;
};

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : opts_(o), cfg_(o.cfg) {}
  TrainResult run();

 private:
  void setup();
  double lr_at(int64_t step) const;
  struct Batch {
    torch::Tensor inputs, targets, mask;
    int64_t real_tokens;
  };
  Batch to_tensors(const data::Batch& b) const;
  // Mean validation loss over the configured batches (weighted by real tokens) + balance stats.
  double val_loss(models::BalanceStats* stats);
  void save_checkpoint();
  bool load_checkpoint();
  void write_eval(double val_loss, const models::BalanceStats& stats, Store& store);
  // Routing flip rate on the first val batch against the snapshot beside the checkpoint; rows
  // only when that snapshot is from an earlier step (a resumed run has written later ones).
  std::vector<EvalRow> routing_flip();
  // End of a done run: zero-shot tasks and the θ sweep, as store rows (printed unless quiet).
  std::vector<EvalRow> final_evaluation();

  TrainOptions opts_;
  RunConfig cfg_;
  std::string run_key_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<data::ShardReader> train_shard_, val_shard_;
  std::unique_ptr<data::BatchSampler> train_sampler_, val_sampler_;
  models::Transformer model_{nullptr};
  std::unique_ptr<models::AuxController> controller_;
  std::unique_ptr<torch::optim::AdamW> optim_;
  std::unique_ptr<data::BpeTokenizer> tokenizer_;  // for the zero-shot tasks
  std::vector<data::EvalTask> eval_tasks_;
  std::filesystem::path ckpt_dir_;
  int64_t total_steps_ = 0;
  int accum_ = 1;
  TrainState state_;
};

void Trainer::setup() {
  moebench::validate(cfg_);
  run_key_ = run_key(cfg_);
  device_ = run_device(cfg_);
  if (cfg_.train.dtype == "bf16" && device_.is_cpu()) {
    throw std::runtime_error(
        "train.dtype=bf16 needs a CUDA device; on the CPU use --set train.dtype=fp32 (the tiny "
        "and micro configs already do)");
  }
  // Data: the vocabulary the model is built for must be the one the shards were made with.
  const auto tok = data::load_vocab(opts_.data_dir, cfg_.model.vocab);
  const auto dir = cfg_.data.shard_dir.empty() ? data::shard_dir(opts_.data_dir, cfg_.model.vocab)
                                               : std::filesystem::path(cfg_.data.shard_dir);
  const data::VocabInfo vinfo{tok.name(), tok.identity(), static_cast<uint32_t>(tok.vocab_size()),
                              static_cast<uint32_t>(tok.eot_id())};
  train_shard_ = std::make_unique<data::ShardReader>(dir / "train.bin");
  val_shard_ = std::make_unique<data::ShardReader>(dir / "val.bin");
  train_shard_->require_vocab(vinfo);
  val_shard_->require_vocab(vinfo);
  if (cfg_.model.vocab_size != 0 && cfg_.model.vocab_size != tok.vocab_size()) {
    throw std::runtime_error(fmt::format("model.vocab_size = {} but vocabulary '{}' has {} ids",
                                         cfg_.model.vocab_size, tok.name(), tok.vocab_size()));
  }
  const auto mode =
      cfg_.data.mode == "packed" ? data::SampleMode::kPacked : data::SampleMode::kPadded;
  const int micro = effective_micro_batch(cfg_.data);
  accum_ = grad_accum(cfg_.data);
  train_sampler_ = std::make_unique<data::BatchSampler>(*train_shard_, mode, cfg_.model.seq_len,
                                                        micro, cfg_.train.seed);
  val_sampler_ = std::make_unique<data::BatchSampler>(*val_shard_, mode, cfg_.model.seq_len, micro,
                                                      cfg_.train.seed);
  total_steps_ = cfg_.train.steps > 0 ? cfg_.train.steps
                                      : train_sampler_->num_samples() / cfg_.data.batch_size;

  torch::manual_seed(cfg_.train.seed);
  model_ = models::Transformer(model_options(cfg_, tok.vocab_size()));
  model_->to(device_);
  if (cfg_.train.dtype == "bf16") model_->to(torch::kBFloat16);
  controller_ = models::make_controller(model_->opts.moe, cfg_.model.layers);

  // Weight decay on matrices only: biases, norm weights and RF's γ/b are 1-D.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model_->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
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

double Trainer::lr_at(int64_t step) const {
  const double peak = cfg_.optim.lr;
  const int64_t warm = cfg_.optim.warmup_steps;
  if (step < warm) return peak * static_cast<double>(step + 1) / warm;
  const double frac = total_steps_ > warm ? static_cast<double>(step - warm) /
                                                static_cast<double>(total_steps_ - warm)
                                          : 1.0;
  const double floor = cfg_.optim.min_lr_ratio;
  return peak * (1.0 - (1.0 - floor) * std::min(1.0, frac));
}

Trainer::Batch Trainer::to_tensors(const data::Batch& b) const {
  auto t = eval::to_tensors(b, device_);
  return {t.inputs_BT, t.targets_BT, t.mask_BT, t.real_tokens};
}

double Trainer::val_loss(models::BalanceStats* stats) {
  return eval::validation_loss(*model_, *val_sampler_, effective_micro_batch(cfg_.data),
                               cfg_.eval.val_batches, device_, stats)
      .loss;
}

void Trainer::save_checkpoint() {
  std::filesystem::create_directories(ckpt_dir_);
  torch::serialize::OutputArchive archive;
  model_->save(archive);
  torch::serialize::OutputArchive optim_archive;
  optim_->save(optim_archive);
  archive.write("optimizer", optim_archive);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng_cpu", gen.get_state());
  }
  const auto tmp = ckpt_dir_ / "model.pt.tmp";
  archive.save_to(tmp.string());
  nlohmann::json j;
  j["step"] = state_.step;
  j["tokens"] = state_.tokens;
  j["wall_s"] = state_.wall_s;
  j["controller"] = controller_ ? controller_->state() : std::map<std::string, double>{};
  j["run_key"] = run_key_;
  std::ofstream(ckpt_dir_ / "state.json.tmp") << j.dump(2);
  // The config beside the tensors: `moebench eval --checkpoint DIR` rebuilds the model from it.
  std::ofstream(ckpt_dir_ / "config.json.tmp") << to_canonical_json(cfg_);
  std::filesystem::rename(ckpt_dir_ / "config.json.tmp", ckpt_dir_ / "config.json");
  // model.pt first, then state.json: state.json names the step the tensors belong to.
  std::filesystem::rename(tmp, ckpt_dir_ / "model.pt");
  std::filesystem::rename(ckpt_dir_ / "state.json.tmp", ckpt_dir_ / "state.json");
}

bool Trainer::load_checkpoint() {
  if (!std::filesystem::exists(ckpt_dir_ / "state.json")) return false;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(ckpt_dir_ / "state.json"));
  torch::serialize::InputArchive archive;
  archive.load_from((ckpt_dir_ / "model.pt").string(), device_);
  model_->load(archive);
  torch::serialize::InputArchive optim_archive;
  archive.read("optimizer", optim_archive);
  optim_->load(optim_archive);
  torch::Tensor rng;
  archive.read("rng_cpu", rng);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  state_.step = j["step"].get<int64_t>();
  state_.tokens = j["tokens"].get<int64_t>();
  state_.wall_s = j["wall_s"].get<double>();
  state_.controller = j["controller"].get<std::map<std::string, double>>();
  if (controller_) controller_->load_state(state_.controller);
  return true;
}

void Trainer::write_eval(double val_loss, const models::BalanceStats& stats, Store& store) {
  const double nan = std::nan("");
  std::vector<EvalRow> evals;
  const auto n = static_cast<int64_t>(
      std::min<int64_t>(val_sampler_->num_samples(),
                        int64_t{cfg_.eval.val_batches} * effective_micro_batch(cfg_.data)));
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
  store.append_evals(run_key_, evals);
  store.append_layer_stats(run_key_, rows);
}

std::vector<EvalRow> Trainer::routing_flip() {
  if (cfg_.moe.method == "dense") return {};
  // The calibration batch: the first val batch, the same tokens at every eval point.
  const int micro = effective_micro_batch(cfg_.data);
  if (val_sampler_->num_samples() < micro) return {};
  std::vector<int64_t> ids(micro);
  for (int i = 0; i < micro; ++i) ids[i] = i;
  const Batch calib = to_tensors(val_sampler_->make_batch(ids));
  eval::MaskSnapshot now{state_.step, eval::routing_masks(*model_, calib.inputs, calib.mask)};
  const auto path = ckpt_dir_ / "calib_masks.pt";
  std::vector<EvalRow> rows;
  if (std::filesystem::exists(path)) {
    const eval::MaskSnapshot before = eval::load_masks(path);
    // A snapshot from this step or later was written before an interruption: the resumed run
    // repeats that trajectory exactly, and its rows are already stored.
    if (before.step >= state_.step) return {};
    rows = eval::flip_rows(eval::flip_rate(before.masks, now.masks), state_.step);
  }
  eval::save_masks(path, now);
  return rows;
}

std::vector<EvalRow> Trainer::final_evaluation() {
  std::vector<EvalRow> rows;
  std::vector<eval::TaskScore> scores;
  const auto scorer = eval::model_scorer(*model_, device_);
  const auto encode = [this](const std::string& text) { return tokenizer_->encode(text); };
  for (const auto& task : eval_tasks_) {
    scores.push_back(
        eval::score_task(task, encode, scorer, cfg_.model.seq_len, tokenizer_->eot_id()));
    const auto r = eval::task_rows(scores.back(), state_.step);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  if (!opts_.quiet && !scores.empty()) fmt::print(stderr, "{}", eval::format_scores(scores));
  if (!cfg_.eval.theta_sweep.empty() && cfg_.moe.method == "routing_free") {
    const auto points =
        eval::theta_sweep(*model_, *val_sampler_, effective_micro_batch(cfg_.data),
                          cfg_.eval.val_batches, device_, cfg_.eval.theta_sweep, cfg_.moe.theta);
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

TrainResult Trainer::run() {
  setup();
  TrainResult result;
  result.run_key = run_key_;
  Store store(opts_.db_path.string());
  if (auto existing = store.find_run(run_key_); existing && existing->status == RunStatus::kDone) {
    result.skipped = true;
    result.status = "done";
    result.steps = existing->status_step;
    result.wall_s = existing->wall_s;
    return result;
  }
  if (!cfg_.eval.theta_sweep.empty() && cfg_.moe.method != "routing_free" && !opts_.quiet) {
    fmt::print(stderr, "note: eval.theta_sweep applies to routing_free only; skipped for {}\n",
               cfg_.moe.method);
  }
  // The zero-shot tasks are built now, so that missing task data fails before training.
  tokenizer_ =
      std::make_unique<data::BpeTokenizer>(data::load_vocab(opts_.data_dir, cfg_.model.vocab));
  eval_tasks_ = eval::load_eval_tasks(opts_.data_dir, cfg_.eval.tasks,
                                      static_cast<size_t>(cfg_.eval.max_examples));
  const bool resumed = load_checkpoint();
  // The flip rate's first reference: the routing at initialisation (replacing any snapshot a
  // deleted run of the same key left behind).
  if (!resumed) {
    std::filesystem::remove(ckpt_dir_ / "calib_masks.pt");
    routing_flip();
  }
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
  row.device = device_.is_cuda() ? "cuda" : fmt::format("cpu x{}", env.threads);
  // What the MoE layers will resolve on every forward: the model's device and dtype.
  row.backend = kernels::backend_name(
      kernels::resolve_backend(cfg_.kernels.backend, device_,
                               cfg_.train.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat));
  row.status_step = state_.step;
  store.begin_run(row);
  store.record_env({{"commit", env.commit},
                    {"torch_version", env.torch_version},
                    {"blas", env.blas},
                    {"threads", std::to_string(env.threads)},
                    {"matmul_gflops", fmt::format("{:.1f}", env.matmul_gflops)}});
  if (!opts_.quiet) {
    const auto pc = models::count_parameters(*model_);
    fmt::print(stderr,
               "run {} ({} {} seed {}): {} parameters ({} non-embedding), {} steps x {} seqs of {}"
               " tokens{}\n",
               run_key_, cfg_.moe.method, opts_.size_name, cfg_.train.seed, pc.total,
               pc.non_embedding, total_steps_, cfg_.data.batch_size, cfg_.model.seq_len,
               resumed ? fmt::format(", resuming at step {}", state_.step) : "");
  }

  const auto t_start = Clock::now();
  const double wall_before = state_.wall_s;
  std::vector<StepRow> pending;
  double last_val = std::nan("");
  int64_t tokens_window = 0;
  auto window_start = Clock::now();
  double tokens_per_s = 0;
  std::string status = "done";
  model_->train();
  try {
    while (state_.step < total_steps_) {
      if (g_stop.load() || (opts_.stop_after_steps > 0 && state_.step >= opts_.stop_after_steps)) {
        status = "interrupted";
        break;
      }
      const double lr = lr_at(state_.step);
      for (auto& g : optim_->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      }
      double lm_sum = 0, aux_sum = 0, density_sum = 0;
      int64_t step_tokens = 0;
      for (int m = 0; m < accum_; ++m) {
        const Batch b = to_tensors(train_sampler_->batch(state_.step * accum_ + m));
        auto out = model_->forward(b.inputs, b.mask);
        auto lm = models::masked_lm_loss(out.logits, b.targets, b.mask);
        auto loss = lm;
        if (controller_) {
          auto aux = controller_->loss(out.routing, b.mask.reshape({-1}), /*training=*/true);
          aux_sum += aux.item<double>();
          loss = loss + aux;
        }
        density_sum += routed_density(out.routing, b.mask);
        (loss / accum_).backward();
        lm_sum += lm.item<double>();
        step_tokens += b.real_tokens;
      }
      const double grad_norm =
          cfg_.optim.grad_clip > 0
              ? torch::nn::utils::clip_grad_norm_(model_->parameters(), cfg_.optim.grad_clip)
              : 0.0;
      optim_->step();
      optim_->zero_grad();
      if (controller_) controller_->after_optimizer_step();
      ++state_.step;
      state_.tokens += step_tokens;
      tokens_window += step_tokens;
      const double lm_loss = lm_sum / accum_, aux_loss = aux_sum / accum_;
      if (!std::isfinite(lm_loss) || !std::isfinite(aux_loss) ||
          lm_loss > cfg_.train.diverge_loss) {
        status = "diverged";
        fmt::print(stderr, "\nrun {} diverged at step {}: lm loss {}\n", run_key_, state_.step,
                   lm_loss);
        break;
      }
      const bool log_now = state_.step % std::max<int64_t>(1, cfg_.train.log_every) == 0 ||
                           state_.step == total_steps_;
      const double elapsed = since(t_start);
      if (log_now) {
        tokens_per_s = tokens_window / std::max(1e-9, since(window_start));
        tokens_window = 0;
        window_start = Clock::now();
        StepRow r;
        r.step = state_.step;
        r.tokens = state_.tokens;
        r.lm_loss = lm_loss;
        r.aux_loss = aux_loss;
        r.loss = lm_loss + aux_loss;
        r.lambda = controller_ && controller_->metrics().count("lambda")
                       ? controller_->metrics().at("lambda")
                       : std::nan("");
        r.density = density_sum / accum_;
        r.lr = lr;
        r.grad_norm = grad_norm;
        r.tokens_per_s = tokens_per_s;
        r.elapsed_s = wall_before + elapsed;
        pending.push_back(r);
        store.append_steps(run_key_, pending);
        pending.clear();
        if (!opts_.quiet) {
          const double eta = elapsed / static_cast<double>(state_.step - (row.status_step)) *
                             static_cast<double>(total_steps_ - state_.step);
          fmt::print(stderr,
                     "\rstep {:>6}/{} loss {:.4f} lm {:.4f} density {:.3f} λ {:.3g} lr {:.2e} "
                     "tok/s {:.0f} ETA {}   ",
                     state_.step, total_steps_, r.loss, lm_loss, r.density, r.lambda, lr,
                     tokens_per_s, format_duration(eta));
        }
      }
      const bool eval_now = cfg_.train.eval_every > 0 && state_.step % cfg_.train.eval_every == 0 &&
                            state_.step < total_steps_;
      if (eval_now) {
        models::BalanceStats stats;
        last_val = val_loss(&stats);
        const auto flips = routing_flip();
        store.write([&] {
          write_eval(last_val, stats, store);
          store.append_evals(run_key_, flips);
        });
        if (!opts_.quiet)
          fmt::print(stderr, "\n  val loss {:.4f} (ppl {:.2f})\n", last_val, std::exp(last_val));
      }
      if (cfg_.train.checkpoint_every > 0 && state_.step % cfg_.train.checkpoint_every == 0) {
        state_.wall_s = wall_before + since(t_start);
        save_checkpoint();
      }
    }
  } catch (...) {
    state_.wall_s = wall_before + since(t_start);
    store.finish_run(run_key_, RunStatus::kFailed, state_.step, state_.wall_s, state_.tokens);
    throw;
  }
  if (!opts_.quiet) fmt::print(stderr, "\n");
  state_.wall_s = wall_before + since(t_start);
  if (status == "interrupted") {
    save_checkpoint();
    store.finish_run(run_key_, RunStatus::kInterrupted, state_.step, state_.wall_s, state_.tokens);
    fmt::print(stderr, "run {} interrupted at step {}; the same command resumes it\n", run_key_,
               state_.step);
  } else if (status == "diverged") {
    store.finish_run(run_key_, RunStatus::kDiverged, state_.step, state_.wall_s, state_.tokens);
  } else {
    // The trained weights are kept first: if the evaluation below fails, the run is marked
    // 'failed' and the same command resumes at the last step and only re-runs the evaluation.
    save_checkpoint();
    try {
      models::BalanceStats stats;
      last_val = val_loss(&stats);
      auto extra = routing_flip();
      const auto zero_shot = final_evaluation();
      extra.insert(extra.end(), zero_shot.begin(), zero_shot.end());
      // Final evaluation rows and the 'done' status land together or not at all.
      store.write([&] {
        write_eval(last_val, stats, store);
        store.append_evals(run_key_, extra);
        store.finish_run(run_key_, RunStatus::kDone, state_.step, state_.wall_s, state_.tokens);
      });
    } catch (...) {
      store.finish_run(run_key_, RunStatus::kFailed, state_.step, state_.wall_s, state_.tokens);
      throw;
    }
    if (!opts_.quiet) {
      fmt::print(stderr, "run {} done: {} steps in {}, val loss {:.4f} (ppl {:.2f})\n", run_key_,
                 state_.step, format_duration(state_.wall_s), last_val, std::exp(last_val));
    }
  }
  result.status = status;
  result.steps = state_.step;
  result.final_val_loss = last_val;
  result.wall_s = state_.wall_s;
  result.tokens_per_s = tokens_per_s;
  return result;
}

}  // namespace

void request_stop() { g_stop.store(true); }

TrainResult train(const TrainOptions& opts) {
  g_stop.store(false);
  Trainer t(opts);
  return t.run();
}

}  // namespace moebench
