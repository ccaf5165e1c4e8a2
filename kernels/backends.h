// Fast backends of the expert block, behind the dispatcher in kernels/expert_ops.cpp. Each has
// exactly the contract of the reference expert_swiglu (kernels/expert_ops.h), gradients included.
#pragma once

#include <torch/torch.h>

#include "kernels/expert_ops.h"

namespace moebench::kernels {

// kernels/expert_ops_cpu.cpp: CPU tensors, float32 or float64.
torch::Tensor expert_swiglu_cpu(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                                bool gate_in_per_pair, const ExpertWeights& w, const Routing& r);

#ifdef MOEBENCH_WITH_CUDA
// kernels/expert_ops_cuda.cpp over kernels/cuda/*.cu: CUDA tensors, float32 or bfloat16.
torch::Tensor expert_swiglu_cuda(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                                 bool gate_in_per_pair, const ExpertWeights& w, const Routing& r);
// Routing from a [N, E] mask on the GPU (kernels/cuda): same order and values as
// routing_from_mask; one counted host sync for the pair total.
Routing routing_from_mask_cuda(const torch::Tensor& mask_NE, const torch::Tensor& weights_NE);
#endif

}  // namespace moebench::kernels
