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
#include <vector>

#include "models/moe.h"
#include "suite/cli.h"
#include "suite/safetensors.h"

namespace moebench::cli {
namespace {

// One weight of a method: its name in IN (grad_<name> in OUT), its shape in dimension symbols
// (N tokens, H hidden, E experts, I intermediate, r low-rank size) and the name under which the
// layer module registered the parameter it is copied into (whose .grad() becomes grad_<name>).
struct WeightSpec {
  std::string name;
  std::vector<std::string> dims;
  std::string doc;
  std::string param;  // e.g. "policy.router", "w_up"
};

struct LayerMethod {
  std::string summary;
  std::vector<WeightSpec> weights;
  bool routed = true;  // false: dense, one SwiGLU FFN (no policy, no scores)
};

// A weight the routing policy owns, found by the name it registered ("A", "gamma", "bias",
// "router"): the IN tensor names are those names, so no method needs its own accessor.
WeightSpec policy_weight(const std::string& name, std::vector<std::string> dims,
                         const std::string& doc) {
  return {name, std::move(dims), doc, "policy." + name};
}

// The shared expert weights (MoeLayerImpl's w_gate, w_up, w_down): the SiLU-branch gate
// (full-rank G_e [I, H] fed x, or low-rank B_e [I, r] fed z = A_e x), the up projection U_e and
// the down projection D_e.
std::vector<WeightSpec> expert_weights(bool low_rank) {
  return {
      low_rank
          ? WeightSpec{"B", {"E", "I", "r"}, "low-rank gate (SiLU branch, fed z = A_e x)", "w_gate"}
          : WeightSpec{"G", {"E", "I", "H"}, "gate projection (SiLU branch)", "w_gate"},
      {"U", {"E", "I", "H"}, "up projection", "w_up"},
      {"D", {"E", "H", "I"}, "down projection", "w_down"}};
}

LayerMethod method(const std::string& summary, std::vector<WeightSpec> policy, bool low_rank) {
  for (auto& w : expert_weights(low_rank)) policy.push_back(std::move(w));
  return {summary, std::move(policy)};
}

// The parameter a WeightSpec names, in the layer module (MoeLayer or SwiGlu).
torch::Tensor layer_param(torch::nn::Module& layer, const WeightSpec& w) {
  const auto params = layer.named_parameters(/*recurse=*/true);
  if (!params.contains(w.param)) {
    throw std::logic_error("moebench layer: the layer has no parameter '" + w.param + "' for '" +
                           w.name + "'");
  }
  return params[w.param];
}

// method -> its weights. A method added in baselines/ adds one entry here: its policy's
// parameters (by registered name) and whether its experts use the low-rank gate. The sizes E, I
// and r found in the shapes become MoeOptions::experts, intermediate and rank.
const std::map<std::string, LayerMethod>& layer_methods() {
  const auto router = [] { return policy_weight("router", {"E", "H"}, "router W_r (no bias)"); };
  static const std::map<std::string, LayerMethod> methods = {
      {"routing_free",
       method("Routing-Free MoE (METHODS.md §1): z_e = A_e x, s_e = gamma_e*||z_e|| - bias_e, the\n"
              "pair (token, e) is active iff s_e >= theta, y = sum over active e of\n"
              "s_e * D_e (SiLU(B_e z_e) * U_e x)",
              {policy_weight("A", {"E", "r", "H"}, "low-rank projection (score and gate input)"),
               policy_weight("gamma", {"E"}, "score scale"),
               policy_weight("bias", {"E"}, "score offset (subtracted)")},
              /*low_rank=*/true)},
      {"aoe",
       method("Autonomy-of-Experts (METHODS.md §5): z_e = A_e x, s_e = ||z_e||, the top-K norms\n"
              "(K = moe.top_k, default E/4) win with weights softmax over those K norms,\n"
              "y = sum over chosen e of w_e * D_e (SiLU(B_e z_e) * U_e x); scores = softmax over\n"
              "all E norms",
              {policy_weight("A", {"E", "r", "H"},
                             "low-rank projection (norm score and gate "
                             "input)")},
              /*low_rank=*/true)},
      {"topk",
       method("Top-k MoE (METHODS.md §2, Mixtral style): p = softmax(router x), the top-K\n"
              "experts (K = moe.top_k, default E/4) with weights p renormalised over them,\n"
              "y = sum over chosen e of w_e * D_e (SiLU(G_e x) * U_e x); scores = p",
              {router()}, /*low_rank=*/false)},
      {"self_routing",
       method("Self-Routing (METHODS.md §6, our reading of the abstract): logits = E fixed\n"
              "channels of x (moe.self_routing_subspace, default the last E), softmax, top-K\n"
              "renormalised to sum 1, y = sum over chosen e of w_e * D_e (SiLU(G_e x) * U_e x);\n"
              "no router weights; scores = softmax over all E logits",
              {}, /*low_rank=*/false)},
      {"switch",
       method("Switch Transformer (METHODS.md §3): p = softmax(router x), each token to argmax p\n"
              "with weight p_argmax (not renormalised); expert capacity ceil(N/E * CF), CF =\n"
              "moe.capacity_factor_train (the layer runs in training mode), overflow tokens\n"
              "dropped first-come by position (y = 0 for them); y = w * D_e (SiLU(G_e x) * U_e "
              "x);\nscores = p at the kept pairs",
              {router()}, /*low_rank=*/false)},
      {"dense",
       {"Dense SwiGLU FFN (METHODS.md §7): y = D (SiLU(G x) * U x), one FFN for every token, no\n"
        "routing; I is the FFN width (in training moe.dense_width: iso_active = k*I_expert,\n"
        "iso_param = E*I_expert); OUT has no scores",
        {{"G", {"I", "H"}, "gate projection (SiLU branch)", "w_gate"},
         {"U", {"I", "H"}, "up projection", "w_up"},
         {"D", {"H", "I"}, "down projection", "w_down"}},
        /*routed=*/false}},
      {"remoe",
       method("ReMoE (METHODS.md §4): R = ReLU(router x), y = sum over e with R_e > 0 of\n"
              "R_e * D_e (SiLU(G_e x) * U_e x) (a token may have no expert: y = 0); scores = R",
              {router()}, /*low_rank=*/false)},
  };
  return methods;
}

// The --set keys: MoeOptions fields that the shapes do not fix.
struct SetKey {
  std::string doc;
  std::function<void(models::MoeOptions&, const std::string&)> apply;
};

double parse_double(const std::string& key, const std::string& value) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (value.empty() || used != value.size() || !std::isfinite(v)) {
    throw std::invalid_argument(fmt::format("--set {}={}: not a finite number", key, value));
  }
  return v;
}

const std::map<std::string, SetKey>& set_keys() {
  static const std::map<std::string, SetKey> keys = {
      {"moe.theta",
       {"activity threshold theta (default 1.0, the paper's)",
        [](models::MoeOptions& o, const std::string& v) {
          o.theta = parse_double("moe.theta", v);
        }}},
      {"moe.norm",
       {"score norm: l2 (default, the paper's), l1 or linf",
        [](models::MoeOptions& o, const std::string& v) {
          if (v != "l2" && v != "l1" && v != "linf") {
            throw std::invalid_argument("--set moe.norm=" + v + ": must be l2, l1 or linf");
          }
          o.norm = v;
        }}},
      {"moe.top_k",
       {"experts per token for aoe and self_routing (default E/4, at least 1)",
        [](models::MoeOptions& o, const std::string& v) {
          const double k = parse_double("moe.top_k", v);
          if (k < 1 || k != static_cast<double>(static_cast<int64_t>(k))) {
            throw std::invalid_argument("--set moe.top_k=" + v + ": must be a whole number >= 1");
          }
          o.top_k = static_cast<int64_t>(k);
        }}},
      {"moe.self_routing_subspace",
       {"self_routing logit channels: last (default), first or strided",
        [](models::MoeOptions& o, const std::string& v) {
          if (v != "last" && v != "first" && v != "strided") {
            throw std::invalid_argument("--set moe.self_routing_subspace=" + v +
                                        ": must be last, first or strided");
          }
          o.self_routing_subspace = v;
        }}},
      {"moe.capacity_factor_train",
       {"switch capacity factor CF (default 1.25; the layer runs in training mode)",
        [](models::MoeOptions& o, const std::string& v) {
          const double cf = parse_double("moe.capacity_factor_train", v);
          if (cf <= 0) {
            throw std::invalid_argument("--set moe.capacity_factor_train=" + v + ": must be > 0");
          }
          o.capacity_factor_train = cf;
        }}},
      {"kernels.backend",
       {"expert kernels: auto (default), reference, cpu, cuda",
        [](models::MoeOptions& o, const std::string& v) { o.backend = v; }}},
  };
  return keys;
}

void apply_set(models::MoeOptions& opts, const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos) {
    throw std::invalid_argument(fmt::format("--set expects key=value, got '{}'", kv));
  }
  const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
  const auto& keys = set_keys();
  if (const auto it = keys.find(key); it != keys.end()) {
    it->second.apply(opts, value);
    return;
  }
  if (key == "moe.experts" || key == "moe.intermediate" || key == "moe.rank") {
    throw std::invalid_argument(
        fmt::format("--set {}: moebench layer takes the sizes from the tensor shapes", key));
  }
  std::string known;
  for (const auto& [k, _] : keys) known += (known.empty() ? "" : ", ") + k;
  throw std::invalid_argument(
      fmt::format("--set {}: unknown key for moebench layer (settable: {})", key, known));
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
                      models::MoeOptions opts) {
  const LayerMethod& m = layer_methods().at(method);
  std::vector<std::string> names = {"x", "grad_y"};
  for (const auto& w : m.weights) names.push_back(w.name);
  for (const auto& [name, _] : in.tensors) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      fmt::print(stderr, "moebench layer: warning: {}: tensor '{}' is not used by {}\n", file, name,
                 method);
    }
  }
  Dims d;
  const auto& x_in = checked_input(in, file, "x", {"N", "H"}, names, d);
  const auto& gy_in = checked_input(in, file, "grad_y", {"N", "H"}, names, d);
  for (const auto& w : m.weights) checked_input(in, file, w.name, w.dims, names, d);

  opts.method = method;
  if (d.size.count("E")) opts.experts = d.size["E"];
  if (d.size.count("I")) opts.intermediate = d.size["I"];
  if (d.size.count("r")) opts.rank = d.size["r"];
  const int64_t H = d.size.at("H");

  // The random init is overwritten below; the seed only keeps the run free of chance.
  torch::manual_seed(0);
  std::shared_ptr<torch::nn::Module> layer;
  std::function<torch::Tensor(const torch::Tensor&, std::vector<models::PolicyOutput>*)> forward;
  if (m.routed) {
    models::MoeLayer moe(H, opts, models::make_policy(H, opts, 0.02), 0.02);
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
    for (const auto& w : m.weights) {
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
  if (m.routed) {
    const auto& route = outs.at(0);
    out.tensors["scores"] = from_torch(
        route.scores_NE.detach()
            .to(torch::kFloat)
            .masked_fill(route.active_NE.logical_not(), -std::numeric_limits<float>::infinity()));
    active_pairs = route.active_NE.sum().item<int64_t>();
  }
  out.tensors["grad_x"] = from_torch(grad_or_zero(x));
  for (const auto& w : m.weights)
    out.tensors["grad_" + w.name] = from_torch(grad_or_zero(layer_param(*layer, w)));
  std::string sizes;
  for (const auto& [k, v] : d.size) sizes += fmt::format("{}{}={}", sizes.empty() ? "" : " ", k, v);
  out.metadata = {{"method", method},
                  {"moe.theta", fmt::format("{}", opts.theta)},
                  {"moe.norm", opts.norm},
                  {"sizes", sizes},
                  {"active_pairs", std::to_string(active_pairs)},
                  {"loss", "sum(y * grad_y); no balancing loss"},
                  {"moebench_commit", MOEBENCH_COMMIT}};
  return out;
}

std::string help_footer() {
  std::string s =
      "Tensors (all float32; sizes come from the shapes, which must agree; N tokens, H hidden,\n"
      "E experts, I intermediate, r low-rank size):\n"
      "  IN   x [N, H]            layer input (after the pre-FFN RMSNorm)\n"
      "       grad_y [N, H]       upstream gradient: the backward is of sum(y * grad_y)\n";
  for (const auto& [name, m] : layer_methods()) {
    s += fmt::format("  --method {}:\n", name);
    // The summary's lines indented under the method name.
    for (size_t b = 0, e; b < m.summary.size(); b = e + 1) {
      e = std::min(m.summary.find('\n', b), m.summary.size());
      s += "       " + m.summary.substr(b, e - b) + "\n";
    }
    for (const auto& w : m.weights) {
      s += fmt::format("       {:<19} {}\n", w.name + " [" + join(w.dims) + "]", w.doc);
    }
  }
  s += "  OUT  y [N, H], scores [N, E] (gate score, -inf where the pair is inactive; not for\n"
       "       dense),\n"
       "       grad_x [N, H], grad_<name> for every weight above (same shape as the weight)\n"
       "Only the layer: the balancing loss is not included. --set keys:\n";
  for (const auto& [k, v] : set_keys()) s += fmt::format("  {:<17} {}\n", k, v.doc);
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
  std::vector<std::string> methods;
  for (const auto& [name, _] : layer_methods()) methods.push_back(name);
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
    models::MoeOptions opts;  // the paper's defaults: theta 1.0, l2 norm
    for (const auto& kv : args.sets) apply_set(opts, kv);
    const SafeTensors in = read_safetensors(args.in);
    const SafeTensors out = run_layer(in, args.in, args.method, opts);
    write_safetensors(args.out, out);
    if (!layer_methods().at(args.method).routed) {
      fmt::print("layer {} ({}): one SwiGLU FFN; wrote {}\n", args.method, out.metadata.at("sizes"),
                 args.out);
      return;
    }
    fmt::print("layer {} ({}, theta {}, norm {}): {} active (token, expert) pairs; wrote {}\n",
               args.method, out.metadata.at("sizes"), opts.theta, opts.norm,
               out.metadata.at("active_pairs"), args.out);
  });
}

}  // namespace moebench::cli
