// RunConfig: one field table drives the TOML, override and JSON readers, validation and hashing.
// Spec: shared/DESIGN.md "Configs and the store"; values from shared/spec/METHODS.md.
#include "suite/config.h"

// Header-only toml++: the executable then needs no libtomlplusplus.so at run time (the GPU
// machine has no apt, and every shared library must be carried there by hand).
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <fmt/format.h>

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

#include "baselines/registry.h"
#include "datasets/hashing.h"
#include "suite/named_configs.h"
#include "suite/table.h"

namespace moebench {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxBaseDepth = 8;
// 20 G parameters (80 GB in fp32): far above the paper's L, far below what a typo asks for.
constexpr double kMaxParameters = 2e10;  // `base` chains longer than this are taken to be a cycle

// --- allowed values -----------------------------------------------------------------------------

// What a field may hold and whether it defines the experiment: the same vocabulary method files
// use for their own options (models/options.h).
using Rule = models::OptionRule;
using Role = models::OptionRole;
using models::at_least;
using models::closed;
using models::lower_open;
using models::one_of;
using models::positive;
using models::upper_open;
Rule any() { return models::any_value(); }
constexpr Role kExperiment = Role::kExperiment;
constexpr Role kExecution = Role::kExecution;

// The one list of fields. `visit(section, name, field, rule, role)` is called for every field
// in declaration order; Cfg is RunConfig or const RunConfig. Adding a field here (or to a
// method's options struct) is all it takes for TOML, overrides, JSON, validation and the run key
// to know it. Execution settings are marked kExecution: they never enter the run key.
template <class Cfg, class Visit>
void for_each_field(Cfg& c, Visit&& visit) {
  auto& m = c.model;
  visit("model", "layers", m.layers, closed(1, 1024), kExperiment);
  visit("model", "hidden", m.hidden, closed(1, 65536), kExperiment);
  visit("model", "q_heads", m.q_heads, closed(1, 4096), kExperiment);
  visit("model", "kv_heads", m.kv_heads, closed(1, 4096), kExperiment);
  visit("model", "head_dim", m.head_dim, closed(0, 65536), kExperiment);
  visit("model", "vocab", m.vocab, any(), kExperiment);
  visit("model", "vocab_size", m.vocab_size, closed(0, 65536), kExperiment);
  visit("model", "seq_len", m.seq_len, closed(1, 1 << 20), kExperiment);
  visit("model", "rope_theta", m.rope_theta, positive(), kExperiment);
  visit("model", "norm_eps", m.norm_eps, positive(), kExperiment);
  visit("model", "attn_dropout", m.attn_dropout, upper_open(0, 1), kExperiment);
  visit("model", "init_std", m.init_std, positive(), kExperiment);
  visit("model", "init", m.init, one_of({"published", "normal"}), kExperiment);

  // The keys every method shares, then each method's own (the registry's merged list).
  auto& e = c.moe;
  visit("moe", "method", e.method, one_of(baselines::method_names()), kExperiment);
  visit("moe", "experts", e.experts, closed(1, 4096), kExperiment);
  visit("moe", "intermediate", e.intermediate, closed(1, 1 << 20), kExperiment);
  visit("moe", "rank", e.rank, closed(0, 1 << 20), kExperiment);
  visit("moe", "top_k", e.top_k, closed(0, 4096), kExperiment);
  visit("moe", "mask_padding", e.mask_padding, any(), kExperiment);
  for (const auto& f : baselines::method_option_fields()) {
    if constexpr (std::is_const_v<Cfg>) {
      const models::OptionValue& value =
          e.params.has(f.name) ? e.params.at(f.name) : f.default_value;
      std::visit([&](const auto& v) { visit("moe", f.name.c_str(), v, f.rule, f.role); }, value);
    } else {
      if (!e.params.has(f.name)) e.params.set(f.name, f.default_value);
      std::visit([&](auto& v) { visit("moe", f.name.c_str(), v, f.rule, f.role); },
                 e.params.at(f.name));
    }
  }

  auto& o = c.optim;
  visit("optim", "lr", o.lr, positive(), kExperiment);
  visit("optim", "betas", o.betas, upper_open(0, 1), kExperiment);
  visit("optim", "eps", o.eps, positive(), kExperiment);
  visit("optim", "weight_decay", o.weight_decay, at_least(0), kExperiment);
  visit("optim", "warmup_steps", o.warmup_steps, at_least(0), kExperiment);
  visit("optim", "min_lr_ratio", o.min_lr_ratio, closed(0, 1), kExperiment);
  visit("optim", "grad_clip", o.grad_clip, at_least(0), kExperiment);

  auto& d = c.data;
  visit("data", "mode", d.mode, one_of({"paper", "packed"}), kExperiment);
  visit("data", "batch_size", d.batch_size, closed(1, 1 << 20), kExperiment);
  visit("data", "micro_batch", d.micro_batch, closed(0, 1 << 20), kExperiment);
  visit("data", "shard_dir", d.shard_dir, any(), kExecution);  // where, not which, data

  auto& t = c.train;
  visit("train", "steps", t.steps, at_least(0), kExperiment);
  visit("train", "seed", t.seed, at_least(0), kExperiment);
  visit("train", "dtype", t.dtype, one_of({"fp32", "bf16"}), kExperiment);
  visit("train", "eval_every", t.eval_every, at_least(0), kExecution);
  visit("train", "checkpoint_every", t.checkpoint_every, at_least(0), kExecution);
  visit("train", "log_every", t.log_every, at_least(1), kExecution);
  visit("train", "threads", t.threads, at_least(1), kExecution);
  visit("train", "device", t.device, one_of({"cpu", "cuda", "auto"}), kExecution);
  visit("train", "diverge_loss", t.diverge_loss, positive(), kExperiment);

  auto& v = c.eval;
  visit("eval", "val_batches", v.val_batches, at_least(0), kExperiment);
  visit("eval", "max_examples", v.max_examples, at_least(0), kExperiment);
  visit("eval", "tasks", v.tasks, any(), kExperiment);
  visit("eval", "theta_sweep", v.theta_sweep, at_least(0), kExperiment);

  visit("kernels", "backend", c.kernels.backend, one_of({"auto", "reference", "cpu", "cuda"}),
        kExecution);
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> sections = {"model", "train", "moe",    "optim",
                                                    "data",  "eval",  "kernels"};
  return sections;
}

// --- messages -----------------------------------------------------------------------------------

// Shortest text that reads back as the same double (1.5, 0.001, 1e-10), so messages show what
// the user wrote; a NaN (TOML nan) reads "nan" or "-nan" as printf spells it.
std::string format_number(double x) {
  return std::isnan(x) ? format_printf("%g", x) : shortest_exact(x);
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
  for_each_field(defaults, [&](const char* section, const char* name, const auto&, const Rule&,
                               Role) { keys.push_back(std::string(section) + "." + name); });
  return keys;
}

// Calls fn(field) for the field called `key` ("moe.theta"); unknown keys throw.
template <class Fn>
void with_field(RunConfig& cfg, const std::string& key, const std::string& source, Fn&& fn) {
  bool found = false;
  for_each_field(cfg, [&](const char* section, const char* name, auto& field, const Rule&, Role) {
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
      throw ConfigError(
          fmt::format("{}'{}' must be a table ([{}])", prefix(source), section, section));
    }
    for (const auto& entry : *entries) {
      const toml::node& node = entry.second;  // named: lambdas cannot capture bindings in C++17
      const std::string key = section + "." + std::string(entry.first.str());
      with_field(cfg, key, source, [&](auto& field) { assign(field, node, key); });
    }
  }
}

// The built-in configs: suite/configs/<name>.toml, embedded into the binary at build time
// (suite/named_configs.h), read exactly like a TOML file. "cpu" is the base micro and tiny share.
bool is_embedded_config(const std::string& name) { return embedded_configs().count(name) > 0; }

// A TOML table (a file's or an embedded config's) with its optional `base`, applied over that
// base's config. `base` names an embedded config or a file relative to `dir`.
RunConfig load_unvalidated(const std::string& name_or_path, int depth);

RunConfig from_table(toml::table table, const std::string& source, const fs::path& dir, int depth) {
  RunConfig cfg;  // no base: the struct defaults (the paper's S)
  if (const toml::node* base = table.get("base")) {
    if (!base->is_string()) wrong_type(source + ": base", *base, "a string");
    if (depth >= kMaxBaseDepth) {
      throw ConfigError(prefix(source) + "'base' chain deeper than " +
                        std::to_string(kMaxBaseDepth) + " (a cycle?)");
    }
    std::string base_name = base->as_string()->get();
    if (!is_embedded_config(base_name) && fs::path(base_name).is_relative()) {
      base_name = (dir / base_name).string();  // files are relative to this one
    }
    cfg = load_unvalidated(base_name, depth + 1);
    table.erase("base");
  }
  apply_sections(cfg, table, source);
  return cfg;
}

[[noreturn]] void parse_failure(const std::string& source, const toml::parse_error& e) {
  throw ConfigError("config: " + source + ":" + std::to_string(e.source().begin.line) + ":" +
                    std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
}

// A built-in name or a TOML file (with an optional `base`), without validation: overrides may
// still repair a field before validate() runs.
RunConfig load_unvalidated(const std::string& name_or_path, int depth) {
  if (const auto it = embedded_configs().find(name_or_path); it != embedded_configs().end()) {
    const std::string source = "built-in config " + name_or_path;
    toml::table table;
    try {
      table = toml::parse(it->second, source);
    } catch (const toml::parse_error& e) {
      parse_failure(source, e);
    }
    return from_table(std::move(table), source, fs::path(), depth);
  }
  const fs::path path(name_or_path);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ConfigError("config: '" + name_or_path + "' is neither a named config (" +
                      join(named_config_names(), ", ") + ") nor a readable TOML file" +
                      (fs::path(name_or_path).has_parent_path()
                           ? ""
                           : did_you_mean(name_or_path, named_config_names())));
  }
  toml::table table;
  try {
    table = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    parse_failure(path.string(), e);
  }
  return from_table(std::move(table), path.string(), path.parent_path(), depth);
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
  const auto n = [](int64_t x) { return std::to_string(x); };
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
  // What the model would weigh, roughly (attention, experts, embedding and head): a typo such as
  // hidden = 2000000000 must fail here, naming the keys, not in the allocator.
  const double H = m.hidden, layers = m.layers, E = static_cast<double>(e.experts),
               I = static_cast<double>(e.intermediate),
               V = m.vocab_size > 0 ? m.vocab_size : 65536.0;
  const double params = layers * (4 * H * H + 3 * E * I * H) + 2 * V * H;
  if (params > kMaxParameters) {
    throw ConfigError(fmt::format(
        "config: model.layers = {}, model.hidden = {}, moe.experts = {}, moe.intermediate = {} "
        "make about {:.3g} parameters, more than this suite allows ({:.0e}); check those keys",
        m.layers, m.hidden, e.experts, e.intermediate, params, kMaxParameters));
  }
  const DataConfig& d = c.data;
  if (d.micro_batch > d.batch_size || d.batch_size % effective_micro_batch(d) != 0) {
    throw ConfigError("config: data.batch_size = " + n(d.batch_size) +
                      " is not a multiple of data.micro_batch = " + n(d.micro_batch));
  }
}

// --- JSON
// -------------------------------------------------------------------------------------------

Json to_json(const RunConfig& cfg) {
  Json j = Json::object();  // std::map-backed: keys come out sorted
  for_each_field(cfg, [&](const char* section, const char* name, const auto& field, const Rule&,
                          Role) { j[section][name] = field; });
  return j;
}

// The experiment's identity: experiment fields only, and of the moe section the shared keys plus
// the selected method's own. Fields added later are left out at their default, so that adding
// one keeps every existing key.
Json identity(const RunConfig& cfg) {
  static const RunConfig defaults;
  std::vector<std::string> own;
  try {
    own = baselines::option_names_of(cfg.moe.method);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string("config: ") + e.what());
  }
  // Every method option is in the merged list; those of other methods are not part of this run.
  std::vector<std::string> others;
  for (const auto& f : baselines::method_option_fields()) {
    if (std::find(own.begin(), own.end(), f.name) == own.end()) others.push_back(f.name);
  }
  Json j = Json::object();
  for_each_field(
      cfg, [&](const char* section, const char* name, const auto& field, const Rule&, Role role) {
        if (role == Role::kExecution) return;
        if (std::string(section) == "moe" &&
            std::find(others.begin(), others.end(), name) != others.end()) {
          return;
        }
        j[section][name] = field;
      });
  // kExperimentAdded fields: dropped where they equal the default config's value.
  const Json base = to_json(defaults);
  for_each_field(defaults,
                 [&](const char* section, const char* name, const auto&, const Rule&, Role role) {
                   if (role == Role::kExperimentAdded && j.contains(section) &&
                       j[section].contains(name) && j[section][name] == base[section][name]) {
                     j[section].erase(name);
                   }
                 });
  // Recipe 1 keys had no entry: they stay as they were.
  if (kRecipeVersion > 1) j["recipe"] = kRecipeVersion;
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
    const std::string child = key.empty() ? name : fmt::format("{}.{}", key, name);
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
  if (!is_named_config(name)) {
    throw ConfigError("config: unknown named config '" + name +
                      "' (known: " + join(named_config_names(), ", ") + ")" +
                      did_you_mean(name, named_config_names()));
  }
  RunConfig cfg = load_unvalidated(name, 0);
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
  for_each_field(
      cfg, [&](const char* section, const char* name, const auto& field, const Rule& rule, Role) {
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

std::string identity_json(const RunConfig& cfg) { return identity(cfg).dump(); }

std::string config_id(const RunConfig& cfg) {
  Json j = identity(cfg);
  j["train"].erase("seed");
  return hex16(data::fnv1a64(j.dump()));
}

std::string run_key(const RunConfig& cfg) {
  return hex16(data::fnv1a64(config_id(cfg) + "/seed=" + std::to_string(cfg.train.seed)));
}

MoeConfig default_moe_options() {
  MoeConfig moe;
  for (const auto& f : baselines::method_option_fields()) moe.params.set(f.name, f.default_value);
  return moe;
}

std::optional<double> threshold_of(const RunConfig& cfg) {
  const std::string option = baselines::threshold_option_of(cfg.moe.method);
  if (option.empty()) return std::nullopt;
  if (cfg.moe.params.has(option)) return cfg.moe.params.get<double>(option);
  for (const auto& f : baselines::method_option_fields()) {
    if (f.name == option) return std::get<double>(f.default_value);
  }
  throw std::logic_error("threshold option moe." + option + " is not a registered option");
}

int effective_head_dim(const ModelConfig& m) {
  return m.head_dim > 0 ? m.head_dim : m.hidden / m.q_heads;
}

int effective_micro_batch(const DataConfig& d) {
  return d.micro_batch > 0 ? d.micro_batch : d.batch_size;
}

int grad_accum(const DataConfig& d) { return d.batch_size / effective_micro_batch(d); }

}  // namespace moebench
