// Fast CPU backend of the expert block (DESIGN.md "Kernels"): one gather, per-expert BLAS calls
// into preallocated slices, fused SwiGLU, a deterministic per-token combine, and a hand-written
// backward that recomputes the SwiGLU product instead of keeping it.
#include "kernels/expert_ops_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/backends.h"

namespace moebench::kernels {
namespace cpu {
namespace {

// About 32k elements per parallel task: below that, thread start-up costs more than it saves.
int64_t row_grain(int64_t row_len) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_len));
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void check_float_matrix(const torch::Tensor& t, const char* what) {
  require(t.defined(), std::string(what) + " is undefined");
  require(t.device().is_cpu(),
          std::string(what) + " is on " + t.device().str() +
              "; the cpu expert backend takes CPU tensors (use kernels.backend=auto or cuda)");
  require(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble,
          std::string(what) + " has dtype " + std::string(c10::toString(t.scalar_type())) +
              "; the cpu expert backend takes float32 or float64 (use kernels.backend=reference "
              "for other dtypes)");
}

// Offsets [E+1] that partition exactly A pairs; returns a contiguous CPU int64 copy to read from.
torch::Tensor checked_offsets(const torch::Tensor& off, int64_t num_experts, int64_t pairs) {
  require(off.defined() && off.dim() == 1 && off.scalar_type() == torch::kLong,
          "expert_offsets must be a 1-D int64 tensor [E+1]");
  require(off.size(0) == num_experts + 1,
          "expert_offsets has " + std::to_string(off.size(0)) + " entries but there are " +
              std::to_string(num_experts) + " experts (expected E+1)");
  auto o = off.to(torch::kCPU).contiguous();
  const auto* p = o.data_ptr<int64_t>();
  require(p[0] == 0 && p[num_experts] == pairs,
          "expert_offsets must run from 0 to the pair count " + std::to_string(pairs) + ", got " +
              std::to_string(p[0]) + ".." + std::to_string(p[num_experts]));
  for (int64_t e = 0; e < num_experts; ++e) {
    require(p[e + 1] >= p[e], "expert_offsets must be non-decreasing (expert " + std::to_string(e) +
                                  " has a negative pair count)");
  }
  return o;
}

torch::Tensor checked_index(const torch::Tensor& idx, int64_t limit, const char* what) {
  require(idx.defined() && idx.dim() == 1 && idx.scalar_type() == torch::kLong,
          std::string(what) + " must be a 1-D int64 tensor");
  auto i = idx.to(torch::kCPU).contiguous();
  const auto* p = i.data_ptr<int64_t>();
  for (int64_t a = 0; a < i.size(0); ++a) {
    require(p[a] >= 0 && p[a] < limit, std::string(what) + "[" + std::to_string(a) +
                                           "] = " + std::to_string(p[a]) + " is outside [0, " +
                                           std::to_string(limit) + ")");
  }
  return i;
}

// Row copy with an already validated index.
void gather_rows_into(const torch::Tensor& src_RK, const int64_t* index, torch::Tensor& out_AK) {
  const int64_t A = out_AK.size(0);
  const size_t bytes = static_cast<size_t>(src_RK.size(1)) * src_RK.element_size();
  if (A == 0 || bytes == 0) return;
  const auto* s = static_cast<const char*>(src_RK.data_ptr());
  auto* d = static_cast<char*>(out_AK.data_ptr());
  at::parallel_for(0, A, row_grain(src_RK.size(1)), [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) std::memcpy(d + a * bytes, s + index[a] * bytes, bytes);
  });
}

torch::Tensor gather(const torch::Tensor& src_RK, const torch::Tensor& index_A) {
  auto out = torch::empty({index_A.size(0), src_RK.size(1)}, src_RK.options());
  gather_rows_into(src_RK, index_A.data_ptr<int64_t>(), out);
  return out;
}

// out[a] = w[e] @ x[a]: one GEMM per non-empty segment, straight into its rows of out.
void mm_forward_into(const torch::Tensor& x_AK, const torch::Tensor& w_EOK, const int64_t* off,
                     torch::Tensor& out_AO) {
  for (int64_t e = 0; e < w_EOK.size(0); ++e) {
    if (off[e + 1] == off[e]) continue;
    auto o = out_AO.slice(0, off[e], off[e + 1]);
    at::mm_out(o, x_AK.slice(0, off[e], off[e + 1]), w_EOK[e].t());
  }
}

// dx[a] = w[e]^T @ dout[a].
void mm_input_grad_into(const torch::Tensor& dout_AO, const torch::Tensor& w_EOK,
                        const int64_t* off, torch::Tensor& dx_AK) {
  for (int64_t e = 0; e < w_EOK.size(0); ++e) {
    if (off[e + 1] == off[e]) continue;
    auto o = dx_AK.slice(0, off[e], off[e + 1]);
    at::mm_out(o, dout_AO.slice(0, off[e], off[e + 1]), w_EOK[e]);
  }
}

// dw[e] = dout_seg^T @ x_seg, the whole segment in one GEMM (no split-K, nothing to reduce).
void mm_weight_grad_into(const torch::Tensor& dout_AO, const torch::Tensor& x_AK,
                         const int64_t* off, torch::Tensor& dw_EOK) {
  for (int64_t e = 0; e < dw_EOK.size(0); ++e) {
    auto o = dw_EOK[e];
    if (off[e + 1] == off[e]) {
      o.zero_();
      continue;
    }
    at::mm_out(o, dout_AO.slice(0, off[e], off[e + 1]).t(), x_AK.slice(0, off[e], off[e + 1]));
  }
}

// y[n] = sum_{a of n, increasing} gate[a] * src[a]; gate null means 1. Fixed order per row.
void combine_into(const torch::Tensor& src_AH, const torch::Tensor& gate_A, const TokenCsr& csr,
                  torch::Tensor& y_NH) {
  const int64_t N = y_NH.size(0), H = y_NH.size(1);
  if (N == 0 || H == 0) return;
  const auto* co = csr.offsets_N1.data_ptr<int64_t>();
  const auto* cp = csr.pairs_A.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(src_AH.scalar_type(), "moebench_cpu_combine", [&] {
    const scalar_t* src = src_AH.data_ptr<scalar_t>();
    const scalar_t* g = gate_A.defined() ? gate_A.data_ptr<scalar_t>() : nullptr;
    scalar_t* y = y_NH.data_ptr<scalar_t>();
    at::parallel_for(0, N, row_grain(H), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        scalar_t* yr = y + n * H;
        std::fill(yr, yr + H, scalar_t(0));
        for (int64_t p = co[n]; p < co[n + 1]; ++p) {
          const int64_t a = cp[p];
          const scalar_t c = g ? g[a] : scalar_t(1);
          const scalar_t* sr = src + a * H;
          for (int64_t h = 0; h < H; ++h) yr[h] += c * sr[h];
        }
      }
    });
  });
}

}  // namespace

TokenCsr build_token_csr(const torch::Tensor& token_A, int64_t num_tokens) {
  require(num_tokens >= 0, "build_token_csr: num_tokens must be >= 0");
  const auto tok = checked_index(token_A, num_tokens, "routing token");
  const int64_t A = tok.size(0);
  const auto* t = tok.data_ptr<int64_t>();
  TokenCsr csr;
  csr.offsets_N1 = torch::zeros({num_tokens + 1}, torch::kLong);
  csr.pairs_A = torch::empty({A}, torch::kLong);
  auto* off = csr.offsets_N1.data_ptr<int64_t>();
  auto* pairs = csr.pairs_A.data_ptr<int64_t>();
  for (int64_t a = 0; a < A; ++a) ++off[t[a] + 1];
  for (int64_t n = 0; n < num_tokens; ++n) off[n + 1] += off[n];
  std::vector<int64_t> cursor(off, off + num_tokens);
  for (int64_t a = 0; a < A; ++a) pairs[cursor[t[a]]++] = a;  // increasing a: a stable sort
  return csr;
}

torch::Tensor gather_rows(const torch::Tensor& src_RK, const torch::Tensor& index_A) {
  check_float_matrix(src_RK, "gather_rows source");
  require(src_RK.dim() == 2, "gather_rows source must be 2-D");
  const auto idx = checked_index(index_A, src_RK.size(0), "gather_rows index");
  return gather(src_RK.contiguous(), idx);
}

namespace {
void check_grouped(const torch::Tensor& a_AX, const torch::Tensor& w_or_b, const char* op) {
  check_float_matrix(a_AX, op);
  check_float_matrix(w_or_b, op);
  require(a_AX.dim() == 2, std::string(op) + ": the pair operand must be 2-D [A, *]");
  require(a_AX.scalar_type() == w_or_b.scalar_type(),
          std::string(op) + ": both operands must have the same dtype");
}
}  // namespace

torch::Tensor grouped_mm_forward(const torch::Tensor& x_AK, const torch::Tensor& w_EOK,
                                 const torch::Tensor& expert_offsets) {
  check_grouped(x_AK, w_EOK, "grouped_mm_forward");
  require(w_EOK.dim() == 3 && w_EOK.size(2) == x_AK.size(1),
          "grouped_mm_forward: w must be [E, O, K] with K = x's width");
  const auto off = checked_offsets(expert_offsets, w_EOK.size(0), x_AK.size(0));
  auto out = torch::empty({x_AK.size(0), w_EOK.size(1)}, x_AK.options());
  mm_forward_into(x_AK.contiguous(), w_EOK.contiguous(), off.data_ptr<int64_t>(), out);
  return out;
}

torch::Tensor grouped_mm_input_grad(const torch::Tensor& dout_AO, const torch::Tensor& w_EOK,
                                    const torch::Tensor& expert_offsets) {
  check_grouped(dout_AO, w_EOK, "grouped_mm_input_grad");
  require(w_EOK.dim() == 3 && w_EOK.size(1) == dout_AO.size(1),
          "grouped_mm_input_grad: w must be [E, O, K] with O = dout's width");
  const auto off = checked_offsets(expert_offsets, w_EOK.size(0), dout_AO.size(0));
  auto dx = torch::empty({dout_AO.size(0), w_EOK.size(2)}, dout_AO.options());
  mm_input_grad_into(dout_AO.contiguous(), w_EOK.contiguous(), off.data_ptr<int64_t>(), dx);
  return dx;
}

torch::Tensor grouped_mm_weight_grad(const torch::Tensor& dout_AO, const torch::Tensor& x_AK,
                                     const torch::Tensor& expert_offsets, int64_t num_experts) {
  check_grouped(dout_AO, x_AK, "grouped_mm_weight_grad");
  require(x_AK.dim() == 2 && x_AK.size(0) == dout_AO.size(0),
          "grouped_mm_weight_grad: dout and x must have the same number of pairs");
  const auto off = checked_offsets(expert_offsets, num_experts, dout_AO.size(0));
  auto dw = torch::empty({num_experts, dout_AO.size(1), x_AK.size(1)}, dout_AO.options());
  mm_weight_grad_into(dout_AO.contiguous(), x_AK.contiguous(), off.data_ptr<int64_t>(), dw);
  return dw;
}

torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const TokenCsr& csr) {
  check_float_matrix(out_AH, "combine input");
  require(out_AH.dim() == 2 && csr.pairs_A.size(0) == out_AH.size(0),
          "combine: out must be [A, H] with A = the routing's pair count");
  torch::Tensor g;
  if (gate_A.defined()) {
    require(gate_A.dim() == 1 && gate_A.size(0) == out_AH.size(0), "combine: gate must be [A]");
    g = gate_A.to(out_AH.scalar_type()).contiguous();
  }
  auto y = torch::empty({csr.offsets_N1.size(0) - 1, out_AH.size(1)}, out_AH.options());
  combine_into(out_AH.contiguous(), g, csr, y);
  return y;
}

torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const torch::Tensor& token_A, int64_t num_tokens) {
  return combine(out_AH, gate_A, build_token_csr(token_A, num_tokens));
}

}  // namespace cpu

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Routing metadata the autograd function needs, already validated; never differentiated.
struct PairPlan {
  torch::Tensor token_A;     // [A] int64
  torch::Tensor gate_row_A;  // [A] int64: row of gate_in for each pair
  torch::Tensor offsets_E1;  // [E+1] int64, CPU
  cpu::TokenCsr csr;
  bool per_pair = false;  // gate_in rows are token * E + expert (low-rank gate)
};

// Forward saves x, gate_in, the weights, gate and the two [A, I] pre-activations; backward
// recomputes h = SiLU(gate_pre) * up_pre from them (one [A, I] buffer less per layer).
class ExpertSwiGluFunction : public torch::autograd::Function<ExpertSwiGluFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_NH,
                               const torch::Tensor& gate_in, const torch::Tensor& gate_A,
                               const torch::Tensor& w_gate, const torch::Tensor& w_up,
                               const torch::Tensor& w_down, const PairPlan& plan) {
    const int64_t A = plan.token_A.size(0), N = x_NH.size(0), H = x_NH.size(1);
    const int64_t I = w_up.size(1);
    const auto* off = plan.offsets_E1.data_ptr<int64_t>();
    const auto opts = x_NH.options();

    auto x_AH = torch::empty({A, H}, opts);
    cpu::gather_rows_into(x_NH, plan.token_A.data_ptr<int64_t>(), x_AH);
    auto g_AK = torch::empty({A, gate_in.size(1)}, opts);
    cpu::gather_rows_into(gate_in, plan.gate_row_A.data_ptr<int64_t>(), g_AK);

    auto gate_pre_AI = torch::empty({A, I}, opts);
    auto up_pre_AI = torch::empty({A, I}, opts);
    cpu::mm_forward_into(g_AK, w_gate, off, gate_pre_AI);
    cpu::mm_forward_into(x_AH, w_up, off, up_pre_AI);
    // ATen's silu is the vectorised (SIMD exp) kernel; the product is one more pass.
    auto h_AI = at::silu(gate_pre_AI);
    h_AI.mul_(up_pre_AI);

    auto out_AH = std::move(x_AH);  // x_A is no longer needed: reuse its [A, H] buffer
    cpu::mm_forward_into(h_AI, w_down, off, out_AH);
    auto y_NH = torch::empty({N, H}, opts);
    cpu::combine_into(out_AH, gate_A, plan.csr, y_NH);

    ctx->save_for_backward({x_NH, gate_in, gate_A, w_gate, w_up, w_down, gate_pre_AI, up_pre_AI});
    ctx->saved_data["token"] = plan.token_A;
    ctx->saved_data["gate_row"] = plan.gate_row_A;
    ctx->saved_data["offsets"] = plan.offsets_E1;
    ctx->saved_data["csr_offsets"] = plan.csr.offsets_N1;
    ctx->saved_data["csr_pairs"] = plan.csr.pairs_A;
    ctx->saved_data["per_pair"] = plan.per_pair;
    return y_NH;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x_NH = saved[0], &gate_in = saved[1], &gate_A = saved[2];
    const auto &w_gate = saved[3], &w_up = saved[4], &w_down = saved[5];
    const auto &gate_pre_AI = saved[6], &up_pre_AI = saved[7];
    const auto token_A = ctx->saved_data["token"].toTensor();
    const auto gate_row_A = ctx->saved_data["gate_row"].toTensor();
    const auto offsets = ctx->saved_data["offsets"].toTensor();
    cpu::TokenCsr csr{ctx->saved_data["csr_offsets"].toTensor(),
                      ctx->saved_data["csr_pairs"].toTensor()};
    const auto* off = offsets.data_ptr<int64_t>();

    const bool need_x = ctx->needs_input_grad(0), need_gin = ctx->needs_input_grad(1);
    const bool need_gate = ctx->needs_input_grad(2), need_G = ctx->needs_input_grad(3);
    const bool need_U = ctx->needs_input_grad(4), need_D = ctx->needs_input_grad(5);
    const bool need_up_branch = need_x || need_U;      // needs d up_pre
    const bool need_gate_branch = need_gin || need_G;  // needs d gate_pre
    const bool need_t = need_gate || need_up_branch || need_gate_branch;
    variable_list grads(7);
    if (!(need_t || need_D)) return grads;

    const int64_t A = token_A.size(0), H = x_NH.size(1), I = w_up.size(1);
    const auto opts = x_NH.options();
    const auto dy_NH = grad_outputs[0].contiguous();
    auto dy_AH = torch::empty({A, H}, opts);
    cpu::gather_rows_into(dy_NH, token_A.data_ptr<int64_t>(), dy_AH);

    // t = dy_A @ D_e (the gradient of h before the gate scale); d_gate[a] = <t_a, h_a>.
    torch::Tensor t_AI, hc_AI, d_gate_A;
    if (need_t) {
      t_AI = torch::empty({A, I}, opts);
      cpu::mm_input_grad_into(dy_AH, w_down, off, t_AI);
    }
    if (need_D) hc_AI = torch::empty({A, I}, opts);
    if (need_gate) d_gate_A = torch::empty({A}, opts);
    // In place: sig becomes d gate_pre, t becomes d up_pre (each element read before written).
    auto sig_AI = at::sigmoid(gate_pre_AI);
    AT_DISPATCH_FLOATING_TYPES(x_NH.scalar_type(), "moebench_cpu_swiglu_backward", [&] {
      const scalar_t* gp = gate_pre_AI.data_ptr<scalar_t>();
      const scalar_t* up = up_pre_AI.data_ptr<scalar_t>();
      const scalar_t* c = gate_A.data_ptr<scalar_t>();
      scalar_t* sg = sig_AI.data_ptr<scalar_t>();
      scalar_t* t = need_t ? t_AI.data_ptr<scalar_t>() : nullptr;
      scalar_t* hc = need_D ? hc_AI.data_ptr<scalar_t>() : nullptr;
      scalar_t* dg = need_gate ? d_gate_A.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, A, cpu::row_grain(I), [&](int64_t begin, int64_t end) {
        for (int64_t a = begin; a < end; ++a) {
          const int64_t o = a * I;
          const scalar_t ca = c[a];
          scalar_t dot = 0;
          for (int64_t i = 0; i < I; ++i) {
            const scalar_t s = sg[o + i], g = gp[o + i], u = up[o + i];
            const scalar_t silu = g * s;
            const scalar_t h = silu * u;
            if (hc) hc[o + i] = ca * h;
            if (t) {
              const scalar_t dh = ca * t[o + i];
              dot += t[o + i] * h;
              t[o + i] = dh * silu;                                            // d up_pre
              sg[o + i] = dh * u * s * (scalar_t(1) + g * (scalar_t(1) - s));  // d gate_pre
            }
          }
          if (dg) dg[a] = dot;
        }
      });
    });

    if (need_D) {
      grads[5] = torch::empty_like(w_down);
      cpu::mm_weight_grad_into(dy_AH, hc_AI, off, grads[5]);
    }
    if (need_gate) grads[2] = d_gate_A;
    if (need_U) {
      auto x_AH = torch::empty({A, H}, opts);
      cpu::gather_rows_into(x_NH, token_A.data_ptr<int64_t>(), x_AH);
      grads[4] = torch::empty_like(w_up);
      cpu::mm_weight_grad_into(t_AI, x_AH, off, grads[4]);
    }
    if (need_x) {
      auto dx_AH = std::move(dy_AH);  // dy_A is used up: reuse its buffer
      cpu::mm_input_grad_into(t_AI, w_up, off, dx_AH);
      grads[0] = torch::empty_like(x_NH);
      cpu::combine_into(dx_AH, torch::Tensor(), csr, grads[0]);
    }
    if (need_G) {
      auto g_AK = torch::empty({A, gate_in.size(1)}, opts);
      cpu::gather_rows_into(gate_in, gate_row_A.data_ptr<int64_t>(), g_AK);
      grads[3] = torch::empty_like(w_gate);
      cpu::mm_weight_grad_into(sig_AI, g_AK, off, grads[3]);
    }
    if (need_gin) {
      auto dg_AK = torch::empty({A, gate_in.size(1)}, opts);
      cpu::mm_input_grad_into(sig_AI, w_gate, off, dg_AK);
      if (!ctx->saved_data["per_pair"].toBool()) {
        grads[1] = torch::empty_like(gate_in);
        cpu::combine_into(dg_AK, torch::Tensor(), csr, grads[1]);
      } else {
        // Per-pair rows token*E + e are distinct (checked in expert_swiglu_cpu): a plain scatter.
        grads[1] = torch::zeros_like(gate_in);
        const auto* rows = gate_row_A.data_ptr<int64_t>();
        const size_t bytes = static_cast<size_t>(gate_in.size(1)) * gate_in.element_size();
        auto* d = static_cast<char*>(grads[1].data_ptr());
        const auto* s = static_cast<const char*>(dg_AK.data_ptr());
        for (int64_t a = 0; a < A; ++a) std::memcpy(d + rows[a] * bytes, s + a * bytes, bytes);
      }
    }
    return grads;
  }
};

}  // namespace

torch::Tensor expert_swiglu_cpu(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                                bool gate_in_per_pair, const ExpertWeights& w, const Routing& r) {
  using cpu::require;
  cpu::check_float_matrix(x_NH, "x");
  cpu::check_float_matrix(gate_in, "gate_in");
  cpu::check_float_matrix(w.gate_EIK, "expert gate weight");
  cpu::check_float_matrix(w.up_EIH, "expert up weight");
  cpu::check_float_matrix(w.down_EHI, "expert down weight");
  const auto dtype = x_NH.scalar_type();
  require(gate_in.scalar_type() == dtype && w.gate_EIK.scalar_type() == dtype &&
              w.up_EIH.scalar_type() == dtype && w.down_EHI.scalar_type() == dtype,
          "expert_swiglu_cpu: x, gate_in and the three expert weights must share one dtype");
  require(x_NH.dim() == 2 && gate_in.dim() == 2, "expert_swiglu_cpu: x and gate_in must be 2-D");
  const int64_t N = x_NH.size(0), H = x_NH.size(1);
  require(w.up_EIH.dim() == 3 && w.gate_EIK.dim() == 3 && w.down_EHI.dim() == 3,
          "expert_swiglu_cpu: expert weights must be 3-D [E, *, *]");
  const int64_t E = w.up_EIH.size(0), I = w.up_EIH.size(1), K = gate_in.size(1);
  require(w.up_EIH.size(2) == H, "expert up weight must be [E, I, H] with H = x's width");
  require(w.gate_EIK.size(0) == E && w.gate_EIK.size(1) == I && w.gate_EIK.size(2) == K,
          "expert gate weight must be [E, I, K] with K = gate_in's width");
  require(w.down_EHI.size(0) == E && w.down_EHI.size(1) == H && w.down_EHI.size(2) == I,
          "expert down weight must be [E, H, I]");
  require(r.num_tokens == N, "routing is for " + std::to_string(r.num_tokens) +
                                 " tokens but x has " + std::to_string(N) + " rows");
  require(r.num_experts == E, "routing is for " + std::to_string(r.num_experts) +
                                  " experts but the weights stack " + std::to_string(E));
  require(gate_in.size(0) == (gate_in_per_pair ? N * E : N),
          gate_in_per_pair ? "per-pair gate_in must have N*E rows (token * E + expert)"
                           : "gate_in must have one row per token");
  PairPlan plan;
  plan.per_pair = gate_in_per_pair;
  plan.token_A = cpu::checked_index(r.token, N, "routing token");
  const int64_t A = plan.token_A.size(0);
  require(r.gate.defined() && r.gate.dim() == 1 && r.gate.size(0) == A,
          "routing gate must be a defined [A] tensor");
  plan.offsets_E1 = cpu::checked_offsets(r.expert_offsets, E, A);
  plan.csr = cpu::build_token_csr(plan.token_A, N);
  if (gate_in_per_pair) {
    // Expert of each pair from the offsets; tokens strictly increase inside a segment (the
    // Routing contract), so the rows token*E + e are distinct and the backward may scatter.
    plan.gate_row_A = torch::empty({A}, torch::kLong);
    auto* rows = plan.gate_row_A.data_ptr<int64_t>();
    const auto* tok = plan.token_A.data_ptr<int64_t>();
    const auto* off = plan.offsets_E1.data_ptr<int64_t>();
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t a = off[e]; a < off[e + 1]; ++a) {
        require(a == off[e] || tok[a] > tok[a - 1],
                "routing pairs of expert " + std::to_string(e) +
                    " are not in strictly increasing token order (build Routing with "
                    "routing_from_mask or routing_from_topk)");
        rows[a] = tok[a] * E + e;
      }
    }
  } else {
    plan.gate_row_A = plan.token_A;  // same storage: the backward reduces per token
  }
  // Casting outside the function keeps the cast itself differentiable.
  const auto gate = r.gate.to(dtype).contiguous();
  return ExpertSwiGluFunction::apply(x_NH.contiguous(), gate_in.contiguous(), gate,
                                     w.gate_EIK.contiguous(), w.up_EIH.contiguous(),
                                     w.down_EHI.contiguous(), plan);
}

}  // namespace moebench::kernels
