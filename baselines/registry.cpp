// The method list and the merged option table (shared design: "A method is one file").
#include "baselines/registry.h"

#include <stdexcept>

#include "baselines/aoe.h"
#include "baselines/dense.h"
#include "baselines/remoe.h"
#include "baselines/self_routing.h"
#include "baselines/switch.h"
#include "baselines/topk.h"
#include "models/method.h"
#include "models/routing_free.h"

namespace moebench::baselines {

const std::vector<const models::MethodSpec*>& all_methods() {
  static const std::vector<const models::MethodSpec*> methods = {
      &models::routing_free_method(),
      &topk_method(),
      &switch_method(),
      &remoe_method(),
      &aoe_method(),
      &self_routing_method(),
      &dense_method(),
  };
  return methods;
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto* m : all_methods()) names.push_back(m->name);
  return names;
}

bool has_method(const std::string& name) {
  for (const auto* m : all_methods()) {
    if (m->name == name) return true;
  }
  return false;
}

const models::MethodSpec& find_method(const std::string& name) {
  for (const auto* m : all_methods()) {
    if (m->name == name) return *m;
  }
  std::string known;
  for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("moe.method '" + name +
                              "' is not a method of this build (known: " + known + ")");
}

namespace {

bool same_rule(const models::OptionRule& a, const models::OptionRule& b) {
  return a.lo == b.lo && a.hi == b.hi && a.lo_open == b.lo_open && a.hi_open == b.hi_open &&
         a.choices == b.choices;
}

}  // namespace

const std::vector<models::OptionField>& method_option_fields() {
  static const std::vector<models::OptionField> fields = [] {
    std::vector<models::OptionField> merged;
    for (const auto* m : all_methods()) {
      for (const auto& f : m->options) {
        const models::OptionField* seen = nullptr;
        for (const auto& g : merged) {
          if (g.name == f.name) seen = &g;
        }
        if (!seen) {
          merged.push_back(f);
        } else if (!(seen->default_value == f.default_value) || !same_rule(seen->rule, f.rule) ||
                   seen->role != f.role) {
          throw std::logic_error("method '" + m->name + "' declares option moe." + f.name +
                                 " with another type, default or rule than an earlier method");
        }
      }
    }
    return merged;
  }();
  return fields;
}

std::vector<std::string> option_names_of(const std::string& method) {
  std::vector<std::string> names;
  for (const auto& f : find_method(method).options) names.push_back(f.name);
  return names;
}

std::string caveat_of(const std::string& method) { return find_method(method).caveat; }

std::string threshold_option_of(const std::string& method) {
  return find_method(method).threshold_option;
}

std::shared_ptr<models::RoutingPolicyImpl> make_policy(int64_t hidden,
                                                       const models::MoeOptions& opts,
                                                       double init_std) {
  const auto& m = find_method(opts.method);
  if (!m.routed()) throw std::invalid_argument("method '" + m.name + "' has no routing policy");
  return m.make_policy(hidden, opts, init_std);
}

std::unique_ptr<models::AuxController> make_controller(const models::MoeOptions& opts,
                                                       int64_t layers) {
  const auto& m = find_method(opts.method);
  return m.make_controller ? m.make_controller(opts, layers) : nullptr;
}

}  // namespace moebench::baselines
