// `moebench eval`: validation perplexity, balance, zero-shot tasks and the θ sweep of a stored
// run's checkpoint. Spec: shared/spec/DATA.md "Zero-shot evaluation available offline".
#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/prepare.h"
#include "datasets/vocab.h"
#include "suite/checkpoint.h"
#include "suite/cli.h"
#include "suite/config.h"
#include "suite/env_info.h"
#include "suite/evaluator.h"
#include "suite/report.h"
#include "suite/run_context.h"
#include "suite/store.h"

namespace moebench::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string run_key;
  std::string checkpoint;
  std::string db = report::kDefaultDb;
  std::string checkpoints = "checkpoints";
  std::vector<std::string> tasks;
  int64_t max_items = -1;
  std::vector<std::string> sets;
  std::vector<double> theta_sweep;
  bool no_tasks = false;
};

// The config stored with the run, or the one the trainer wrote beside the checkpoint.
struct Source {
  RunConfig cfg;
  std::string run_key;  // "" = unknown
  bool write = false;   // rows go to the store
  std::string label;
};

void run_eval(const EvalArgs& args, bool db_given, const GlobalOptions& global) {
  if (args.run_key.empty() && args.checkpoint.empty()) {
    throw std::runtime_error(
        "say which model to evaluate: --run RUN_KEY (a run in --db) or "
        "--checkpoint DIR (a checkpoint folder)");
  }
  Source src;
  std::unique_ptr<Store> store;
  fs::path ckpt_dir;
  if (!args.run_key.empty()) {
    store = report::open_results(args.db);
    const auto row = store->find_run(args.run_key);
    if (!row) {
      throw std::runtime_error(
          fmt::format("unknown run key '{}' in {}: `moebench runs --db {}` lists the stored runs",
                      args.run_key, args.db, args.db));
    }
    src.cfg = config_from_json(row->config_json);
    src.run_key = row->run_key;
    src.write = true;
    src.label = fmt::format("{} {} seed {}", row->method, row->size, row->seed);
    ckpt_dir = args.checkpoint.empty() ? fs::path(args.checkpoints) / args.run_key
                                       : fs::path(args.checkpoint);
  } else {
    ckpt_dir = args.checkpoint;
  }
  const auto checkpoint = find_checkpoint(ckpt_dir);
  if (!checkpoint) {
    throw std::runtime_error(fmt::format(
        "no complete checkpoint at {}: the trainer keeps each run's last two checkpoints in "
        "<checkpoints>/<run_key>; point --checkpoints or --checkpoint at it, or retrain with "
        "`moebench train`",
        ckpt_dir.string()));
  }
  if (src.run_key.empty()) {
    src.cfg = read_checkpoint_config(*checkpoint);
    src.label = src.cfg.moe.method;
  }
  const CheckpointState state = read_checkpoint_state(*checkpoint);
  const int64_t step = state.step;
  const std::string& ckpt_key = state.run_key;
  if (!src.run_key.empty() && !ckpt_key.empty() && ckpt_key != src.run_key) {
    throw std::runtime_error(fmt::format("checkpoint {} belongs to run {}, not {}",
                                         ckpt_dir.string(), ckpt_key, src.run_key));
  }
  if (src.run_key.empty()) {
    src.run_key = ckpt_key;
    if (db_given) {
      store = report::open_results(args.db);
      if (!store->find_run(src.run_key)) {
        throw std::runtime_error(fmt::format(
            "run {} (from {}/state.json) is not in {}: rows can only be stored for a stored run",
            src.run_key, ckpt_dir.string(), args.db));
      }
      src.write = true;
    }
  }

  RunConfig cfg = src.cfg;
  for (const auto& s : args.sets) apply_override(cfg, s);
  validate(cfg);
  // Rows at another θ than the trained one carry it; everything else is the run's own.
  const std::optional<double> theta = threshold_of(cfg);
  const std::optional<double> row_theta = theta != threshold_of(src.cfg) ? theta : std::nullopt;
  const std::vector<std::string> tasks = args.no_tasks        ? std::vector<std::string>{}
                                         : args.tasks.empty() ? cfg.eval.tasks
                                                              : args.tasks;
  eval::check_task_names(tasks);
  if (!args.theta_sweep.empty() && !theta) {
    throw std::runtime_error(
        "--theta-sweep needs a method with a threshold (routing_free); this "
        "run's is " +
        cfg.moe.method);
  }
  const size_t max_items =
      static_cast<size_t>(args.max_items >= 0 ? args.max_items : cfg.eval.max_examples);

  configure_threads(global.threads > 0 ? global.threads : cfg.train.threads);
  if (cfg.train.dtype == "bf16" && run_device(cfg).is_cpu()) {
    throw std::runtime_error(
        "the run was trained in bf16, which needs a CUDA device; --set train.dtype=fp32 "
        "evaluates it in fp32 on the CPU");
  }
  // Model and validation split exactly as the trainer built them, then the checkpoint's weights.
  const fs::path data_dir = global.data();
  RunContext ctx = build_run_context(cfg, data_dir, Splits::kValidation);
  load_checkpoint(*checkpoint, *ctx.model, ctx.device);
  ctx.model->eval();
  auto& model = ctx.model;
  const auto& tok = *ctx.tokenizer;
  const torch::Device device = ctx.device;
  const int micro = ctx.micro_batch;
  const data::BatchSampler& val_sampler = *ctx.val_sampler;

  fmt::print("run {} ({}), checkpoint step {}{}\n", src.run_key, src.label, step,
             row_theta ? fmt::format(", evaluated at θ = {:g}", *row_theta) : "");
  models::BalanceStats stats;
  const eval::ValResult val =
      eval::validation_loss(*model, val_sampler, micro, cfg.eval.val_batches, device, &stats);
  double density = eval::kNaN;
  fmt::print("val loss {:.4f}  ppl {:.2f}  ({} sequences, {} tokens)\n", val.loss, val.ppl,
             val.sequences, val.tokens);
  if (stats.num_layers() > 0) {
    const auto b = stats.mean_summary();
    density = b.at("density");
    fmt::print(
        "balance (mean over layers): density {:.3f}  CV {:.3f}  MaxVio {:.3f}  entropy "
        "{:.3f}  dead {:.2f}  zero-expert tokens {:.3f}\n",
        density, b.at("cv"), b.at("maxvio"), b.at("entropy"), b.at("dead"), b.at("frac_zero"));
  }
  std::vector<EvalRow> rows = eval::val_rows(val, step, row_theta, density);

  if (!tasks.empty()) {
    const auto built = eval::load_eval_tasks(data_dir, tasks, max_items);
    const auto scorer = eval::model_scorer(*model, device);
    const auto encode = [&tok](const std::string& text) { return tok.encode(text); };
    std::vector<eval::TaskScore> scores;
    for (const auto& task : built) {
      scores.push_back(eval::score_task(task, encode, scorer, cfg.model.seq_len, tok.eot_id()));
      const auto r = eval::task_rows(scores.back(), step, row_theta);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    fmt::print("\n{}", eval::format_scores(scores));
  }

  if (!args.theta_sweep.empty()) {
    const auto points = eval::theta_sweep(*model, val_sampler, micro, cfg.eval.val_batches, device,
                                          args.theta_sweep, *theta);
    fmt::print("\n{:>8} {:>9} {:>9} {:>8}\n", "θ", "val loss", "ppl", "density");
    for (const auto& p : points) {
      fmt::print("{:>8g} {:>9.4f} {:>9.2f} {:>8.3f}\n", p.theta, p.val.loss, p.val.ppl, p.density);
      const auto r = eval::val_rows(p.val, step, p.theta, p.density);
      rows.insert(rows.end(), r.begin(), r.end());
    }
  }

  if (src.write) {
    store->write([&] { store->append_evals(src.run_key, rows); });
    fmt::print("\nwrote {} eval rows for run {} at step {} to {}\n", rows.size(), src.run_key, step,
               args.db);
  } else {
    fmt::print("\nnot stored: run {} is not in a database (give --db DB to store the rows)\n",
               src.run_key.empty() ? "?" : src.run_key);
  }
}

}  // namespace

void add_eval_command(CLI::App& app, GlobalOptions& global) {
  static EvalArgs args;
  auto* cmd = app.add_subcommand(
      "eval",
      "evaluate a run's checkpoint: validation perplexity and balance, the zero-shot tasks "
      "(accuracy, length-normalised accuracy, 95% interval, chance) and optionally a "
      "Routing-Free θ sweep; rows go to the store at the checkpoint's step");
  cmd->add_option("--run", args.run_key, "run key of a stored run (see moebench runs)");
  cmd->add_option("--checkpoint", args.checkpoint,
                  "a run's checkpoint folder (or one of its step-N folders); default "
                  "<checkpoints>/<run key> with --run");
  auto* db_opt = cmd->add_option("--db", args.db, "results database")->capture_default_str();
  cmd->add_option("--checkpoints", args.checkpoints, "checkpoint root used with --run")
      ->capture_default_str();
  cmd->add_option("--tasks", args.tasks,
                  "comma-separated zero-shot tasks (imdb, cloze, next_sentence, wordnet); "
                  "default the run's eval.tasks")
      ->delimiter(',');
  cmd->add_flag("--no-tasks", args.no_tasks, "only perplexity, balance and the θ sweep");
  cmd->add_option("--max-items", args.max_items,
                  "items per task (0 = all); default the run's eval.max_examples")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--set", args.sets,
                  "override a config key for this evaluation, e.g. --set moe.theta=0.8 "
                  "(rows then carry that θ) or --set eval.val_batches=0 (repeatable)");
  cmd->add_option("--theta-sweep", args.theta_sweep,
                  "comma-separated θ values for a Routing-Free run, e.g. 0.5,0.7,1.0")
      ->delimiter(',');
  cmd->callback([&global, db_opt] { run_eval(args, db_opt->count() > 0, global); });
}

}  // namespace moebench::cli
