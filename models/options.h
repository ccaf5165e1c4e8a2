// Method options as data: a method declares its knobs once (name, default, allowed values, help)
// in a typed struct, and the suite reads, validates, stores and hashes them without knowing them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace moebench::models {

// One option value; the alternative is fixed by the option's default (int options are int64_t).
using OptionValue = std::variant<bool, int64_t, double, std::string>;

// What a value may hold: an interval for numbers and, for strings, a set of names. The default
// allows anything finite.
struct OptionRule {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;
  bool hi_open = false;
  std::vector<std::string> choices;
};

inline OptionRule interval(double lo, double hi, bool lo_open, bool hi_open) {
  OptionRule r;
  r.lo = lo;
  r.hi = hi;
  r.lo_open = lo_open;
  r.hi_open = hi_open;
  return r;
}
inline OptionRule any_value() { return {}; }
inline OptionRule at_least(double lo) {
  return interval(lo, std::numeric_limits<double>::infinity(), false, false);
}
inline OptionRule positive() {
  return interval(0, std::numeric_limits<double>::infinity(), true, false);
}
inline OptionRule closed(double lo, double hi) { return interval(lo, hi, false, false); }
inline OptionRule lower_open(double lo, double hi) { return interval(lo, hi, true, false); }
inline OptionRule upper_open(double lo, double hi) { return interval(lo, hi, false, true); }
inline OptionRule one_of(std::vector<std::string> choices) {
  OptionRule r;
  r.choices = std::move(choices);
  return r;
}

// Does the option define the experiment (enters the run key) or only how it is executed?
enum class OptionRole {
  kExperiment,
  // An experiment option added after run keys were first issued: it enters the key only when it
  // differs from its default, so adding it leaves every existing key unchanged.
  kExperimentAdded,
  kExecution,
};

struct OptionField {
  std::string name;
  OptionValue default_value;
  OptionRule rule;
  std::string help;
  OptionRole role = OptionRole::kExperiment;
};

// Values by option name (a config section's method part).
class OptionValues {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  void set(const std::string& name, OptionValue value) { values_[name] = std::move(value); }
  // Literals as people write them: "l1" is a string (not a bool), 0.5 a double, and a whole
  // number given to an option that already holds a double stays a double.
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, OptionValue>>>
  void set(const std::string& name, T&& value) {
    using V = std::decay_t<T>;
    if constexpr (std::is_same_v<V, bool>) {
      set(name, OptionValue(value));
    } else if constexpr (std::is_integral_v<V>) {
      const auto it = values_.find(name);
      if (it != values_.end() && std::holds_alternative<double>(it->second)) {
        it->second = static_cast<double>(value);
      } else {
        set(name, OptionValue(static_cast<int64_t>(value)));
      }
    } else if constexpr (std::is_floating_point_v<V>) {
      set(name, OptionValue(static_cast<double>(value)));
    } else {
      set(name, OptionValue(std::string(std::forward<T>(value))));
    }
  }
  OptionValue& at(const std::string& name) { return values_.at(name); }
  const OptionValue& at(const std::string& name) const { return values_.at(name); }
  template <class T>
  const T& get(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) throw std::invalid_argument("option '" + name + "' is not set");
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    throw std::invalid_argument("option '" + name + "' has the wrong type");
  }
  const std::map<std::string, OptionValue>& items() const { return values_; }
  bool operator==(const OptionValues& o) const { return values_ == o.values_; }

 private:
  std::map<std::string, OptionValue> values_;
};

// A method's options struct lists its fields once, in a member template:
//
//   struct SwitchOptions {
//     double jitter = 0.0;
//     template <class F> void fields(F&& f) {
//       f("jitter", jitter, upper_open(0, 1), "router-input noise ε; 0 = off");
//     }
//   };
//
// and these three helpers give its schema, read it from values and write it back.
// Field types: bool, int64_t, double, std::string.
template <class Options>
std::vector<OptionField> option_schema(OptionRole role = OptionRole::kExperiment) {
  Options defaults;
  std::vector<OptionField> out;
  defaults.fields([&](const char* name, auto& field, OptionRule rule, const char* help) {
    out.push_back({name, OptionValue(field), std::move(rule), help, role});
  });
  return out;
}

template <class Options>
Options options_from(const OptionValues& values) {
  Options o;
  o.fields([&](const char* name, auto& field, const OptionRule&, const char*) {
    if (values.has(name)) field = values.get<std::decay_t<decltype(field)>>(name);
  });
  return o;
}

template <class Options>
void write_options(const Options& typed, OptionValues& values) {
  Options o = typed;
  o.fields([&](const char* name, auto& field, const OptionRule&, const char*) {
    values.set(name, OptionValue(field));
  });
}

}  // namespace moebench::models

namespace moebench::models {

// What every MoE method shares (the `moe` config section's common keys), plus the method's own
// options by name (its OptionField list in the registry). Read by the layer, the policies and the
// controllers; the suite's RunConfig holds one.
struct MoeOptions {
  std::string method = "routing_free";
  int64_t experts = 12;
  int64_t intermediate = 128;
  int64_t rank = 0;   // low-rank gate width r (RF, AoE); 0 = intermediate / 4
  int64_t top_k = 0;  // experts per token for fixed-k methods; 0 = experts / 4
  // false = the official codes (padding counted in the balance statistics and, for Switch,
  // taking capacity).
  bool mask_padding = true;
  OptionValues params;           // the method's own options, by name
  std::string backend = "auto";  // expert kernels (kernels.backend): not part of the experiment

  int64_t effective_rank() const {
    return rank > 0 ? rank : std::max<int64_t>(1, intermediate / 4);
  }
  int64_t effective_top_k() const { return top_k > 0 ? top_k : std::max<int64_t>(1, experts / 4); }
  // The method's typed options; names not in params keep the struct's defaults.
  template <class Options>
  Options method_options() const {
    return options_from<Options>(params);
  }
};

}  // namespace moebench::models
