// Mixtral-style decoder LM shared by every method: embedding, pre-RMSNorm blocks with RoPE GQA
// attention and an MoE (or dense) FFN, final RMSNorm, untied head (METHODS.md "Paper
// configurations").
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "models/moe.h"

namespace moebench::models {

struct ModelOptions {
  int64_t vocab_size = 8192;
  int64_t hidden = 128;
  int64_t layers = 2;
  int64_t q_heads = 4;
  int64_t kv_heads = 2;
  int64_t head_dim = 32;
  int64_t max_seq_len = 128;
  double rope_theta = 1e4;
  double norm_eps = 1e-5;
  double attn_dropout = 0.05;
  double init_std = 0.02;
  MoeOptions moe;
  // Builds each block's routing policy (the method's MethodSpec::make_policy). Null = the dense
  // baseline: one SwiGLU FFN per block, dense_intermediate wide.
  std::function<std::shared_ptr<RoutingPolicyImpl>(int64_t hidden, const MoeOptions&,
                                                   double init_std)>
      make_policy;
  int64_t dense_intermediate = 0;
};

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelOptions& o);
  // x [B, T, H]; cos/sin [T, head_dim]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  torch::Tensor wq, wk, wv, wo;
  int64_t q_heads, kv_heads, head_dim;
  double dropout;
};
TORCH_MODULE(Attention);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelOptions& o);
  // valid_N: optional [B*T] real-token mask for the MoE policy (see MoeLayerImpl::forward).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        std::vector<PolicyOutput>* routing, const torch::Tensor& valid_N = {});
  RmsNorm attn_norm{nullptr}, ffn_norm{nullptr};
  Attention attn{nullptr};
  MoeLayer moe{nullptr};  // exactly one of moe / dense is set
  SwiGlu dense{nullptr};
};
TORCH_MODULE(Block);

struct ForwardOutput {
  torch::Tensor logits;               // [B, T, V]
  std::vector<PolicyOutput> routing;  // one per MoE layer
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelOptions& o);
  // mask_BT (optional, nonzero = real token) reaches every MoE layer's policy, so padding can
  // stay out of decisions that couple tokens (Switch capacity); undefined = all real.
  ForwardOutput forward(const torch::Tensor& input_ids_BT, const torch::Tensor& mask_BT = {});
  void set_theta(double theta);  // RF: the inference-time compute knob

  ModelOptions opts;
  torch::nn::Embedding embed{nullptr};
  std::vector<Block> blocks;
  RmsNorm final_norm{nullptr};
  torch::Tensor head_VH;
  torch::Tensor rope_cos, rope_sin;  // buffers [max_seq_len, head_dim]
};
TORCH_MODULE(Transformer);

// Parameter counts: all, and without the token embedding and the output head (the paper's
// "non-embedding" figure).
struct ParamCount {
  int64_t total = 0;
  int64_t non_embedding = 0;
};
ParamCount count_parameters(TransformerImpl& model);

// Cross-entropy over positions where mask_BT is 1 (padding excluded), mean over real tokens.
torch::Tensor masked_lm_loss(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT,
                             const torch::Tensor& mask_BT);

}  // namespace moebench::models
