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
  LayerInit layer_init = LayerInit::kNormal;
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
  // The weights are allocated, not drawn: TransformerImpl draws them from its backbone generator.
  explicit AttentionImpl(const ModelOptions& o);
  // x [B, T, H]; cos/sin [T, head_dim] or [B, 1, T, head_dim]; allowed_BTT (optional, bool):
  // which keys each query attends to, undefined = causal. query_BQ (optional, int64): only these
  // positions of each row ask (keys and values still come from all T); the result is then
  // [B, Q, H] instead of [B, T, H].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed_BTT = {}, const torch::Tensor& query_BQ = {});
  torch::Tensor wq, wk, wv, wo;
  int64_t q_heads, kv_heads, head_dim;
  double dropout;
};
TORCH_MODULE(Attention);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelOptions& o);
  // valid_N: optional [B*T] real-token mask for the MoE policy (see MoeLayerImpl::forward).
  // query_BQ: as in AttentionImpl::forward; the block's output is then [B, Q, H] (the FFN runs on
  // those positions only, valid_N is read at them).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        std::vector<PolicyOutput>* routing, const torch::Tensor& valid_N = {},
                        const torch::Tensor& allowed_BTT = {}, const torch::Tensor& query_BQ = {});
  RmsNorm attn_norm{nullptr}, ffn_norm{nullptr};
  Attention attn{nullptr};
  MoeLayer moe{nullptr};  // exactly one of moe / dense is set
  SwiGlu dense{nullptr};
};
TORCH_MODULE(Block);

// Several sequences sharing a prefix, packed into one row: the zero-shot scorer puts an item's
// context once and then each choice, every choice attending to the context and its own earlier
// tokens at the positions it would have right after the context. Each token's states equal
// those of the unpacked sequence (up to float summation order).
// outputs_BQ (optional) names the only positions whose final states the caller reads (the scored
// ones): the last block then computes its queries, attention output and FFN there alone.
struct PackedLayout {
  torch::Tensor positions_BT;  // int64: each token's RoPE position (undefined: 0..T-1)
  torch::Tensor allowed_BTT;   // bool [B, query, key]: the keys a query attends to (undefined:
                               // causal)
  torch::Tensor outputs_BQ;    // int64 [B, Q]: positions per row ([B, Q, H] out); undefined: all
};

struct ForwardOutput {
  torch::Tensor logits;               // [B, T, V] (forward only)
  torch::Tensor hidden;               // [B, T, H] after the final norm (trunk only)
  std::vector<PolicyOutput> routing;  // one per MoE layer
};

// Initialisation order, so that runs of different methods with the same seed share what their
// shapes allow: a backbone seed is drawn from the global generator first; the embedding, every
// block's attention and the head are then drawn from a generator of that seed, in that order, and
// the MoE (or dense) FFN weights from the global generator. Two methods with equal backbone sizes
// and the same layer init start from the same embedding, attention and head.
class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelOptions& o);
  // mask_BT (optional, nonzero = real token) reaches every MoE layer's policy, so padding can
  // stay out of decisions that couple tokens (Switch capacity); undefined = all real.
  ForwardOutput forward(const torch::Tensor& input_ids_BT, const torch::Tensor& mask_BT = {});
  // Everything but the head: `hidden` holds the final-norm states ([B, Q, H] with
  // packed->outputs_BQ), logits stay undefined. A packed row may be longer than the window; its
  // positions may not.
  // head_logits(hidden rows) then gives the logits of only the positions a caller needs (the
  // zero-shot scorer: a V-wide head over every position costs as much as the rest of a small
  // model).
  ForwardOutput trunk(const torch::Tensor& input_ids_BT, const torch::Tensor& mask_BT = {},
                      const PackedLayout* packed = nullptr);
  torch::Tensor head_logits(const torch::Tensor& hidden_NH) const;
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
// The same cross-entropy summed over the real tokens (fp32): the trainer divides the sum over a
// step's micro-batches by the step's real tokens (METHODS.md: total NLL / total real tokens).
torch::Tensor masked_lm_nll_sum(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT,
                                const torch::Tensor& mask_BT);

}  // namespace moebench::models
