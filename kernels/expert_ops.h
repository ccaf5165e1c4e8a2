// Shared expert ops: every MoE method computes its experts through these, on the Routing value.
// Backends: reference (plain LibTorch, obviously right); fast cpu/cuda backends plug in here.
#pragma once

#include <torch/torch.h>

#include <string>

#include "kernels/routing.h"

namespace moebench::kernels {

enum class Backend { kReference, kCpu, kCuda };
const char* backend_name(Backend b);

// The backend that computes tensors of this device and dtype. "auto": cuda when this build has
// it and the tensors are on a GPU (float32/bfloat16), cpu for CPU float32/float64, reference
// otherwise (e.g. bfloat16 on the CPU). A named backend is forced: std::invalid_argument when
// this build lacks it or it cannot take that device or dtype.
Backend resolve_backend(const std::string& requested, const torch::Device& device,
                        torch::ScalarType dtype = torch::kFloat);
// Fails early (std::invalid_argument) on a name that is none of auto, reference, cpu, cuda, or
// on cuda in a build without it; device and dtype are checked later by resolve_backend.
void check_backend_request(const std::string& requested);

// SwiGLU expert weights, stacked over experts.
struct ExpertWeights {
  torch::Tensor gate_EIK;  // G_e [I, K]: K = H (full-rank gate) or r (low-rank B_e, fed z = A_e x)
  torch::Tensor up_EIH;    // U_e [I, H]
  torch::Tensor down_EHI;  // D_e [H, I]
};

// ---- the individual ops (reference semantics; fast backends must match them) ----------------
torch::Tensor gather_rows(const torch::Tensor& src_RK, const torch::Tensor& index_A);
// out[a] = w[e(a)] @ x[a] for the pairs a of expert e, segments given by offsets [E+1].
torch::Tensor grouped_mm(const torch::Tensor& x_AK, const torch::Tensor& w_EOK,
                         const torch::Tensor& expert_offsets);
// y[n] = sum over pairs a of token n of gate[a] * out[a]; fp32 accumulation; k_n = 0 gives 0.
torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const torch::Tensor& token_A, int64_t num_tokens);

// The whole expert block: y[n] = sum_a gate[a] * D_e (SiLU(G_e g_a) * U_e x_n).
// gate_in: [N, K] (full-rank: g_a = gate_in[token]) or, with gate_in_per_pair, [N*E, K]
// (low-rank: g_a = gate_in[token * E + expert], the already computed z_e = A_e x).
// kReference is plain LibTorch (autograd does the backward); kCpu / kCuda are the fast
// backends of kernels/backends.h with the same contract, gradients included.
torch::Tensor expert_swiglu(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                            bool gate_in_per_pair, const ExpertWeights& w, const Routing& r,
                            Backend backend);

// FLOPs of the expert block for A pairs (multiply-adds count 2): useful work only.
double expert_flops(int64_t pairs, int64_t H, int64_t I, int64_t K);

}  // namespace moebench::kernels
