// The dense baseline (METHODS.md §7): one SwiGLU FFN per block, no routing, as wide as the
// top-k model's active experts (iso_active) or all its experts (iso_param).
#pragma once

#include <string>

#include "models/method.h"

namespace moebench::baselines {

struct DenseOptions {
  std::string dense_width = "iso_active";  // iso_active = k·I, iso_param = E·I
  template <class F>
  void fields(F&& f) {
    f("dense_width", dense_width, models::one_of({"iso_active", "iso_param"}),
      "FFN width: iso_active = k*I (the MoE's active width), iso_param = E*I");
  }
};

const models::MethodSpec& dense_method();

}  // namespace moebench::baselines
