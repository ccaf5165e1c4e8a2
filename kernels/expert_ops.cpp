// Reference expert ops in plain LibTorch (autograd does the backward) and the dispatcher.
// Fast CPU and CUDA versions must match these on every shape (kernels/tests).
#include "kernels/expert_ops.h"

#include <stdexcept>

#include "kernels/backends.h"

namespace moebench::kernels {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::kReference:
      return "reference";
    case Backend::kCpu:
      return "cpu";
    case Backend::kCuda:
      return "cuda";
  }
  return "?";
}

namespace {

#ifdef MOEBENCH_WITH_CUDA
constexpr bool kCudaBuilt = true;
#else
constexpr bool kCudaBuilt = false;
#endif

bool cpu_backend_takes(const torch::Device& device, torch::ScalarType dtype) {
  return device.is_cpu() && (dtype == torch::kFloat || dtype == torch::kDouble);
}

bool cuda_backend_takes(const torch::Device& device, torch::ScalarType dtype) {
  return kCudaBuilt && device.is_cuda() && (dtype == torch::kFloat || dtype == torch::kBFloat16);
}

std::string describe(const torch::Device& device, torch::ScalarType dtype) {
  return device.str() + " " + c10::toString(dtype);
}

}  // namespace

void check_backend_request(const std::string& requested) {
  if (requested == "auto" || requested == "reference" || requested == "cpu") return;
  if (requested == "cuda") {
    if (kCudaBuilt) return;
    throw std::invalid_argument(
        "kernels.backend=cuda: this build has no CUDA kernels (configure with nvcc available or "
        "-DMOEBENCH_WITH_CUDA=ON); use kernels.backend=auto, cpu or reference");
  }
  throw std::invalid_argument("kernels.backend='" + requested +
                              "' is not one of auto, reference, cpu, cuda");
}

Backend resolve_backend(const std::string& requested, const torch::Device& device,
                        torch::ScalarType dtype) {
  check_backend_request(requested);
  if (requested == "reference") return Backend::kReference;
  if (requested == "auto") {
    if (cuda_backend_takes(device, dtype)) return Backend::kCuda;
    if (cpu_backend_takes(device, dtype)) return Backend::kCpu;
    return Backend::kReference;
  }
  if (requested == "cpu") {
    if (cpu_backend_takes(device, dtype)) return Backend::kCpu;
    throw std::invalid_argument("kernels.backend=cpu takes CPU float32/float64 tensors, got " +
                                describe(device, dtype) +
                                "; use kernels.backend=auto (picks one that fits) or reference");
  }
  // "cuda", built (check_backend_request threw otherwise)
  if (cuda_backend_takes(device, dtype)) return Backend::kCuda;
  throw std::invalid_argument("kernels.backend=cuda takes CUDA float32/bfloat16 tensors, got " +
                              describe(device, dtype) +
                              "; use kernels.backend=auto (picks one that fits) or reference");
}

torch::Tensor gather_rows(const torch::Tensor& src_RK, const torch::Tensor& index_A) {
  return src_RK.index_select(0, index_A);
}

torch::Tensor grouped_mm(const torch::Tensor& x_AK, const torch::Tensor& w_EOK,
                         const torch::Tensor& expert_offsets) {
  const auto off = expert_offsets.to(torch::kCPU);  // the one host sync of the reference path
  const auto* o = off.data_ptr<int64_t>();
  const int64_t E = w_EOK.size(0);
  std::vector<torch::Tensor> parts;
  parts.reserve(E);
  for (int64_t e = 0; e < E; ++e) {
    if (o[e + 1] == o[e]) continue;
    parts.push_back(torch::mm(x_AK.slice(0, o[e], o[e + 1]), w_EOK[e].t()));
  }
  if (parts.empty()) return x_AK.new_zeros({0, w_EOK.size(1)});
  return torch::cat(parts, 0);
}

torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const torch::Tensor& token_A, int64_t num_tokens) {
  const auto acc = at::promote_types(out_AH.scalar_type(), torch::kFloat);  // fp32 or wider
  const auto weighted = out_AH.to(acc) * gate_A.to(acc).unsqueeze(1);
  auto y = torch::zeros({num_tokens, out_AH.size(1)}, weighted.options());
  return y.index_add(0, token_A, weighted).to(out_AH.scalar_type());
}

torch::Tensor expert_swiglu(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                            bool gate_in_per_pair, const ExpertWeights& w, const Routing& r,
                            Backend backend) {
  if (backend == Backend::kCpu) return expert_swiglu_cpu(x_NH, gate_in, gate_in_per_pair, w, r);
  if (backend == Backend::kCuda) {
#ifdef MOEBENCH_WITH_CUDA
    return expert_swiglu_cuda(x_NH, gate_in, gate_in_per_pair, w, r);
#else
    throw std::invalid_argument(
        "expert backend 'cuda' is not built (no CUDA kernels in this build); resolve the backend "
        "with resolve_backend(\"auto\", ...)");
#endif
  }
  const auto x_A = gather_rows(x_NH, r.token);
  const auto g_A = gather_rows(gate_in, gate_in_per_pair ? r.flat_index() : r.token);
  const auto h = torch::silu(grouped_mm(g_A, w.gate_EIK, r.expert_offsets)) *
                 grouped_mm(x_A, w.up_EIH, r.expert_offsets);
  const auto out = grouped_mm(h, w.down_EHI, r.expert_offsets);
  return combine(out, r.gate, r.token, r.num_tokens);
}

double expert_flops(int64_t pairs, int64_t H, int64_t I, int64_t K) {
  return 2.0 * static_cast<double>(pairs) * (static_cast<double>(I) * K + 2.0 * H * I);
}

}  // namespace moebench::kernels
