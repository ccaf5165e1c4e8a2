// `moebench flops`: parameter counts of the real models and active FLOPs per token per layer for
// every method at S, M, L (METHODS.md §1 "Iso-compute", §2-§7, "Paper configurations").
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/vocab.h"
#include "models/flops.h"
#include "models/transformer.h"
#include "suite/cli.h"
#include "suite/config.h"
#include "suite/evaluator.h"

namespace moebench::cli {
namespace {

constexpr int64_t kGpt2Vocab = 50257;  // METHODS.md "Paper configurations"

struct FlopsArgs {
  std::vector<std::string> sizes = {"S", "M", "L"};
  std::vector<std::string> methods = {"routing_free", "topk",         "switch", "remoe",
                                      "aoe",          "self_routing", "dense"};
  std::string format = "md";
  double density = 0.25;
};

// One row of the report: a real model's parameters and its per-token, per-layer MACs.
struct Row {
  std::string size, method;
  int64_t total = 0, non_embedding = 0;
  int64_t dead_gate = 0;  // RF: the official code's unused full gates (L·E·I·H), else 0
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

// The gating work per token: the router W_r x (E·H), or for RF and AoE all E low-rank
// projections A_e x (E·r·H), which give the scores and also feed the experts' gate branch.
// Self-Routing reads its logits from x (free); dense has no routing. The rest of
// moe_active_macs_per_token is the experts' SwiGLU work.
double router_macs(const models::MoeOptions& o, int64_t hidden) {
  const double H = static_cast<double>(hidden), E = static_cast<double>(o.experts);
  if (o.method == "topk" || o.method == "switch" || o.method == "remoe") return E * H;
  if (o.method == "routing_free" || o.method == "aoe") {
    return E * static_cast<double>(o.effective_rank()) * H;
  }
  return 0;
}

// Attention per token: q, k, v, o projections, plus QK^T and AV over the causal mean of
// (T + 1) / 2 keys at T = seq_len.
double attention_macs(const models::ModelOptions& m) {
  const double H = static_cast<double>(m.hidden), q = static_cast<double>(m.q_heads * m.head_dim),
               kv = static_cast<double>(m.kv_heads * m.head_dim),
               T = static_cast<double>(m.max_seq_len);
  return 2 * H * q + 2 * H * kv + 2 * q * (T + 1) / 2;
}

Row measure(const std::string& size, const std::string& method, const std::string& label,
            const std::vector<std::string>& extra, double density) {
  std::vector<std::string> sets = {"moe.method=" + method};
  sets.insert(sets.end(), extra.begin(), extra.end());
  const RunConfig cfg = load_config(size, sets);
  const models::ModelOptions mo = model_options(cfg, vocab_size_of(cfg));
  Row r;
  r.size = size;
  r.method = label;
  r.attention = attention_macs(mo);
  {
    // The real model, fp32 on the CPU (L is ~0.8 G parameters, ~3.2 GB), freed at the end of
    // this scope. The random init is irrelevant; the seed only keeps the run free of chance.
    torch::manual_seed(0);
    models::Transformer model(mo);
    const auto c = models::count_parameters(*model);
    r.total = c.total;
    r.non_embedding = c.non_embedding;
    if (method == "dense") {
      // Every dense weight does one MAC per token: the FFN's own parameter count.
      const auto& d = model->blocks.at(0)->dense;
      r.experts = static_cast<double>(d->gate_IH.numel() + d->up_IH.numel() + d->down_HI.numel());
    }
  }
  if (method != "dense") {
    r.router = router_macs(mo.moe, mo.hidden);
    r.experts = models::moe_active_macs_per_token(mo.moe, mo.hidden, density) - r.router;
  }
  if (method == "routing_free") {
    r.dead_gate = mo.layers * mo.moe.experts * mo.moe.intermediate * mo.hidden;
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

// Words re-flowed to lines of at most `width` characters (text format).
std::string wrapped(const std::string& text, size_t width = 100) {
  std::istringstream in(text);
  std::string out, line;
  for (std::string word; in >> word;) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line + "\n";
}

std::string percent(double ratio) { return fmt::format("{:+.2f}%", 100 * (ratio - 1)); }

std::string report(const std::vector<Row>& rows, const std::string& format, double density) {
  const std::vector<std::string> head = {"size",           "method",       "params",
                                         "non-emb params", "router FLOPs", "expert FLOPs",
                                         "MoE FFN FLOPs",  "layer FLOPs",  "FFN vs topk"};
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> notes;
  for (const auto& r : rows) {
    const Row* topk = nullptr;
    for (const auto& t : rows) {
      if (t.size == r.size && t.method == "topk") topk = &t;
    }
    cells.push_back({r.size, r.method, grouped(static_cast<double>(r.total)),
                     grouped(static_cast<double>(r.non_embedding)), grouped(2 * r.router),
                     grouped(2 * r.experts), grouped(2 * r.ffn()), grouped(2 * r.layer()),
                     topk ? percent(r.ffn() / topk->ffn()) : "-"});
    if (r.method == "routing_free" && topk) {
      notes.push_back(fmt::format(
          "{}: Routing-Free / top-k at rho = {} = {:.4f} for the MoE FFN ({}), {:.4f} for the "
          "whole layer ({}); with the official code's unused full gates RF has {} "
          "non-embedding parameters (+{})",
          r.size, density, r.ffn() / topk->ffn(), percent(r.ffn() / topk->ffn()),
          r.layer() / topk->layer(), percent(r.layer() / topk->layer()),
          grouped(static_cast<double>(r.non_embedding + r.dead_gate)),
          grouped(static_cast<double>(r.dead_gate))));
    }
  }
  std::ostringstream os;
  const std::string legend = fmt::format(
      "FLOPs = 2 x multiply-accumulates per token in one layer. router: W_r x (E*H), or all E "
      "low-rank projections A_e x (E*r*H) for RF and AoE (they also feed the experts' gate); "
      "0 for Self-Routing (a slice of x) and dense. expert: the SwiGLU work of the active "
      "(token, expert) pairs, k = E/4 for top-k, AoE, Self-Routing, 1 for Switch (capacity "
      "drops not counted), density rho = {} for RF and ReMoE. layer = attention (q, k, v, o "
      "projections + scores and values over the causal mean (T+1)/2 keys at T = seq_len) + "
      "router + experts. params: the real model built from the named config (count_parameters; "
      "non-emb excludes the token embedding and the untied head).",
      density);
  if (format == "md") {
    os << "| " << head[0];
    for (size_t i = 1; i < head.size(); ++i) os << " | " << head[i];
    os << " |\n|---|---";
    for (size_t i = 2; i < head.size(); ++i) os << "|---:";
    os << "|\n";
    for (const auto& row : cells) {
      os << "| " << row[0];
      for (size_t i = 1; i < row.size(); ++i) os << " | " << row[i];
      os << " |\n";
    }
    os << "\n" << legend << "\n\n";
    for (const auto& n : notes) os << "- " << n << "\n";
  } else {
    std::vector<size_t> width(head.size());
    for (size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
    for (const auto& row : cells) {
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    auto line = [&](const std::vector<std::string>& row) {
      for (size_t i = 0; i < row.size(); ++i) {
        // Text columns left-aligned, numbers right-aligned.
        os << (i ? "  " : "")
           << (i < 2 ? fmt::format("{:<{}}", row[i], width[i])
                     : fmt::format("{:>{}}", row[i], width[i]));
      }
      os << "\n";
    };
    line(head);
    for (const auto& row : cells) line(row);
    os << "\n" << wrapped(legend);
    for (const auto& n : notes) os << wrapped(n);
  }
  return os.str();
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
      ->capture_default_str();
  cmd->add_option("--format", args.format, "md (a Markdown table) or text")
      ->check(CLI::IsMember({"md", "text"}))
      ->capture_default_str();
  cmd->add_option("--density", args.density,
                  "active fraction of experts for Routing-Free and ReMoE (their rho)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->callback([&global] {
    if (global.threads > 0) torch::set_num_threads(global.threads);
    std::vector<Row> rows;
    for (const auto& size : args.sizes) {
      for (const auto& m : args.methods) {
        if (m == "dense") {
          for (const char* w : {"iso_active", "iso_param"}) {
            rows.push_back(measure(size, m, fmt::format("dense ({})", w),
                                   {fmt::format("moe.dense_width={}", w)}, args.density));
          }
        } else {
          rows.push_back(measure(size, m, m, {}, args.density));
        }
      }
    }
    fmt::print("{}", report(rows, args.format, args.density));
  });
}

}  // namespace moebench::cli
