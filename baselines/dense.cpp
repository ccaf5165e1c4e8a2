// The dense baseline's registry entry: its width rule, FLOPs and `moebench layer` weights
// (the FFN itself is models::SwiGlu, the same module an always-on single expert equals).
#include "baselines/dense.h"

namespace moebench::baselines {

const models::MethodSpec& dense_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "dense";
    m.title = "dense";
    m.summary =
        "Dense SwiGLU FFN (METHODS.md §7): y = D (SiLU(G x) * U x), one FFN for every token, no\n"
        "routing; I is the FFN width (in training moe.dense_width: iso_active = k*I_expert,\n"
        "iso_param = E*I_expert); OUT has no scores";
    m.options = models::option_schema<DenseOptions>();
    m.ffn_width = [](const models::MoeOptions& o) {
      return o.method_options<DenseOptions>().dense_width == "iso_param"
                 ? o.experts * o.intermediate
                 : o.effective_top_k() * o.intermediate;
    };
    // Every weight of the one FFN does one MAC per token.
    m.macs = [ffn_width = m.ffn_width](const models::MoeOptions& o, int64_t hidden, double) {
      return models::FfnMacs{0, 3.0 * static_cast<double>(hidden * ffn_width(o))};
    };
    m.flops_variants = {"moe.dense_width=iso_active", "moe.dense_width=iso_param"};
    m.layer_weights = {{"G", {"I", "H"}, "gate projection (SiLU branch)", "w_gate"},
                       {"U", {"I", "H"}, "up projection", "w_up"},
                       {"D", {"H", "I"}, "down projection", "w_down"}};
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines
