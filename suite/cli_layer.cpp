// `moebench layer`: one MoE layer forward and backward on tensors read from a safetensors file,
// so any other implementation can be checked against ours (METHODS.md §1; suite/safetensors.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "baselines/registry.h"
#include "models/method.h"
#include "models/moe.h"
#include "suite/cli.h"
#include "suite/config.h"
#include "suite/safetensors.h"

namespace moebench::cli {
namespace {

using models::LayerWeight;

// The parameter a LayerWeight names, in the layer module (MoeLayer or SwiGlu).
torch::Tensor layer_param(torch::nn::Module& layer, const LayerWeight& w) {
  const auto params = layer.named_parameters(/*recurse=*/true);
  if (!params.contains(w.param)) {
    throw std::logic_error("moebench layer: the layer has no parameter '" + w.param + "' for '" +
                           w.name + "'");
  }
  return params[w.param];
}

// The --set keys: the config's own parsing and validation (as `moebench train`), limited to the
// keys one layer reads: the moe section, but not the sizes the tensor shapes fix, and the
// kernels backend.
void apply_set(RunConfig& cfg, const std::string& kv) {
  const std::string key = kv.substr(0, kv.find('='));
  if (key == "moe.experts" || key == "moe.intermediate" || key == "moe.rank") {
    throw std::invalid_argument(
        fmt::format("--set {}: moebench layer takes the sizes from the tensor shapes", key));
  }
  if (key.rfind("moe.", 0) != 0 && key != "kernels.backend") {
    throw std::invalid_argument(fmt::format(
        "--set {}: unknown key for moebench layer (settable: moe.* except the sizes, and "
        "kernels.backend)",
        key));
  }
  apply_override(cfg, kv);
}

// Sizes found so far and the tensor each came from (for the error messages).
struct Dims {
  std::map<std::string, int64_t> size;
  std::map<std::string, std::string> from;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Fetches a tensor, checks it is F32 and that its shape matches `dims` (binding new symbols).
const StTensor& checked_input(const SafeTensors& in, const std::string& file,
                              const std::string& name, const std::vector<std::string>& dims,
                              const std::vector<std::string>& all_names, Dims& d) {
  const auto it = in.tensors.find(name);
  if (it == in.tensors.end()) {
    throw std::invalid_argument(
        fmt::format("{}: no tensor '{}' (this method needs: {})", file, name, join(all_names)));
  }
  const StTensor& t = it->second;
  if (t.dtype != "F32") {
    throw std::invalid_argument(
        fmt::format("{}: tensor '{}' has dtype {}; moebench layer reads float32 (F32) only", file,
                    name, t.dtype));
  }
  const bool same_rank = t.shape.size() == dims.size();
  bool ok = same_rank;
  std::vector<std::string> expected, sources;
  for (size_t i = 0; i < dims.size(); ++i) {
    const auto known = d.size.find(dims[i]);
    if (known != d.size.end()) {
      expected.push_back(std::to_string(known->second));
      sources.push_back(fmt::format("{} = {} from '{}'", dims[i], known->second, d.from[dims[i]]));
      if (same_rank && t.shape[i] != known->second) ok = false;
    } else {
      // Bound by this tensor: the expected value is whatever it holds (if it has the dim).
      expected.push_back(same_rank ? std::to_string(t.shape[i]) : dims[i]);
    }
  }
  if (!ok) {
    throw std::invalid_argument(fmt::format(
        "{}: tensor '{}' has shape {}, expected [{}] = [{}]{}", file, name, shape_string(t.shape),
        join(dims), join(expected), sources.empty() ? "" : " (" + join(sources) + ")"));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    if (t.shape[i] < 1) {
      throw std::invalid_argument(fmt::format("{}: tensor '{}' has shape {}: {} must be >= 1", file,
                                              name, shape_string(t.shape), dims[i]));
    }
    if (!d.size.count(dims[i])) {
      d.size[dims[i]] = t.shape[i];
      d.from[dims[i]] = name;
    }
  }
  return t;
}

torch::Tensor to_torch(const StTensor& t) {
  auto out = torch::empty(t.shape, torch::kFloat);
  std::memcpy(out.data_ptr<float>(), t.bytes.data(), t.bytes.size());
  return out;
}

StTensor from_torch(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return StTensor{"F32", c.sizes().vec(),
                  std::string(reinterpret_cast<const char*>(c.data_ptr<float>()),
                              static_cast<size_t>(c.numel()) * sizeof(float))};
}

// The command's core: IN tensors -> OUT tensors (see the --help footer for the names).
SafeTensors run_layer(const SafeTensors& in, const std::string& file, const std::string& method,
                      RunConfig cfg) {
  const models::MethodSpec& m = baselines::find_method(method);
  std::vector<std::string> names = {"x", "grad_y"};
  for (const auto& w : m.layer_weights) names.push_back(w.name);
  for (const auto& [name, _] : in.tensors) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      fmt::print(stderr, "moebench layer: warning: {}: tensor '{}' is not used by {}\n", file, name,
                 method);
    }
  }
  Dims d;
  const auto& x_in = checked_input(in, file, "x", {"N", "H"}, names, d);
  const auto& gy_in = checked_input(in, file, "grad_y", {"N", "H"}, names, d);
  for (const auto& w : m.layer_weights) checked_input(in, file, w.name, w.dims, names, d);
  // NaN or Inf in any input would silently poison every output: refuse it, naming where.
  for (const auto& name : names) {
    const StTensor& t = in.tensors.at(name);
    for (size_t i = 0; i < t.bytes.size() / sizeof(float); ++i) {
      float v;
      std::memcpy(&v, t.bytes.data() + i * sizeof(float), sizeof(float));
      if (!std::isfinite(v)) {
        throw std::invalid_argument(
            fmt::format("{}: tensor '{}' holds {} at flat index {}", file, name, v, i));
      }
    }
  }

  models::MoeOptions& opts = cfg.moe;
  opts.method = method;
  if (d.size.count("E")) opts.experts = d.size["E"];
  if (d.size.count("I")) opts.intermediate = d.size["I"];
  if (d.size.count("r")) opts.rank = d.size["r"];
  validate(cfg);  // the values together (moe.top_k <= the E of the shapes, ...)
  opts.backend = cfg.kernels.backend;
  const int64_t H = d.size.at("H");

  // The random init is overwritten below; the seed only keeps the run free of chance.
  torch::manual_seed(0);
  std::shared_ptr<torch::nn::Module> layer;
  std::function<torch::Tensor(const torch::Tensor&, std::vector<models::PolicyOutput>*)> forward;
  if (m.routed()) {
    models::MoeLayer moe(H, opts, m.make_policy(H, opts, 0.02), 0.02);
    layer = moe.ptr();
    forward = [moe](const torch::Tensor& x, std::vector<models::PolicyOutput>* outs) mutable {
      return moe->forward(x, outs);
    };
  } else {
    models::SwiGlu dense(H, d.size.at("I"), 0.02);
    layer = dense.ptr();
    forward = [dense](const torch::Tensor& x, std::vector<models::PolicyOutput>*) mutable {
      return dense->forward(x);
    };
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& w : m.layer_weights) {
      auto p = layer_param(*layer, w);
      const auto& t = in.tensors.at(w.name);
      if (p.sizes().vec() != t.shape) {
        throw std::logic_error(
            fmt::format("moebench layer: parameter for '{}' has shape {}, "
                        "the table says {}",
                        w.name, shape_string(p.sizes().vec()), shape_string(t.shape)));
      }
      p.copy_(to_torch(t));
    }
  }
  const auto x = to_torch(x_in).requires_grad_(true);
  const auto grad_y = to_torch(gy_in);
  std::vector<models::PolicyOutput> outs;
  const auto y = forward(x, &outs);
  // Only the layer: the balancing loss (METHODS.md §1) is not part of this backward. With no
  // active pair y does not depend on anything, and every gradient is zero.
  if (y.requires_grad()) (y * grad_y).sum().backward();

  auto grad_or_zero = [](const torch::Tensor& p) {
    return p.grad().defined() ? p.grad() : torch::zeros_like(p);
  };
  SafeTensors out;
  out.tensors["y"] = from_torch(y);
  // Dense: every token takes the one FFN, so N "pairs" and no scores.
  int64_t active_pairs = x.size(0);
  if (m.routed()) {
    const auto& route = outs.at(0);
    out.tensors["scores"] = from_torch(
        route.scores_NE.detach()
            .to(torch::kFloat)
            .masked_fill(route.active_NE.logical_not(), -std::numeric_limits<float>::infinity()));
    active_pairs = route.active_NE.sum().item<int64_t>();
  }
  out.tensors["grad_x"] = from_torch(grad_or_zero(x));
  for (const auto& w : m.layer_weights)
    out.tensors["grad_" + w.name] = from_torch(grad_or_zero(layer_param(*layer, w)));
  std::string sizes;
  for (const auto& [k, v] : d.size) sizes += fmt::format("{}{}={}", sizes.empty() ? "" : " ", k, v);
  out.metadata = {{"method", method},
                  {"sizes", sizes},
                  {"active_pairs", std::to_string(active_pairs)},
                  {"loss", "sum(y * grad_y); no balancing loss"},
                  {"moebench_commit", MOEBENCH_COMMIT}};
  // The method's own options as the layer used them.
  for (const auto& f : m.options) {
    out.metadata["moe." + f.name] =
        std::visit([](const auto& v) { return fmt::format("{}", v); }, opts.params.at(f.name));
  }
  return out;
}

std::string help_footer() {
  std::string s =
      "Tensors (all float32; sizes come from the shapes, which must agree; N tokens, H hidden,\n"
      "E experts, I intermediate, r low-rank size):\n"
      "  IN   x [N, H]            layer input (after the pre-FFN RMSNorm)\n"
      "       grad_y [N, H]       upstream gradient: the backward is of sum(y * grad_y)\n";
  for (const auto* method : baselines::all_methods()) {
    const models::MethodSpec& m = *method;
    s += fmt::format("  --method {}:\n", m.name);
    // The summary's lines indented under the method name.
    for (size_t b = 0, e; b < m.summary.size(); b = e + 1) {
      e = std::min(m.summary.find('\n', b), m.summary.size());
      s += "       " + m.summary.substr(b, e - b) + "\n";
    }
    for (const auto& w : m.layer_weights) {
      s += fmt::format("       {:<19} {}\n", w.name + " [" + join(w.dims) + "]", w.doc);
    }
    for (const auto& f : m.options) {
      s += fmt::format("       --set moe.{}  {}\n", f.name, f.help);
    }
  }
  s += "  OUT  y [N, H], scores [N, E] (gate score, -inf where the pair is inactive; not for\n"
       "       dense),\n"
       "       grad_x [N, H], grad_<name> for every weight above (same shape as the weight)\n"
       "Only the layer: the balancing loss is not included. --set takes the method's keys\n"
       "above, moe.top_k and moe.mask_padding, and kernels.backend (auto, reference, cpu, cuda),\n"
       "parsed and checked as by `moebench train`; defaults are the paper's.\n";
  return s;
}

struct LayerArgs {
  std::string method;
  std::string in, out;
  std::vector<std::string> sets;
};

}  // namespace

void add_layer_command(CLI::App& app, GlobalOptions& global) {
  static LayerArgs args;
  auto* cmd = app.add_subcommand(
      "layer",
      "run one MoE layer (or the dense FFN) forward and backward on the tensors of a "
      "safetensors file and write the output, the gate scores and every gradient to another (to "
      "check another "
      "implementation against this one)");
  const std::vector<std::string> methods = baselines::method_names();
  cmd->add_option("--method", args.method, "MoE method: " + join(methods))
      ->required()
      ->check(CLI::IsMember(methods));
  cmd->add_option("--in", args.in, "safetensors file with x, grad_y and the method's weights")
      ->required();
  cmd->add_option("--out", args.out, "safetensors file to write (replaced)")->required();
  cmd->add_option("--set", args.sets, "key=value option (repeatable), e.g. --set moe.theta=0.8");
  cmd->footer(help_footer());
  cmd->callback([&global] {
    if (global.threads > 0) torch::set_num_threads(global.threads);
    RunConfig cfg;  // the paper's defaults (theta 1.0, l2 norm, ...)
    for (const auto& kv : args.sets) apply_set(cfg, kv);
    const SafeTensors in = read_safetensors(args.in);
    const SafeTensors out = run_layer(in, args.in, args.method, cfg);
    write_safetensors(args.out, out);
    if (!baselines::find_method(args.method).routed()) {
      fmt::print("layer {} ({}): one SwiGLU FFN; wrote {}\n", args.method, out.metadata.at("sizes"),
                 args.out);
      return;
    }
    fmt::print("layer {} ({}): {} active (token, expert) pairs; wrote {}\n", args.method,
               out.metadata.at("sizes"), out.metadata.at("active_pairs"), args.out);
  });
}

}  // namespace moebench::cli
