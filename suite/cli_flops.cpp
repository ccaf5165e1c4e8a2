// `moebench flops`: parameter counts of the real models and active FLOPs per token per layer for
// every method at S, M, L (METHODS.md §1 "Iso-compute", §2-§7, "Paper configurations").
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "baselines/registry.h"
#include "datasets/vocab.h"
#include "models/method.h"
#include "models/transformer.h"
#include "suite/cli.h"
#include "suite/config.h"
#include "suite/report.h"
#include "suite/run_context.h"
#include "suite/table.h"

namespace moebench::cli {
namespace {

constexpr int64_t kGpt2Vocab = 50257;  // METHODS.md "Paper configurations"

struct FlopsArgs {
  std::vector<std::string> sizes = {"S", "M", "L"};
  std::vector<std::string> methods = baselines::method_names();
  std::string baseline = "topk";  // the method every FFN ratio is taken against
  std::string format = "md";
  double density = 0.25;
};

// One row of the report: a real model's parameters and its per-token, per-layer MACs.
struct Row {
  std::string size, method, label;
  int64_t total = 0, non_embedding = 0;
  int64_t dead_gate = 0;  // parameters the official code allocates and never uses (RF's gates)
  double router = 0, experts = 0, attention = 0;
  double ffn() const { return router + experts; }
  double layer() const { return attention + router + experts; }
};

// The vocabulary size without loading the tokenizer: gpt2 is 50,257 ids, a trained "bpe8k" says
// its size in its name, model.vocab_size overrides both.
int64_t vocab_size_of(const RunConfig& c) {
  if (c.model.vocab_size > 0) return c.model.vocab_size;
  if (c.model.vocab == "gpt2") return kGpt2Vocab;
  const int n = data::trained_vocab_size(c.model.vocab);
  if (n <= 0) {
    throw ConfigError(
        fmt::format("moebench flops: cannot tell the size of vocabulary '{}'; set model.vocab_size",
                    c.model.vocab));
  }
  return n;
}

// Attention per token: q, k, v, o projections, plus QK^T and AV over the causal mean of
// (T + 1) / 2 keys at T = seq_len.
double attention_macs(const models::ModelOptions& m) {
  const double H = static_cast<double>(m.hidden), q = static_cast<double>(m.q_heads * m.head_dim),
               kv = static_cast<double>(m.kv_heads * m.head_dim),
               T = static_cast<double>(m.max_seq_len);
  return 2 * H * q + 2 * H * kv + 2 * q * (T + 1) / 2;
}

Row measure(const std::string& size, const models::MethodSpec& method, const std::string& variant,
            double density) {
  std::vector<std::string> sets = {"moe.method=" + method.name};
  if (!variant.empty()) sets.push_back(variant);
  const RunConfig cfg = load_config(size, sets);
  const models::ModelOptions mo = model_options(cfg, vocab_size_of(cfg));
  Row r;
  r.size = size;
  r.method = method.name;
  // A variant row is labelled by its value: "dense (iso_param)".
  r.label = variant.empty()
                ? method.name
                : fmt::format("{} ({})", method.name, variant.substr(variant.find('=') + 1));
  r.attention = attention_macs(mo);
  {
    // The real model, fp32 on the CPU (L is ~0.8 G parameters, ~3.2 GB), freed at the end of
    // this scope. The random init is irrelevant; the seed only keeps the run free of chance.
    torch::manual_seed(0);
    models::Transformer model(mo);
    const auto c = models::count_parameters(*model);
    r.total = c.total;
    r.non_embedding = c.non_embedding;
  }
  const models::FfnMacs macs = method.macs(mo.moe, mo.hidden, density);
  r.router = macs.router;
  r.experts = macs.experts;
  if (method.unused_official_params) {
    r.dead_gate = mo.layers * method.unused_official_params(mo.moe, mo.hidden);
  }
  return r;
}

// 92444160 -> "92,444,160"; halves (ρ·E fractional) keep one decimal.
std::string grouped(double v) {
  const bool half = std::abs(v - std::round(v)) > 1e-9;
  std::string digits = fmt::format("{:.0f}", std::floor(std::abs(v)));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  if (half) out += fmt::format("{:.1f}", std::abs(v) - std::floor(std::abs(v))).substr(1);
  return (v < 0 ? "-" : "") + out;
}

std::string percent(double ratio) { return fmt::format("{:+.2f}%", 100 * (ratio - 1)); }

// The row of `baseline` at `size`, or nullptr.
const Row* baseline_row(const std::vector<Row>& rows, const std::string& size,
                        const std::string& baseline) {
  for (const auto& b : rows) {
    if (b.size == size && b.method == baseline) return &b;
  }
  return nullptr;
}

Table report(const std::vector<Row>& rows, double density, const std::string& baseline) {
  Table t;
  for (const char* name : {"size", "method"}) t.columns.push_back(simple_column(name));
  for (const std::string& name :
       std::vector<std::string>{"params", "non-emb params", "router FLOPs", "expert FLOPs",
                                "MoE FFN FLOPs", "layer FLOPs", "FFN vs " + baseline}) {
    t.columns.push_back(simple_column(name, /*numeric=*/true));
  }
  std::vector<std::string> caveats;
  for (const auto& r : rows) {
    const Row* base = baseline_row(rows, r.size, baseline);
    std::string label = report::method_label(r.method, caveats);
    label += r.label.substr(r.method.size());  // " (iso_param)" of a variant row
    t.rows.push_back(text_row({r.size, label, grouped(static_cast<double>(r.total)),
                               grouped(static_cast<double>(r.non_embedding)), grouped(2 * r.router),
                               grouped(2 * r.experts), grouped(2 * r.ffn()), grouped(2 * r.layer()),
                               base ? percent(r.ffn() / base->ffn()) : "-"}));
  }
  t.footnotes.push_back(fmt::format(
      "FLOPs = 2 x multiply-accumulates per token in one layer. router: W_r x (E*H), or all E "
      "low-rank projections A_e x (E*r*H) for RF and AoE (they also feed the experts' gate); "
      "0 for Self-Routing (a slice of x) and dense. expert: the SwiGLU work of the active "
      "(token, expert) pairs, k = E/4 for top-k, AoE, Self-Routing, 1 for Switch (capacity "
      "drops not counted), density rho = {} for RF and ReMoE. layer = attention (q, k, v, o "
      "projections + scores and values over the causal mean (T+1)/2 keys at T = seq_len) + "
      "router + experts. params: the real model built from the named config (count_parameters; "
      "non-emb excludes the token embedding and the untied head).",
      density));
  for (const auto& r : rows) {
    const Row* base = baseline_row(rows, r.size, baseline);
    if (r.dead_gate == 0 || !base) continue;
    const auto& spec = baselines::find_method(r.method);
    t.footnotes.push_back(fmt::format(
        "{}: {} / {} at rho = {} = {:.4f} for the MoE FFN ({}), {:.4f} for the whole layer ({}); "
        "with the official code's unused full gates {} has {} non-embedding parameters (+{})",
        r.size, spec.title, baselines::find_method(baseline).title, density, r.ffn() / base->ffn(),
        percent(r.ffn() / base->ffn()), r.layer() / base->layer(),
        percent(r.layer() / base->layer()), spec.title,
        grouped(static_cast<double>(r.non_embedding + r.dead_gate)),
        grouped(static_cast<double>(r.dead_gate))));
  }
  t.footnotes.insert(t.footnotes.end(), caveats.begin(), caveats.end());
  return t;
}

}  // namespace

void add_flops_command(CLI::App& app, GlobalOptions& global) {
  static FlopsArgs args;
  auto* cmd = app.add_subcommand(
      "flops",
      "parameter counts (total and non-embedding, from the real models) and active FLOPs per "
      "token per layer (router, experts, whole layer) for every method at the paper's sizes, "
      "with each method's ratio to top-k (Routing-Free at rho = 0.25 is the iso-compute check)");
  cmd->add_option("--sizes", args.sizes, "named configs or TOML files, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--methods", args.methods,
                  "methods, comma-separated; dense gives both widths (iso_active, iso_param)")
      ->delimiter(',')
      ->check(CLI::IsMember(baselines::method_names()))
      ->capture_default_str();
  cmd->add_option("--baseline", args.baseline, "the method the FFN ratios are taken against")
      ->check(CLI::IsMember(baselines::method_names()))
      ->capture_default_str();
  cmd->add_option("--format", args.format, "md (a Markdown table), term (aligned text) or csv")
      ->check(CLI::IsMember({"md", "term", "csv"}))
      ->capture_default_str();
  cmd->add_option("--density", args.density,
                  "active fraction of experts for Routing-Free and ReMoE (their rho)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->callback([&global] {
    if (global.threads > 0) torch::set_num_threads(global.threads);
    std::vector<Row> rows;
    for (const auto& size : args.sizes) {
      for (const auto& name : args.methods) {
        const models::MethodSpec& m = baselines::find_method(name);
        if (m.flops_variants.empty()) rows.push_back(measure(size, m, "", args.density));
        for (const auto& v : m.flops_variants) rows.push_back(measure(size, m, v, args.density));
      }
    }
    print_table(report(rows, args.density, args.baseline), parse_format(args.format));
  });
}

}  // namespace moebench::cli
