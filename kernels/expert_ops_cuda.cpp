// CUDA backend of the expert block and of routing_from_mask: autograd around the raw kernels of
// kernels/cuda/expert_kernels.cuh, same contract as the reference (DESIGN.md "Kernels").
#ifdef MOEBENCH_WITH_CUDA

// Does LibTorch have CUDA? Its generated c10/cuda/impl/cuda_cmake_macros.h is installed only by
// CUDA builds of LibTorch (Debian's CPU-only libtorch-dev ships the other c10/cuda headers, but
// not that one, nor libc10_cuda). -DMOEBENCH_TORCH_CUDA=0 forces the fallback below.
#ifndef MOEBENCH_TORCH_CUDA
#if __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && __has_include(<ATen/cuda/CUDAContext.h>)
#define MOEBENCH_TORCH_CUDA 1
#else
#define MOEBENCH_TORCH_CUDA 0
#endif
#endif

#include <stdexcept>
#include <string>

#if MOEBENCH_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>
#endif

#include "kernels/backends.h"
#include "kernels/cuda/expert_kernels.cuh"

namespace moebench::kernels {
namespace {

// Where the kernels run. With a CUDA LibTorch: on LibTorch's current stream of the device (the
// one its own ops, the caching allocator and autograd's backward use; no legacy default stream),
// with LibTorch's cuBLAS handle, so that the process holds one cuBLAS and one CUDA runtime. With
// a CPU-only LibTorch (the Debian build; c10_cuda is not there to ask): the legacy default
// stream and our own cuBLAS handles, which is also LibTorch's stream unless a caller installed
// another one.
struct Launch {
  cudaStream_t stream = nullptr;
  cublasContext* blas = nullptr;  // null: the kernels' own handle per thread and device
};

#if MOEBENCH_TORCH_CUDA
// LibTorch's cuBLAS handle only when its CUDA major version is the toolkit's that built
// moebench_cuda: the same libcublas.so.<major> then serves both. Otherwise (e.g. a CUDA 13 nvcc
// beside a cu12x torch) two runtimes are loaded and a handle must not cross between them.
bool same_cuda_major_as_torch() {
  static const bool same = [] {
    const long torch_cudart = at::detail::getCUDAHooks().versionCUDART();
    const bool ok = torch_cudart / 1000 == CUDART_VERSION / 1000;
    if (!ok) {
      TORCH_WARN("moebench CUDA kernels were built with CUDA ", CUDART_VERSION,
                 " but LibTorch with CUDA ", torch_cudart,
                 ": two CUDA runtimes are loaded and the kernels use cuBLAS handles of their own; "
                 "build with the toolkit matching torch.version.cuda");
    }
    return ok;
  }();
  return same;
}
#endif

// Call with `device` current (after cuda::ScopedDevice): LibTorch's handle is per device.
Launch launch_on(const torch::Device& device) {
  Launch l;
#if MOEBENCH_TORCH_CUDA
  l.stream = at::cuda::getCurrentCUDAStream(device.index()).stream();
  if (same_cuda_major_as_torch()) l.blas = at::cuda::getCurrentCUDABlasHandle();
#else
  (void)device;
#endif
  return l;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::DType raw_dtype(const torch::Tensor& t, const char* what) {
  if (t.scalar_type() == torch::kFloat) return cuda::DType::kFloat32;
  if (t.scalar_type() == torch::kBFloat16) return cuda::DType::kBFloat16;
  throw std::invalid_argument(std::string("expert_swiglu_cuda: ") + what + " has dtype " +
                              std::string(c10::toString(t.scalar_type())) +
                              "; the CUDA backend supports float32 and bfloat16 (convert the "
                              "model, or use kernels.backend=reference)");
}

void check_on(const torch::Tensor& t, const char* what, const torch::Device& device) {
  if (!t.defined()) {
    throw std::invalid_argument(std::string("expert CUDA backend: ") + what + " is undefined");
  }
  if (t.device() != device) {
    throw std::invalid_argument(std::string("expert CUDA backend: ") + what + " is on " +
                                t.device().str() + " but the input is on " + device.str() +
                                "; move every tensor of the layer to the same CUDA device");
  }
}

void check_shape(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("expert_swiglu_cuda: " + message);
}

std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

const void* ptr(const torch::Tensor& t) { return t.data_ptr(); }
void* mut(torch::Tensor& t) { return t.data_ptr(); }
const int64_t* iptr(const torch::Tensor& t) { return t.data_ptr<int64_t>(); }

// Token CSR of the pairs (token_offsets [N+1], pairs_by_token [A]) for the per-token reductions.
std::pair<torch::Tensor, torch::Tensor> build_token_csr(const torch::Tensor& token_A, int64_t N,
                                                        const Launch& l) {
  const int64_t A = token_A.size(0);
  const auto long_opts = token_A.options().dtype(torch::kLong);
  auto offsets = torch::empty({N + 1}, long_opts);
  auto pairs = torch::empty({A}, long_opts);
  const size_t bytes = cuda::token_csr_workspace_bytes(A, N);
  auto ws = torch::empty({static_cast<int64_t>(bytes)}, token_A.options().dtype(torch::kByte));
  cuda::token_csr(iptr(token_A), A, N, offsets.data_ptr<int64_t>(), pairs.data_ptr<int64_t>(),
                  bytes ? ws.data_ptr() : nullptr, bytes, l.stream);
  return {offsets, pairs};
}

// y = sum over pairs of gate * D_e (SiLU(G_e g) * U_e x). Inputs: tensors first (so that
// needs_input_grad(i) indexes them), then the one non-tensor argument.
struct ExpertSwiGluCudaFunction : public torch::autograd::Function<ExpertSwiGluCudaFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& gate_in_in, const torch::Tensor& gate_A,
                               const torch::Tensor& w_gate_in, const torch::Tensor& w_up_in,
                               const torch::Tensor& w_down_in, const torch::Tensor& token_A,
                               const torch::Tensor& gate_row_A, const torch::Tensor& offsets,
                               bool gate_in_per_pair) {
    const auto device = x_in.device();
    const auto x = x_in.contiguous();
    const auto gate_in = gate_in_in.contiguous();
    const auto w_gate = w_gate_in.contiguous();
    const auto w_up = w_up_in.contiguous();
    const auto w_down = w_down_in.contiguous();
    const auto dtype = raw_dtype(x, "x_NH");
    for (const auto* t : {&gate_in, &w_gate, &w_up, &w_down}) {
      if (t->scalar_type() != x.scalar_type()) {
        throw std::invalid_argument(
            "expert_swiglu_cuda: x_NH, gate_in and the expert weights must share one dtype (got " +
            std::string(c10::toString(x.scalar_type())) + " and " +
            std::string(c10::toString(t->scalar_type())) + ")");
      }
    }
    const int64_t N = x.size(0), H = x.size(1);
    const int64_t E = w_gate.size(0), I = w_gate.size(1), K = w_gate.size(2);
    const int64_t A = token_A.size(0);
    check_shape(w_up.sizes() == torch::IntArrayRef({E, I, H}),
                "up_EIH is " + shape_str(w_up) + ", expected [E, I, H] = [" + std::to_string(E) +
                    ", " + std::to_string(I) + ", " + std::to_string(H) + "]");
    check_shape(w_down.sizes() == torch::IntArrayRef({E, H, I}),
                "down_EHI is " + shape_str(w_down) + ", expected [E, H, I]");
    check_shape(gate_in.dim() == 2 && gate_in.size(1) == K &&
                    gate_in.size(0) == (gate_in_per_pair ? N * E : N),
                "gate_in is " + shape_str(gate_in) + ", expected " +
                    (gate_in_per_pair ? "[N*E, K] (per pair)" : "[N, K]") +
                    " with K = " + std::to_string(K) + " (gate_EIK's last dim)");
    check_shape(gate_A.dim() == 1 && gate_A.size(0) == A && gate_row_A.size(0) == A,
                "routing gate must be [A] like routing token");
    check_shape(offsets.dim() == 1 && offsets.size(0) == E + 1,
                "expert_offsets is " + shape_str(offsets) +
                    ", expected [E+1] with E = " + std::to_string(E));

    cuda::ScopedDevice guard(device.index());
    const Launch l = launch_on(device);
    // The one counted host sync of the expert block: the GEMM loop needs the segment bounds on
    // the host. Kept for the backward, which therefore syncs no more.
    const auto host_offsets = offsets.to(torch::kCPU, torch::kLong).contiguous();
    {
      const int64_t* o = host_offsets.data_ptr<int64_t>();
      bool ok = o[0] == 0 && o[E] == A;
      for (int64_t e = 0; e < E && ok; ++e) ok = o[e] <= o[e + 1];
      check_shape(ok, "expert_offsets must start at 0, never decrease and end at A = " +
                          std::to_string(A) + " (build the Routing with routing_from_mask/topk)");
    }

    const auto gate_f = gate_A.to(torch::kFloat).contiguous();
    const auto [token_offsets, pairs_by_token] = build_token_csr(token_A, N, l);
    const auto act = x.options();

    auto x_A = torch::empty({A, H}, act);
    cuda::gather_rows(ptr(x), iptr(token_A), A, H, mut(x_A), dtype, l.stream);
    auto g_A = torch::empty({A, K}, act);
    cuda::gather_rows(ptr(gate_in), iptr(gate_row_A), A, K, mut(g_A), dtype, l.stream);
    const int64_t* ho = host_offsets.data_ptr<int64_t>();
    auto gate_pre = torch::empty({A, I}, act);
    cuda::grouped_mm_forward(ptr(g_A), ptr(w_gate), ho, E, I, K, mut(gate_pre), dtype, l.stream,
                             l.blas);
    auto up = torch::empty({A, I}, act);
    cuda::grouped_mm_forward(ptr(x_A), ptr(w_up), ho, E, I, H, mut(up), dtype, l.stream, l.blas);
    auto h = torch::empty({A, I}, act);
    cuda::swiglu_forward(ptr(gate_pre), ptr(up), A, I, mut(h), dtype, l.stream);
    auto out = torch::empty({A, H}, act);
    cuda::grouped_mm_forward(ptr(h), ptr(w_down), ho, E, H, I, mut(out), dtype, l.stream, l.blas);
    auto y = torch::empty({N, H}, act);
    cuda::token_reduce(ptr(out), gate_f.data_ptr<float>(), iptr(token_offsets),
                       iptr(pairs_by_token), N, H, mut(y), dtype, l.stream);

    // x_A and g_A are cheap to gather again; h is recomputed from gate_pre and up.
    ctx->save_for_backward({x, gate_in, w_gate, w_up, w_down, token_A, gate_row_A, gate_f, gate_pre,
                            up, token_offsets, pairs_by_token});
    ctx->saved_data["host_offsets"] = host_offsets;
    ctx->saved_data["per_pair"] = gate_in_per_pair;
    ctx->saved_data["gate_dtype"] = static_cast<int64_t>(gate_A.scalar_type());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& gate_in = saved[1];
    const auto& w_gate = saved[2];
    const auto& w_up = saved[3];
    const auto& w_down = saved[4];
    const auto& token_A = saved[5];
    const auto& gate_row_A = saved[6];
    const auto& gate_f = saved[7];
    const auto& gate_pre = saved[8];
    const auto& up = saved[9];
    const auto& token_offsets = saved[10];
    const auto& pairs_by_token = saved[11];
    const auto host_offsets = ctx->saved_data["host_offsets"].toTensor();
    const bool per_pair = ctx->saved_data["per_pair"].toBool();
    const auto gate_dtype = static_cast<torch::ScalarType>(ctx->saved_data["gate_dtype"].toInt());

    const auto dtype = raw_dtype(x, "x_NH");
    const int64_t N = x.size(0), H = x.size(1);
    const int64_t E = w_gate.size(0), I = w_gate.size(1), K = w_gate.size(2);
    const int64_t A = token_A.size(0);
    const int64_t* ho = host_offsets.data_ptr<int64_t>();
    const auto act = x.options();
    cuda::ScopedDevice guard(x.device().index());
    const Launch l = launch_on(x.device());
    const auto dy = grad_outputs[0].to(x.scalar_type()).contiguous();

    // With y = sum_a D_e (s_a h_a): the unscaled d_hu = D_e^T dy[token], from which the fused
    // SwiGLU backward gets dL/ds_a = <d_hu, h>, the scaled d_gate_pre / d_up and s*h for dD.
    auto dy_A = torch::empty({A, H}, act);
    cuda::gather_rows(ptr(dy), iptr(token_A), A, H, mut(dy_A), dtype, l.stream);
    auto d_hu = torch::empty({A, I}, act);
    cuda::grouped_mm_input_grad(ptr(dy_A), ptr(w_down), ho, E, H, I, mut(d_hu), dtype, l.stream,
                                l.blas);
    auto d_gate_pre = torch::empty({A, I}, act);
    auto d_up = torch::empty({A, I}, act);
    auto h_scaled = torch::empty({A, I}, act);
    auto d_gate_f = torch::empty({A}, act.dtype(torch::kFloat));
    cuda::swiglu_backward(ptr(gate_pre), ptr(up), ptr(d_hu), gate_f.data_ptr<float>(), A, I,
                          mut(d_gate_pre), mut(d_up), mut(h_scaled), d_gate_f.data_ptr<float>(),
                          dtype, l.stream);
    d_hu = torch::Tensor();

    torch::Tensor d_x, d_gate_in, d_w_gate, d_w_up, d_w_down;
    if (ctx->needs_input_grad(5)) {
      d_w_down = torch::empty({E, H, I}, act);
      cuda::grouped_mm_weight_grad(ptr(dy_A), ptr(h_scaled), ho, E, H, I, mut(d_w_down), dtype,
                                   l.stream, l.blas);
    }
    dy_A = torch::Tensor();
    h_scaled = torch::Tensor();

    if (ctx->needs_input_grad(1) || ctx->needs_input_grad(3)) {  // gate branch
      auto g_A = torch::empty({A, K}, act);
      cuda::gather_rows(ptr(gate_in), iptr(gate_row_A), A, K, mut(g_A), dtype, l.stream);
      if (ctx->needs_input_grad(3)) {
        d_w_gate = torch::empty({E, I, K}, act);
        cuda::grouped_mm_weight_grad(ptr(d_gate_pre), ptr(g_A), ho, E, I, K, mut(d_w_gate), dtype,
                                     l.stream, l.blas);
      }
      if (ctx->needs_input_grad(1)) {
        auto d_g_A = torch::empty({A, K}, act);
        cuda::grouped_mm_input_grad(ptr(d_gate_pre), ptr(w_gate), ho, E, I, K, mut(d_g_A), dtype,
                                    l.stream, l.blas);
        if (per_pair) {  // rows token*E + expert are distinct: a plain scatter, rest stays 0
          d_gate_in = torch::zeros({N * E, K}, act);
          cuda::scatter_rows(ptr(d_g_A), iptr(gate_row_A), A, K, mut(d_gate_in), dtype, l.stream);
        } else {
          d_gate_in = torch::empty({N, K}, act);
          cuda::token_reduce(ptr(d_g_A), nullptr, iptr(token_offsets), iptr(pairs_by_token), N, K,
                             mut(d_gate_in), dtype, l.stream);
        }
      }
    }
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(4)) {  // up branch
      auto x_A = torch::empty({A, H}, act);
      cuda::gather_rows(ptr(x), iptr(token_A), A, H, mut(x_A), dtype, l.stream);
      if (ctx->needs_input_grad(4)) {
        d_w_up = torch::empty({E, I, H}, act);
        cuda::grouped_mm_weight_grad(ptr(d_up), ptr(x_A), ho, E, I, H, mut(d_w_up), dtype, l.stream,
                                     l.blas);
      }
      if (ctx->needs_input_grad(0)) {
        auto d_x_A = torch::empty({A, H}, act);
        cuda::grouped_mm_input_grad(ptr(d_up), ptr(w_up), ho, E, I, H, mut(d_x_A), dtype, l.stream,
                                    l.blas);
        d_x = torch::empty({N, H}, act);
        cuda::token_reduce(ptr(d_x_A), nullptr, iptr(token_offsets), iptr(pairs_by_token), N, H,
                           mut(d_x), dtype, l.stream);
      }
    }
    const auto d_gate = ctx->needs_input_grad(2) ? d_gate_f.to(gate_dtype) : torch::Tensor();
    // One entry per forward argument: the routing metadata and the flag get none.
    return {d_x,      d_gate_in,       d_gate,          d_w_gate,        d_w_up,
            d_w_down, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor expert_swiglu_cuda(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                                 bool gate_in_per_pair, const ExpertWeights& w, const Routing& r) {
  if (!x_NH.defined() || !x_NH.is_cuda() || x_NH.dim() != 2) {
    throw std::invalid_argument(
        "expert_swiglu_cuda: x_NH must be a 2-D CUDA tensor [N, H]; move the model to the GPU or "
        "use kernels.backend=reference/cpu");
  }
  const auto device = x_NH.device();
  check_on(gate_in, "gate_in", device);
  check_on(w.gate_EIK, "gate_EIK", device);
  check_on(w.up_EIH, "up_EIH", device);
  check_on(w.down_EHI, "down_EHI", device);
  check_on(r.token, "routing token", device);
  check_on(r.expert, "routing expert", device);
  check_on(r.gate, "routing gate", device);
  check_on(r.expert_offsets, "routing expert_offsets", device);
  check_shape(w.gate_EIK.dim() == 3 && w.up_EIH.dim() == 3 && w.down_EHI.dim() == 3,
              "expert weights must be 3-D [E, ., .]");
  check_shape(r.num_tokens == x_NH.size(0) && r.num_experts == w.gate_EIK.size(0),
              "routing is for " + std::to_string(r.num_tokens) + " tokens and " +
                  std::to_string(r.num_experts) + " experts, but x_NH has " +
                  std::to_string(x_NH.size(0)) + " rows and the weights " +
                  std::to_string(w.gate_EIK.size(0)) + " experts");
  const auto token = r.token.to(torch::kLong).contiguous();
  const auto gate_row = gate_in_per_pair ? r.flat_index().to(torch::kLong).contiguous() : token;
  return ExpertSwiGluCudaFunction::apply(x_NH, gate_in, r.gate, w.gate_EIK, w.up_EIH, w.down_EHI,
                                         token, gate_row, r.expert_offsets, gate_in_per_pair);
}

Routing routing_from_mask_cuda(const torch::Tensor& mask_NE, const torch::Tensor& weights_NE) {
  if (!mask_NE.defined() || mask_NE.dim() != 2 || !weights_NE.defined() ||
      weights_NE.sizes() != mask_NE.sizes()) {
    throw std::invalid_argument("routing_from_mask_cuda: mask and weights must both be [N, E]");
  }
  if (!mask_NE.is_cuda()) {
    throw std::invalid_argument("routing_from_mask_cuda: the mask is on " + mask_NE.device().str() +
                                "; it needs a CUDA tensor (use routing_from_mask for CPU tensors)");
  }
  check_on(weights_NE, "routing weights", mask_NE.device());
  cuda::ScopedDevice guard(mask_NE.device().index());
  const Launch l = launch_on(mask_NE.device());
  Routing r;
  r.num_tokens = mask_NE.size(0);
  r.num_experts = mask_NE.size(1);
  const int64_t N = r.num_tokens, E = r.num_experts;
  const auto mask = mask_NE.detach().to(torch::kBool).contiguous();  // 1 byte per entry
  const auto long_opts = mask.options().dtype(torch::kLong);
  const size_t bytes = cuda::routing_mask_workspace_bytes(N, E);
  auto ws = torch::empty({static_cast<int64_t>(bytes)}, mask.options().dtype(torch::kByte));
  r.expert_offsets = torch::empty({E + 1}, long_opts);
  const auto* mask_bytes = reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>());
  cuda::routing_mask_offsets(mask_bytes, N, E, r.expert_offsets.data_ptr<int64_t>(), ws.data_ptr(),
                             bytes, l.stream);
  // The one counted host sync: the pair total sizes the outputs.
  const int64_t A = r.expert_offsets[E].item<int64_t>();
  r.token = torch::empty({A}, long_opts);
  r.expert = torch::empty({A}, long_opts);
  cuda::routing_mask_compact(N, E, r.token.data_ptr<int64_t>(), r.expert.data_ptr<int64_t>(),
                             ws.data_ptr(), bytes, l.stream);
  // Differentiable in the weights (index_select's backward is a scatter to distinct rows).
  r.gate = weights_NE.reshape({-1}).index_select(0, r.flat_index());
  return r;
}

}  // namespace moebench::kernels

#endif  // MOEBENCH_WITH_CUDA
