// Decoder backbone: RMSNorm, RoPE (rotate-half convention), grouped-query causal attention
// (fused scaled_dot_product_attention on LibTorch 2.x, explicit softmax on 1.13), MoE FFN.
#include "models/transformer.h"

#include <torch/version.h>

#include <cmath>
#include <stdexcept>

namespace moebench::models {
namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t d = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, d, d), x.narrow(-1, 0, d)}, -1);
}

torch::Tensor init_normal(std::vector<int64_t> shape, double std) {
  return torch::randn(shape) * std;
}

}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double epsilon) : eps(epsilon) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const auto x32 = x.to(torch::kFloat);
  const auto y = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (y * weight.to(torch::kFloat)).to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelOptions& o)
    : q_heads(o.q_heads), kv_heads(o.kv_heads), head_dim(o.head_dim), dropout(o.attn_dropout) {
  wq = register_parameter("wq", init_normal({q_heads * head_dim, o.hidden}, o.init_std));
  wk = register_parameter("wk", init_normal({kv_heads * head_dim, o.hidden}, o.init_std));
  wv = register_parameter("wv", init_normal({kv_heads * head_dim, o.hidden}, o.init_std));
  wo = register_parameter("wo", init_normal({o.hidden, q_heads * head_dim}, o.init_std));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = torch::linear(x, wq).view({B, T, q_heads, head_dim}).transpose(1, 2);
  auto k = torch::linear(x, wk).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto v = torch::linear(x, wv).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (kv_heads != q_heads) {  // GQA: each kv head serves q_heads / kv_heads query heads
    k = k.repeat_interleave(q_heads / kv_heads, 1);
    v = v.repeat_interleave(q_heads / kv_heads, 1);
  }
  const double p = is_training() ? dropout : 0.0;
#if TORCH_VERSION_MAJOR >= 2
  auto o = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, p, /*is_causal=*/true);
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
  const auto causal = torch::ones({T, T}, torch::dtype(torch::kBool).device(x.device())).triu(1);
  scores = scores.masked_fill(causal, -std::numeric_limits<float>::infinity());
  auto attn = torch::softmax(scores.to(torch::kFloat), -1).to(q.scalar_type());
  if (p > 0) attn = torch::dropout(attn, p, /*train=*/true);
  auto o = torch::matmul(attn, v);
#endif
  return torch::linear(o.transpose(1, 2).reshape({B, T, q_heads * head_dim}), wo);
}

BlockImpl::BlockImpl(const ModelOptions& o) {
  attn_norm = register_module("attn_norm", RmsNorm(o.hidden, o.norm_eps));
  ffn_norm = register_module("ffn_norm", RmsNorm(o.hidden, o.norm_eps));
  attn = register_module("attn", Attention(o));
  if (!o.make_policy) {
    if (o.dense_intermediate < 1) {
      throw std::invalid_argument("a dense block needs dense_intermediate >= 1");
    }
    dense = register_module("dense", SwiGlu(o.hidden, o.dense_intermediate, o.init_std));
  } else {
    moe = register_module(
        "moe", MoeLayer(o.hidden, o.moe, o.make_policy(o.hidden, o.moe, o.init_std), o.init_std));
  }
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin, std::vector<PolicyOutput>* routing,
                                 const torch::Tensor& valid_N) {
  auto h = x + attn->forward(attn_norm->forward(x), cos, sin);
  const auto n = ffn_norm->forward(h);
  const auto flat = n.reshape({-1, n.size(-1)});
  const auto y = dense ? dense->forward(flat) : moe->forward(flat, routing, valid_N);
  return h + y.view(h.sizes());
}

TransformerImpl::TransformerImpl(const ModelOptions& o) : opts(o) {
  if (o.q_heads % o.kv_heads != 0) {
    throw std::invalid_argument("q_heads must be a multiple of kv_heads");
  }
  if (o.head_dim % 2 != 0) throw std::invalid_argument("head_dim must be even for RoPE");
  embed = register_module("embed", torch::nn::Embedding(o.vocab_size, o.hidden));
  torch::NoGradGuard no_grad;
  embed->weight.normal_(0, o.init_std);
  for (int64_t l = 0; l < o.layers; ++l) {
    blocks.push_back(register_module("block" + std::to_string(l), Block(o)));
  }
  final_norm = register_module("final_norm", RmsNorm(o.hidden, o.norm_eps));
  head_VH = register_parameter("head", init_normal({o.vocab_size, o.hidden}, o.init_std));
  // RoPE tables: angle(t, i) = t * theta^(-2i/d), duplicated for the rotate-half layout.
  const auto inv_freq =
      torch::pow(o.rope_theta, -torch::arange(0, o.head_dim, 2, torch::kDouble) / o.head_dim);
  const auto t = torch::arange(o.max_seq_len, torch::kDouble);
  const auto ang = torch::outer(t, inv_freq);
  const auto emb = torch::cat({ang, ang}, -1);
  rope_cos = register_buffer("rope_cos", emb.cos().to(torch::kFloat));
  rope_sin = register_buffer("rope_sin", emb.sin().to(torch::kFloat));
}

ForwardOutput TransformerImpl::forward(const torch::Tensor& input_ids_BT,
                                       const torch::Tensor& mask_BT) {
  const int64_t T = input_ids_BT.size(1);
  if (mask_BT.defined() && mask_BT.sizes() != input_ids_BT.sizes()) {
    throw std::invalid_argument("token mask shape does not match the input ids [B, T]");
  }
  if (T > opts.max_seq_len) {
    throw std::invalid_argument("sequence of " + std::to_string(T) +
                                " tokens exceeds the model's " + std::to_string(opts.max_seq_len));
  }
  ForwardOutput out;
  auto x = embed->forward(input_ids_BT);
  const auto cos = rope_cos.narrow(0, 0, T).to(x.scalar_type());
  const auto sin = rope_sin.narrow(0, 0, T).to(x.scalar_type());
  // Rows are flattened batch-major, as the blocks flatten x.
  const auto valid_N = mask_BT.defined() ? mask_BT.reshape({-1}) : torch::Tensor();
  for (auto& b : blocks) x = b->forward(x, cos, sin, &out.routing, valid_N);
  out.logits = torch::linear(final_norm->forward(x), head_VH);
  return out;
}

void TransformerImpl::set_theta(double theta) {
  for (auto& b : blocks) {
    if (b->moe) b->moe->policy->set_theta(theta);
  }
}

ParamCount count_parameters(TransformerImpl& model) {
  ParamCount c;
  for (const auto& p : model.named_parameters()) {
    c.total += p.value().numel();
    if (p.key() != "embed.weight" && p.key() != "head") c.non_embedding += p.value().numel();
  }
  return c;
}

torch::Tensor masked_lm_loss(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT,
                             const torch::Tensor& mask_BT) {
  const int64_t V = logits_BTV.size(-1);
  const auto nll = torch::nn::functional::cross_entropy(
      logits_BTV.reshape({-1, V}).to(torch::kFloat), targets_BT.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  const auto m = mask_BT.reshape({-1}).to(torch::kFloat);
  return (nll * m).sum() / m.sum().clamp_min(1.0);
}

}  // namespace moebench::models
