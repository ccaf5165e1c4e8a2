// The one list of methods. Config, trainer, evaluator, flops, layer and reports find a method
// here by its moe.method name; adding a method = its file + one line in registry.cpp + tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/options.h"  // torch-free, like this header: the config reads it

namespace moebench::models {
struct MethodSpec;
class RoutingPolicyImpl;
class AuxController;
}  // namespace moebench::models

namespace moebench::baselines {

// Every method, in the order tables and reports list them.
const std::vector<const models::MethodSpec*>& all_methods();
std::vector<std::string> method_names();
// Throws std::invalid_argument naming the known methods for an unknown name.
const models::MethodSpec& find_method(const std::string& name);
bool has_method(const std::string& name);

// Every method's own options, merged by name: a key two methods both read (aux_coef,
// rho_target) appears once. Throws std::logic_error if two methods declare one name with a
// different type, default or rule (checked once, on first use).
const std::vector<models::OptionField>& method_option_fields();

// The names of the options `method` reads (its MethodSpec::options); throws like find_method.
std::vector<std::string> option_names_of(const std::string& method);

// What the method's file says every result of it must carry ("" = nothing), e.g. Self-Routing's
// "our reading of the abstract".
std::string caveat_of(const std::string& method);

// The option holding the method's inference-time threshold θ ("" = none).
std::string threshold_option_of(const std::string& method);

// The method's policy for one layer, and its controller (null when it has none).
std::shared_ptr<models::RoutingPolicyImpl> make_policy(int64_t hidden,
                                                       const models::MoeOptions& opts,
                                                       double init_std);
std::unique_ptr<models::AuxController> make_controller(const models::MoeOptions& opts,
                                                       int64_t layers);

}  // namespace moebench::baselines
