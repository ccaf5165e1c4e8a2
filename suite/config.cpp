// RunConfig: one field table drives the TOML, override and JSON readers, validation and hashing.
// Spec: shared/DESIGN.md "Configs and the store"; values from shared/spec/METHODS.md.
#include "suite/config.h"

// Header-only toml++: the executable then needs no libtomlplusplus.so at run time (the GPU
// machine has no apt, and every shared library must be carried there by hand).
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>

#include "datasets/hashing.h"

namespace moebench {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxBaseDepth = 8;  // `base` chains longer than this are taken to be a cycle

// --- allowed values -----------------------------------------------------------------------------

// What a field may hold: an interval for numbers (checked per element for lists) and, for
// strings, a set of names. The default allows anything finite.
struct Rule {
  double lo = -kInf;
  double hi = kInf;
  bool lo_open = false;
  bool hi_open = false;
  std::vector<std::string> choices;
};

Rule any() { return {}; }
Rule at_least(double lo) { return {lo, kInf, false, false, {}}; }
Rule positive() { return {0, kInf, true, false, {}}; }
Rule closed(double lo, double hi) { return {lo, hi, false, false, {}}; }
Rule lower_open(double lo, double hi) { return {lo, hi, true, false, {}}; }  // (lo, hi]
Rule upper_open(double lo, double hi) { return {lo, hi, false, true, {}}; }  // [lo, hi)
Rule one_of(std::vector<std::string> choices) {
  return {-kInf, kInf, false, false, std::move(choices)};
}

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"routing_free", "topk",         "switch", "remoe",
                                                 "aoe",          "self_routing", "dense"};
  return names;
}

// The one list of fields. `visit(section, name, field, rule)` is called for every field in
// declaration order; Cfg is RunConfig or const RunConfig. Adding a field here is all it takes
// for TOML, overrides, JSON, validation and the run key to know it.
template <class Cfg, class Visit>
void for_each_field(Cfg& c, Visit&& visit) {
  auto& m = c.model;
  visit("model", "layers", m.layers, at_least(1));
  visit("model", "hidden", m.hidden, at_least(1));
  visit("model", "q_heads", m.q_heads, at_least(1));
  visit("model", "kv_heads", m.kv_heads, at_least(1));
  visit("model", "head_dim", m.head_dim, at_least(0));
  visit("model", "vocab", m.vocab, any());
  visit("model", "vocab_size", m.vocab_size, at_least(0));
  visit("model", "seq_len", m.seq_len, at_least(1));
  visit("model", "rope_theta", m.rope_theta, positive());
  visit("model", "norm_eps", m.norm_eps, positive());
  visit("model", "attn_dropout", m.attn_dropout, upper_open(0, 1));
  visit("model", "init_std", m.init_std, positive());

  auto& e = c.moe;
  visit("moe", "method", e.method, one_of(method_names()));
  visit("moe", "experts", e.experts, at_least(1));
  visit("moe", "intermediate", e.intermediate, at_least(1));
  visit("moe", "rank", e.rank, at_least(0));
  visit("moe", "theta", e.theta, at_least(0));
  visit("moe", "norm", e.norm, one_of({"l2", "l1", "linf"}));
  visit("moe", "gamma_init", e.gamma_init, any());
  visit("moe", "bias_init", e.bias_init, any());
  visit("moe", "rho_target", e.rho_target, lower_open(0, 1));
  visit("moe", "eta", e.eta, at_least(0));
  visit("moe", "lambda0", e.lambda0, closed(0, 1));  // the controller caps lambda at 1
  visit("moe", "eb_weight", e.eb_weight, at_least(0));
  visit("moe", "tb_weight", e.tb_weight, at_least(0));
  visit("moe", "mask_padding", e.mask_padding, any());
  visit("moe", "lambda_bf16", e.lambda_bf16, any());
  visit("moe", "top_k", e.top_k, at_least(0));
  visit("moe", "aux_coef", e.aux_coef, at_least(0));
  visit("moe", "capacity_factor_train", e.capacity_factor_train, positive());
  visit("moe", "capacity_factor_eval", e.capacity_factor_eval, positive());
  visit("moe", "z_loss_coef", e.z_loss_coef, at_least(0));
  visit("moe", "jitter", e.jitter, upper_open(0, 1));
  visit("moe", "switch_norm", e.switch_norm, one_of({"switch", "megatron"}));
  visit("moe", "remoe_variant", e.remoe_variant, one_of({"original", "rf_paper"}));
  visit("moe", "remoe_alpha", e.remoe_alpha, at_least(1));
  visit("moe", "remoe_lambda0", e.remoe_lambda0, at_least(0));
  // The rf_paper controller caps λ at 1, so a start above 1 would be clipped at once.
  visit("moe", "remoe_rf_lambda0", e.remoe_rf_lambda0, closed(0, 1));
  visit("moe", "remoe_rf_eta", e.remoe_rf_eta, at_least(0));
  visit("moe", "aoe_variant", e.aoe_variant, one_of({"rf_paper", "aoe_paper"}));
  visit("moe", "self_routing_subspace", e.self_routing_subspace,
        one_of({"last", "first", "strided"}));
  visit("moe", "dense_width", e.dense_width, one_of({"iso_active", "iso_param"}));

  auto& o = c.optim;
  visit("optim", "lr", o.lr, positive());
  visit("optim", "betas", o.betas, upper_open(0, 1));
  visit("optim", "eps", o.eps, positive());
  visit("optim", "weight_decay", o.weight_decay, at_least(0));
  visit("optim", "warmup_steps", o.warmup_steps, at_least(0));
  visit("optim", "min_lr_ratio", o.min_lr_ratio, closed(0, 1));
  visit("optim", "grad_clip", o.grad_clip, at_least(0));

  auto& d = c.data;
  visit("data", "mode", d.mode, one_of({"paper", "packed"}));
  visit("data", "batch_size", d.batch_size, at_least(1));
  visit("data", "micro_batch", d.micro_batch, at_least(0));
  visit("data", "shard_dir", d.shard_dir, any());

  auto& t = c.train;
  visit("train", "steps", t.steps, at_least(0));
  visit("train", "seed", t.seed, at_least(0));
  visit("train", "dtype", t.dtype, one_of({"fp32", "bf16"}));
  visit("train", "eval_every", t.eval_every, at_least(0));
  visit("train", "checkpoint_every", t.checkpoint_every, at_least(0));
  visit("train", "log_every", t.log_every, at_least(1));
  visit("train", "threads", t.threads, at_least(1));
  visit("train", "device", t.device, one_of({"cpu", "cuda", "auto"}));
  visit("train", "diverge_loss", t.diverge_loss, positive());

  auto& v = c.eval;
  visit("eval", "val_batches", v.val_batches, at_least(0));
  visit("eval", "max_examples", v.max_examples, at_least(0));
  visit("eval", "tasks", v.tasks, any());
  visit("eval", "theta_sweep", v.theta_sweep, at_least(0));

  visit("kernels", "backend", c.kernels.backend, one_of({"auto", "reference", "cpu", "cuda"}));
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> sections = {"model", "train", "moe",    "optim",
                                                    "data",  "eval",  "kernels"};
  return sections;
}

// --- messages -----------------------------------------------------------------------------------

// Shortest text that reads back as the same double (1.5, 0.001, 1e-10), so messages show what
// the user wrote.
std::string format_number(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string format_value(double x) { return format_number(x); }
std::string format_value(int64_t x) { return std::to_string(x); }
std::string format_value(int x) { return std::to_string(x); }
std::string format_value(const std::string& s) { return "\"" + s + "\""; }

std::string describe_range(const Rule& r) {
  return std::string(r.lo_open ? "(" : "[") + format_number(r.lo) + ", " + format_number(r.hi) +
         (r.hi_open || std::isinf(r.hi) ? ")" : "]");
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest candidate within a few edits (or sharing a prefix),
// else "". A word without a section ("theta") is also compared with each key's part after the dot.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  size_t best = limit + 1;
  std::string best_candidate;
  for (const auto& candidate : candidates) {
    size_t d = edit_distance(word, candidate);
    const auto dot = candidate.find('.');
    if (word.find('.') == std::string::npos && dot != std::string::npos) {
      d = std::min(d, edit_distance(word, candidate.substr(dot + 1)));
    }
    const bool prefix =
        word.size() >= 3 && (candidate.rfind(word, 0) == 0 || word.rfind(candidate, 0) == 0);
    if (prefix) d = std::min<size_t>(d, 1);  // "optimizer" -> "optim"
    if (d < best) {
      best = d;
      best_candidate = candidate;
    }
  }
  return best_candidate.empty() ? "" : " (did you mean '" + best_candidate + "'?)";
}

// "config: " or "config: <file>: ", so file errors say which file.
std::string prefix(const std::string& source) {
  return source.empty() ? "config: " : "config: " + source + ": ";
}

// --- reading values from TOML nodes -------------------------------------------------------------

std::string describe_node(const toml::node& n) {
  std::ostringstream os;
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

[[noreturn]] void wrong_type(const std::string& key, const toml::node& n, const char* expected) {
  throw ConfigError("config: " + key + " = " + describe_node(n) + " has the wrong type (expected " +
                    expected + ")");
}

void assign(int64_t& out, const toml::node& n, const std::string& key) {
  if (!n.is_integer()) wrong_type(key, n, "an integer");
  out = n.as_integer()->get();
}

void assign(int& out, const toml::node& n, const std::string& key) {
  int64_t wide = 0;
  assign(wide, n, key);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    throw ConfigError("config: " + key + " = " + std::to_string(wide) +
                      " is out of range for a 32-bit integer");
  }
  out = static_cast<int>(wide);
}

void assign(double& out, const toml::node& n, const std::string& key) {
  if (n.is_floating_point()) {
    out = n.as_floating_point()->get();
  } else if (n.is_integer()) {  // "lr = 1" means 1.0
    out = static_cast<double>(n.as_integer()->get());
  } else {
    wrong_type(key, n, "a number");
  }
}

void assign(bool& out, const toml::node& n, const std::string& key) {
  if (!n.is_boolean()) wrong_type(key, n, "true or false");
  out = n.as_boolean()->get();
}

void assign(std::string& out, const toml::node& n, const std::string& key) {
  if (!n.is_string()) wrong_type(key, n, "a string");
  out = n.as_string()->get();
}

template <class T>
void assign(std::vector<T>& out, const toml::node& n, const std::string& key) {
  const toml::array* array = n.as_array();
  if (array == nullptr) wrong_type(key, n, "a list");
  std::vector<T> values(array->size());
  for (size_t i = 0; i < array->size(); ++i) {
    assign(values[i], *array->get(i), key + "[" + std::to_string(i) + "]");
  }
  out = std::move(values);
}

void assign(std::array<double, 2>& out, const toml::node& n, const std::string& key) {
  std::vector<double> values;
  assign(values, n, key);
  if (values.size() != 2) wrong_type(key, n, "a list of two numbers");
  out = {values[0], values[1]};
}

// --- building TOML nodes from override text -----------------------------------------------------

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// The text as the TOML value of key "v", or nothing when it is not valid TOML.
std::optional<toml::table> parse_toml_value(const std::string& text) {
  try {
    return toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

template <class T>
constexpr bool kIsNumberList =
    std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::array<double, 2>>;

// Override text -> a table holding the value at "v". Strict TOML first; then the forgiving forms
// people type on a command line: bare strings (moe.method=topk) and bare lists (0.8,1.0).
// Anything else stays a string, so a number field given "abc" fails with a type error.
template <class T>
toml::table override_value(const T& /*field*/, const std::string& text) {
  auto parsed = parse_toml_value(text);
  if constexpr (std::is_same_v<T, std::string>) {
    if (parsed && (*parsed)["v"].is_string()) return *parsed;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (parsed && (*parsed)["v"].is_array()) return *parsed;
    std::string body = text;
    if (body.size() >= 2 && body.front() == '[' && body.back() == ']') {
      body = body.substr(1, body.size() - 2);
    }
    toml::array items;
    std::stringstream stream(body);
    for (std::string item; std::getline(stream, item, ',');) {
      if (!trim(item).empty()) items.push_back(trim(item));
    }
    toml::table table;
    table.insert("v", std::move(items));
    return table;
  } else if constexpr (kIsNumberList<T>) {
    if (parsed && (*parsed)["v"].is_array()) return *parsed;
    if (auto bracketed = parse_toml_value("[" + text + "]")) return *bracketed;  // "0.8" too
  } else {
    if (parsed) return *parsed;
  }
  toml::table table;
  table.insert("v", text);
  return table;
}

// --- applying tables ----------------------------------------------------------------------------

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  const RunConfig defaults;
  for_each_field(defaults, [&](const char* section, const char* name, const auto&, const Rule&) {
    keys.push_back(std::string(section) + "." + name);
  });
  return keys;
}

// Calls fn(field) for the field called `key` ("moe.theta"); unknown keys throw.
template <class Fn>
void with_field(RunConfig& cfg, const std::string& key, const std::string& source, Fn&& fn) {
  bool found = false;
  for_each_field(cfg, [&](const char* section, const char* name, auto& field, const Rule&) {
    if (!found && key == std::string(section) + "." + name) {
      found = true;
      fn(field);
    }
  });
  if (!found) {
    throw ConfigError(prefix(source) + "unknown key '" + key + "'" + did_you_mean(key, all_keys()));
  }
}

// Applies [section] tables; `base` is the caller's business and rejected here.
void apply_sections(RunConfig& cfg, const toml::table& table, const std::string& source) {
  for (const auto& [section_key, section_node] : table) {
    const std::string section(section_key.str());
    if (std::find(section_names().begin(), section_names().end(), section) ==
        section_names().end()) {
      throw ConfigError(prefix(source) + "unknown section '" + section + "'" +
                        did_you_mean(section, section_names()));
    }
    const toml::table* entries = section_node.as_table();
    if (entries == nullptr) {
      throw ConfigError(prefix(source) + "'" + section + "' must be a table ([" + section + "])");
    }
    for (const auto& entry : *entries) {
      const toml::node& node = entry.second;  // named: lambdas cannot capture bindings in C++17
      const std::string key = section + "." + std::string(entry.first.str());
      with_field(cfg, key, source, [&](auto& field) { assign(field, node, key); });
    }
  }
}

RunConfig named_unvalidated(const std::string& name);

// A built-in name or a TOML file (with an optional `base`), without validation: overrides may
// still repair a field before validate() runs.
RunConfig load_unvalidated(const std::string& name_or_path, int depth) {
  if (is_named_config(name_or_path)) return named_unvalidated(name_or_path);
  const fs::path path(name_or_path);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ConfigError("config: '" + name_or_path + "' is neither a named config (" +
                      join(named_config_names(), ", ") + ") nor a readable TOML file");
  }
  toml::table table;
  try {
    table = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError("config: " + path.string() + ":" + std::to_string(e.source().begin.line) +
                      ":" + std::to_string(e.source().begin.column) + ": " +
                      std::string(e.description()));
  }
  RunConfig cfg;  // no base: the struct defaults (the paper's S)
  if (const toml::node* base = table.get("base")) {
    if (!base->is_string()) wrong_type(path.string() + ": base", *base, "a string");
    if (depth >= kMaxBaseDepth) {
      throw ConfigError(prefix(path.string()) + "'base' chain deeper than " +
                        std::to_string(kMaxBaseDepth) + " (a cycle?)");
    }
    std::string base_name = base->as_string()->get();
    if (!is_named_config(base_name) && fs::path(base_name).is_relative()) {
      base_name = (path.parent_path() / base_name).string();  // files are relative to this one
    }
    cfg = load_unvalidated(base_name, depth + 1);
    table.erase("base");
  }
  apply_sections(cfg, table, path.string());
  return cfg;
}

// --- validation ---------------------------------------------------------------------------------

template <class T>
void check_number(const std::string& key, T value, const Rule& rule) {
  const double x = static_cast<double>(value);
  const bool ok = std::isfinite(x) && (rule.lo_open ? x > rule.lo : x >= rule.lo) &&
                  (rule.hi_open ? x < rule.hi : x <= rule.hi);
  if (!ok) {
    throw ConfigError("config: " + key + " = " + format_value(value) + " is out of range " +
                      describe_range(rule));
  }
}

void check_field(const std::string& key, int value, const Rule& rule) {
  check_number(key, value, rule);
}
void check_field(const std::string& key, int64_t value, const Rule& rule) {
  check_number(key, value, rule);
}
void check_field(const std::string& key, double value, const Rule& rule) {
  check_number(key, value, rule);
}
void check_field(const std::string&, bool, const Rule&) {}

void check_field(const std::string& key, const std::string& value, const Rule& rule) {
  if (rule.choices.empty()) {
    if (value.find_first_of("\n\r") != std::string::npos) {
      throw ConfigError("config: " + key + " must be one line");
    }
    return;
  }
  if (std::find(rule.choices.begin(), rule.choices.end(), value) == rule.choices.end()) {
    throw ConfigError("config: " + key + " = " + format_value(value) + " is not one of " +
                      join(rule.choices, ", ") + did_you_mean(value, rule.choices));
  }
}

template <class List>
void check_list(const std::string& key, const List& values, const Rule& rule) {
  for (size_t i = 0; i < values.size(); ++i) {
    check_field(key + "[" + std::to_string(i) + "]", values[i], rule);
  }
}
void check_field(const std::string& key, const std::vector<double>& v, const Rule& rule) {
  check_list(key, v, rule);
}
void check_field(const std::string& key, const std::array<double, 2>& v, const Rule& rule) {
  check_list(key, v, rule);
}
void check_field(const std::string& key, const std::vector<std::string>& v, const Rule& rule) {
  check_list(key, v, rule);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].empty()) throw ConfigError("config: " + key + "[" + std::to_string(i) + "] is empty");
  }
}

// Rules that involve two fields.
void check_cross_fields(const RunConfig& c) {
  const auto n = [](int x) { return std::to_string(x); };
  const ModelConfig& m = c.model;
  if (m.vocab.empty()) throw ConfigError("config: model.vocab is empty");
  if (m.hidden % m.q_heads != 0) {
    throw ConfigError("config: model.hidden = " + n(m.hidden) +
                      " is not divisible by model.q_heads = " + n(m.q_heads));
  }
  if (m.head_dim != 0 && m.head_dim * m.q_heads != m.hidden) {
    throw ConfigError("config: model.head_dim = " + n(m.head_dim) +
                      " does not match model.hidden / model.q_heads = " + n(m.hidden) + " / " +
                      n(m.q_heads) + " = " + n(m.hidden / m.q_heads) + " (0 derives it)");
  }
  if (effective_head_dim(m) % 2 != 0) {  // RoPE rotates channel pairs
    throw ConfigError("config: model.head_dim = " + n(effective_head_dim(m)) +
                      " must be even (RoPE rotates pairs of channels)");
  }
  if (m.q_heads % m.kv_heads != 0) {
    throw ConfigError("config: model.q_heads = " + n(m.q_heads) +
                      " is not a multiple of model.kv_heads = " + n(m.kv_heads));
  }
  const MoeConfig& e = c.moe;
  if (e.top_k > e.experts) {
    throw ConfigError("config: moe.top_k = " + n(e.top_k) +
                      " is out of range [0, moe.experts = " + n(e.experts) + "]");
  }
  const DataConfig& d = c.data;
  if (d.micro_batch > d.batch_size || d.batch_size % effective_micro_batch(d) != 0) {
    throw ConfigError("config: data.batch_size = " + n(d.batch_size) +
                      " is not a multiple of data.micro_batch = " + n(d.micro_batch));
  }
}

// --- named configs ------------------------------------------------------------------------------

RunConfig named_unvalidated(const std::string& name) {
  RunConfig c;  // the struct defaults are the paper's S
  if (name == "S") return c;
  if (name == "M") {
    c.model.layers = 24;
    c.model.hidden = 768;
    c.model.q_heads = 24;
    c.model.kv_heads = 12;
    c.moe.experts = 16;
    c.moe.intermediate = 192;
    return c;
  }
  if (name == "L") {
    c.model.layers = 32;
    c.model.hidden = 1024;
    c.model.q_heads = 32;
    c.model.kv_heads = 16;
    c.moe.experts = 24;
    c.moe.intermediate = 256;
    c.optim.lr = 8e-4;
    return c;
  }
  // CPU configs: the paper's recipe scaled down. A trained 8k vocabulary, since a 50k-row
  // embedding and head would dominate models this small. fp32: no bf16 speed-up on these CPUs.
  c.model.vocab = "bpe8k";
  c.train.dtype = "fp32";
  c.train.threads = 2;
  c.eval.val_batches = 20;
  // Zero-shot items per task at the end of a run: 500 gives a 95% interval of about ±0.04
  // around an accuracy of 0.5 (tiny overrides it to stay within CI's seconds).
  c.eval.max_examples = 500;
  // λ schedule scaled to CPU run lengths: the paper's λ0 = 1e-10, η = 0.02 needs ~1,000
  // controller updates just to reach 1e-2 (it has ~250k); these runs have a few hundred. With
  // λ0 = 1e-3, η = 0.05 the micro run's density falls from 1 to ρ* = 0.25 by step ~90.
  c.moe.lambda0 = 1e-3;
  c.moe.eta = 0.05;
  // Routing-Free gates start from ‖A_e x‖ ≈ init_std·sqrt(H·r) (x is RMS-normalised): with the
  // paper's init of 0.02 that is 2.6 at S (all experts on at first, density then falls to ρ*).
  // The CPU sizes keep H·r ≥ 4096 (≥ 1.28) so RF starts dense as in the paper, not at ~0.
  if (name == "micro") {  // the CPU reproduction: a few minutes per run on 2 cores
    c.model.layers = 4;
    c.model.hidden = 256;
    c.model.q_heads = 8;
    c.model.kv_heads = 4;
    c.model.head_dim = 32;
    c.model.seq_len = 128;
    c.moe.experts = 8;         // top_k = 2, the paper's E/4
    c.moe.intermediate = 128;  // rank = 32: ‖Ax‖ ≈ 0.02·sqrt(256·32) = 1.8 at init
    c.data.batch_size = 16;
    c.data.micro_batch = 16;
    c.train.steps = 300;
    c.optim.warmup_steps = 30;
    c.train.eval_every = 100;
    c.train.checkpoint_every = 100;
    return c;
  }
  if (name == "tiny") {  // CI: seconds on one CPU core, still exercising eval and checkpoints
    c.model.layers = 2;
    c.model.hidden = 128;
    c.model.q_heads = 4;
    c.model.kv_heads = 2;
    c.model.head_dim = 32;
    c.model.seq_len = 64;
    c.moe.experts = 4;         // top_k = 1
    c.moe.intermediate = 128;  // rank = 32: ‖Ax‖ ≈ 0.02·sqrt(128·32) = 1.28 at init
    c.data.batch_size = 8;
    c.data.micro_batch = 4;  // two micro-batches, so gradient accumulation is exercised
    c.train.steps = 30;
    c.optim.warmup_steps = 5;
    c.train.eval_every = 15;
    c.train.checkpoint_every = 15;
    c.train.log_every = 5;
    c.eval.val_batches = 2;
    c.eval.max_examples = 16;
    return c;
  }
  throw ConfigError("config: unknown named config '" + name +
                    "' (known: " + join(named_config_names(), ", ") + ")" +
                    did_you_mean(name, named_config_names()));
}

// --- JSON
// -------------------------------------------------------------------------------------------

Json to_json(const RunConfig& cfg) {
  Json j = Json::object();  // std::map-backed: keys come out sorted
  for_each_field(cfg, [&](const char* section, const char* name, const auto& field, const Rule&) {
    j[section][name] = field;
  });
  return j;
}

std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void json_into_table(const Json& object, const std::string& key, toml::table& out);
void json_into_array(const Json& array, const std::string& key, toml::array& out);

// JSON value -> TOML node, handed to `insert`, so that JSON configs reuse the TOML type checks.
// Containers recurse through the two plain functions above: a lambda per level here would
// instantiate templates without end.
template <class Insert>
void json_to_toml(const Json& j, const std::string& key, Insert&& insert) {
  switch (j.type()) {
    case Json::value_t::object: {
      toml::table table;
      json_into_table(j, key, table);
      insert(std::move(table));
      break;
    }
    case Json::value_t::array: {
      toml::array array;
      json_into_array(j, key, array);
      insert(std::move(array));
      break;
    }
    case Json::value_t::string:
      insert(j.get<std::string>());
      break;
    case Json::value_t::boolean:
      insert(j.get<bool>());
      break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      insert(j.get<int64_t>());
      break;
    case Json::value_t::number_float:
      insert(j.get<double>());
      break;
    default:
      throw ConfigError("config: " + key + " has an unsupported JSON value " + j.dump());
  }
}

void json_into_table(const Json& object, const std::string& key, toml::table& out) {
  for (const auto& item : object.items()) {
    const std::string& name = item.key();  // a plain variable: lambdas cannot capture bindings
    const Json& value = item.value();
    const std::string child = key.empty() ? name : key + "." + name;
    json_to_toml(value, child,
                 [&](auto&& node) { out.insert(name, std::forward<decltype(node)>(node)); });
  }
}

void json_into_array(const Json& array, const std::string& key, toml::array& out) {
  for (const auto& value : array) {
    json_to_toml(value, key,
                 [&](auto&& node) { out.push_back(std::forward<decltype(node)>(node)); });
  }
}

}  // namespace

// --- public API
// -----------------------------------------------------------------------------------

const std::vector<std::string>& named_config_names() {
  static const std::vector<std::string> names = {"tiny", "micro", "S", "M", "L"};
  return names;
}

bool is_named_config(const std::string& name) {
  const auto& names = named_config_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

RunConfig named_config(const std::string& name) {
  RunConfig cfg = named_unvalidated(name);
  validate(cfg);
  return cfg;
}

RunConfig load_config(const std::string& name_or_path, const std::vector<std::string>& overrides) {
  RunConfig cfg = load_unvalidated(name_or_path, 0);
  for (const auto& o : overrides) apply_override(cfg, o);
  validate(cfg);
  return cfg;
}

void apply_override(RunConfig& cfg, const std::string& key_equals_value) {
  const auto eq = key_equals_value.find('=');
  const std::string key = trim(key_equals_value.substr(0, eq));
  if (eq == std::string::npos || key.empty()) {
    throw ConfigError("config: override '" + key_equals_value +
                      "' must look like section.key=value");
  }
  const std::string text = trim(key_equals_value.substr(eq + 1));
  with_field(cfg, key, "", [&](auto& field) {
    const toml::table table = override_value(field, text);
    assign(field, *table.get("v"), key);
  });
}

void validate(const RunConfig& cfg) {
  for_each_field(cfg,
                 [&](const char* section, const char* name, const auto& field, const Rule& rule) {
                   check_field(std::string(section) + "." + name, field, rule);
                 });
  check_cross_fields(cfg);
}

std::vector<std::string> config_keys() { return all_keys(); }

std::string to_canonical_json(const RunConfig& cfg) { return to_json(cfg).dump(); }

RunConfig config_from_json(const std::string& json_text) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    throw ConfigError(std::string("config: invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ConfigError("config: JSON config must be an object");
  toml::table table;
  json_into_table(j, "", table);
  RunConfig cfg;
  apply_sections(cfg, table, "json");
  validate(cfg);
  return cfg;
}

std::string config_hash(const RunConfig& cfg) {
  return hex16(data::fnv1a64(to_canonical_json(cfg)));
}

std::string config_id(const RunConfig& cfg) {
  Json j = to_json(cfg);
  j["train"].erase("seed");
  return hex16(data::fnv1a64(j.dump()));
}

std::string run_key(const RunConfig& cfg) {
  return hex16(data::fnv1a64(config_id(cfg) + "/seed=" + std::to_string(cfg.train.seed)));
}

int effective_top_k(const MoeConfig& moe) {
  return moe.top_k > 0 ? moe.top_k : std::max(1, moe.experts / 4);
}

int effective_rank(const MoeConfig& moe) {
  return moe.rank > 0 ? moe.rank : std::max(1, moe.intermediate / 4);
}

int effective_head_dim(const ModelConfig& m) {
  return m.head_dim > 0 ? m.head_dim : m.hidden / m.q_heads;
}

int effective_micro_batch(const DataConfig& d) {
  return d.micro_batch > 0 ? d.micro_batch : d.batch_size;
}

int grad_accum(const DataConfig& d) { return d.batch_size / effective_micro_batch(d); }

}  // namespace moebench
