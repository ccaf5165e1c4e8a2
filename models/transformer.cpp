// Decoder backbone: RMSNorm, RoPE (rotate-half convention), grouped-query causal attention
// (fused scaled_dot_product_attention on LibTorch 2.x, explicit softmax on 1.13), MoE FFN.
#include "models/transformer.h"

#include <torch/version.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <stdexcept>

namespace moebench::models {
namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t d = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, d, d), x.narrow(-1, 0, d)}, -1);
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
  // Drawn by TransformerImpl from the backbone generator (see its comment).
  wq = register_parameter("wq", torch::empty({q_heads * head_dim, o.hidden}));
  wk = register_parameter("wk", torch::empty({kv_heads * head_dim, o.hidden}));
  wv = register_parameter("wv", torch::empty({kv_heads * head_dim, o.hidden}));
  wo = register_parameter("wo", torch::empty({o.hidden, q_heads * head_dim}));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const torch::Tensor& allowed_BTT) {
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
  auto o = allowed_BTT.defined()
               ? at::scaled_dot_product_attention(q, k, v, allowed_BTT.unsqueeze(1), p, false)
               : at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, p, /*is_causal=*/true);
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
  const auto masked =
      allowed_BTT.defined()
          ? allowed_BTT.logical_not().unsqueeze(1)
          : torch::ones({T, T}, torch::dtype(torch::kBool).device(x.device())).triu(1);
  scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
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
                                 const torch::Tensor& valid_N, const torch::Tensor& allowed_BTT) {
  auto h = x + attn->forward(attn_norm->forward(x), cos, sin, allowed_BTT);
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
  // The backbone's own generator (see the class comment), seeded from the global one.
  const auto backbone_seed =
      static_cast<uint64_t>(torch::randint(int64_t{1} << 62, {1}, torch::kLong).item<int64_t>());
  embed = register_module("embed", torch::nn::Embedding(o.vocab_size, o.hidden));
  for (int64_t l = 0; l < o.layers; ++l) {
    blocks.push_back(register_module("block" + std::to_string(l), Block(o)));
  }
  final_norm = register_module("final_norm", RmsNorm(o.hidden, o.norm_eps));
  head_VH = register_parameter("head", torch::empty({o.vocab_size, o.hidden}));

  torch::NoGradGuard no_grad;
  const bool torch_default = o.layer_init == LayerInit::kTorchDefault;
  // nn.Linear's default: kaiming_uniform(a = √5), whose bound is 1/√fan_in.
  auto linear_default = [](torch::Tensor& w, c10::optional<at::Generator> gen) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.size(-1)));
    w.uniform_(-bound, bound, std::move(gen));
  };
  auto gen = at::detail::createCPUGenerator(backbone_seed);
  embed->weight.normal_(0, o.init_std, gen);
  for (auto& b : blocks) {
    for (auto* w : {&b->attn->wq, &b->attn->wk, &b->attn->wv, &b->attn->wo}) {
      if (torch_default) {
        linear_default(*w, gen);
      } else {
        w->normal_(0, o.init_std, gen);
      }
    }
  }
  head_VH.normal_(0, o.init_std, gen);
  // The FFN matrices were drawn N(0, init_std) by their modules; the official decoder layers
  // of RF, AoE and ReMoE redraw them (global generator, parameter order). RF's γ, b and the norm
  // weights are vectors and keep their values.
  if (torch_default) {
    for (auto& b : blocks) {
      torch::nn::Module& ffn = b->moe ? static_cast<torch::nn::Module&>(*b->moe)
                                      : static_cast<torch::nn::Module&>(*b->dense);
      for (auto& p : ffn.parameters()) {
        if (p.dim() >= 2) linear_default(p, c10::nullopt);
      }
    }
  }
  // RoPE tables: angle(t, i) = t * theta^(-2i/d), duplicated for the rotate-half layout.
  const auto inv_freq =
      torch::pow(o.rope_theta, -torch::arange(0, o.head_dim, 2, torch::kDouble) / o.head_dim);
  const auto t = torch::arange(o.max_seq_len, torch::kDouble);
  const auto ang = torch::outer(t, inv_freq);
  const auto emb = torch::cat({ang, ang}, -1);
  rope_cos = register_buffer("rope_cos", emb.cos().to(torch::kFloat));
  rope_sin = register_buffer("rope_sin", emb.sin().to(torch::kFloat));
}

ForwardOutput TransformerImpl::trunk(const torch::Tensor& input_ids_BT,
                                     const torch::Tensor& mask_BT, const PackedLayout* packed) {
  const int64_t B = input_ids_BT.size(0), T = input_ids_BT.size(1);
  if (mask_BT.defined() && mask_BT.sizes() != input_ids_BT.sizes()) {
    throw std::invalid_argument("token mask shape does not match the input ids [B, T]");
  }
  if (T > opts.max_seq_len) {
    throw std::invalid_argument("sequence of " + std::to_string(T) +
                                " tokens exceeds the model's " + std::to_string(opts.max_seq_len));
  }
  ForwardOutput out;
  auto x = embed->forward(input_ids_BT);
  torch::Tensor cos, sin, allowed;
  if (packed) {
    // Each token's own position: [B, 1, T, head_dim], broadcast over the heads.
    const auto pos = packed->positions_BT.reshape({-1});
    if (pos.numel() != B * T || pos.max().item<int64_t>() >= opts.max_seq_len) {
      throw std::invalid_argument("packed positions must be [B, T] and below max_seq_len");
    }
    cos = rope_cos.index_select(0, pos).view({B, 1, T, -1}).to(x.scalar_type());
    sin = rope_sin.index_select(0, pos).view({B, 1, T, -1}).to(x.scalar_type());
    allowed = packed->allowed_BTT;
  } else {
    cos = rope_cos.narrow(0, 0, T).to(x.scalar_type());
    sin = rope_sin.narrow(0, 0, T).to(x.scalar_type());
  }
  // Rows are flattened batch-major, as the blocks flatten x.
  const auto valid_N = mask_BT.defined() ? mask_BT.reshape({-1}) : torch::Tensor();
  for (auto& b : blocks) x = b->forward(x, cos, sin, &out.routing, valid_N, allowed);
  out.hidden = final_norm->forward(x);
  return out;
}

ForwardOutput TransformerImpl::forward(const torch::Tensor& input_ids_BT,
                                       const torch::Tensor& mask_BT) {
  ForwardOutput out = trunk(input_ids_BT, mask_BT);
  out.logits = head_logits(out.hidden);
  out.hidden = torch::Tensor();
  return out;
}

torch::Tensor TransformerImpl::head_logits(const torch::Tensor& hidden_NH) const {
  return torch::linear(hidden_NH, head_VH);
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

torch::Tensor masked_lm_nll_sum(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT,
                                const torch::Tensor& mask_BT) {
  const int64_t V = logits_BTV.size(-1);
  const auto nll = torch::nn::functional::cross_entropy(
      logits_BTV.reshape({-1, V}).to(torch::kFloat), targets_BT.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (nll * mask_BT.reshape({-1}).to(torch::kFloat)).sum();
}

torch::Tensor masked_lm_loss(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT,
                             const torch::Tensor& mask_BT) {
  const auto real = mask_BT.reshape({-1}).to(torch::kFloat).sum().clamp_min(1.0);
  return masked_lm_nll_sum(logits_BTV, targets_BT, mask_BT) / real;
}

}  // namespace moebench::models
