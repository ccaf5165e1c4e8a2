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

// Rows `index_BQ` of x [B, T, ...] along dim 1: [B, Q, ...].
torch::Tensor take_positions(const torch::Tensor& x, const torch::Tensor& index_BQ) {
  std::vector<int64_t> shape = index_BQ.sizes().vec();
  for (int64_t d = 2; d < x.dim(); ++d) shape.push_back(x.size(d));
  auto idx = index_BQ;
  for (int64_t d = 2; d < x.dim(); ++d) idx = idx.unsqueeze(-1);
  return x.gather(1, idx.expand(shape));
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
                                     const torch::Tensor& sin, const torch::Tensor& allowed_BTT,
                                     const torch::Tensor& query_BQ) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool subset = query_BQ.defined();
  const int64_t Q = subset ? query_BQ.size(1) : T;
  // The queries' inputs, rotary tables and key masks ([B, Q, ..]); all T positions without
  // query_BQ. Without a mask a subset gets the causal one: keys up to the query's position.
  torch::Tensor x_q = x, cos_q = cos, sin_q = sin, allowed = allowed_BTT;
  if (subset) {
    x_q = take_positions(x, query_BQ);
    auto rows = [&](const torch::Tensor& table) {  // [T, d] or [B, 1, T, d] -> [B, 1, Q, d]
      const auto bt =
          table.dim() == 2 ? table.unsqueeze(0).expand({B, T, table.size(-1)}) : table.squeeze(1);
      return take_positions(bt, query_BQ).unsqueeze(1);
    };
    cos_q = rows(cos);
    sin_q = rows(sin);
    allowed = allowed_BTT.defined()
                  ? take_positions(allowed_BTT, query_BQ)
                  : torch::arange(T, query_BQ.options()).view({1, 1, T}).le(query_BQ.unsqueeze(-1));
  }
  auto q = torch::linear(x_q, wq).view({B, Q, q_heads, head_dim}).transpose(1, 2);
  auto k = torch::linear(x, wk).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto v = torch::linear(x, wv).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  q = q * cos_q + rotate_half(q) * sin_q;
  k = k * cos + rotate_half(k) * sin;
  const double p = is_training() ? dropout : 0.0;
#if TORCH_VERSION_MAJOR >= 2
  if (kv_heads != q_heads) {  // GQA: each kv head serves q_heads / kv_heads query heads
    k = k.repeat_interleave(q_heads / kv_heads, 1);
    v = v.repeat_interleave(q_heads / kv_heads, 1);
  }
  auto o = allowed.defined()
               ? at::scaled_dot_product_attention(q, k, v, allowed.unsqueeze(1), p, false)
               : at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, p, /*is_causal=*/true);
#else
  // LibTorch 1.13's CPU bmm makes one small BLAS call per matrix, so the products are arranged
  // for few, taller matrices: the g = q_heads / kv_heads query heads that share a kv head are
  // stacked along the rows ([B, kv_heads, g·Q, d]) and multiply that head's K and V once (no
  // copies of K and V per query head), and the 1/√d scale goes on the queries ([.., Q, d])
  // rather than on the scores ([.., Q, T]).
  const int64_t g = q_heads / kv_heads;
  const auto q_rows =
      (q / std::sqrt(static_cast<double>(head_dim))).reshape({B, kv_heads, g * Q, head_dim});
  auto scores = torch::matmul(q_rows, k.transpose(-2, -1)).view({B, q_heads, Q, T});
  const auto masked =
      allowed.defined()
          ? allowed.logical_not().unsqueeze(1)
          : torch::ones({T, T}, torch::dtype(torch::kBool).device(x.device())).triu(1);
  // In place: the scores are the product's own result, which its backward does not need.
  scores.masked_fill_(masked, -std::numeric_limits<float>::infinity());
  auto attn = torch::softmax(scores.to(torch::kFloat), -1).to(q.scalar_type());
  if (p > 0) attn = torch::dropout(attn, p, /*train=*/true);
  auto o = torch::matmul(attn.reshape({B, kv_heads, g * Q, T}), v).view({B, q_heads, Q, head_dim});
#endif
  return torch::linear(o.transpose(1, 2).reshape({B, Q, q_heads * head_dim}), wo);
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
                                 const torch::Tensor& valid_N, const torch::Tensor& allowed_BTT,
                                 const torch::Tensor& query_BQ) {
  const bool subset = query_BQ.defined();
  const auto residual = subset ? take_positions(x, query_BQ) : x;
  auto h = residual + attn->forward(attn_norm->forward(x), cos, sin, allowed_BTT, query_BQ);
  const auto n = ffn_norm->forward(h);
  const auto flat = n.reshape({-1, n.size(-1)});
  const auto valid =
      subset && valid_N.defined()
          ? take_positions(valid_N.view({x.size(0), x.size(1)}), query_BQ).reshape({-1})
          : valid_N;
  const auto y = dense ? dense->forward(flat) : moe->forward(flat, routing, valid);
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
  ForwardOutput out;
  auto x = embed->forward(input_ids_BT);
  torch::Tensor cos, sin, allowed, outputs;
  if (packed && packed->positions_BT.defined()) {
    // Each token's own position: [B, 1, T, head_dim], broadcast over the heads.
    const auto pos = packed->positions_BT.reshape({-1});
    if (pos.numel() != B * T || pos.max().item<int64_t>() >= opts.max_seq_len) {
      throw std::invalid_argument("packed positions must be [B, T] and below max_seq_len");
    }
    cos = rope_cos.index_select(0, pos).view({B, 1, T, -1}).to(x.scalar_type());
    sin = rope_sin.index_select(0, pos).view({B, 1, T, -1}).to(x.scalar_type());
  } else {
    // A packed row may be longer than the window (several sequences sharing a prefix) when its
    // positions say where each token stands; a plain sequence may not.
    if (T > opts.max_seq_len) {
      throw std::invalid_argument("sequence of " + std::to_string(T) +
                                  " tokens exceeds the model's " +
                                  std::to_string(opts.max_seq_len));
    }
    cos = rope_cos.narrow(0, 0, T).to(x.scalar_type());
    sin = rope_sin.narrow(0, 0, T).to(x.scalar_type());
  }
  if (packed) {
    allowed = packed->allowed_BTT;
    outputs = packed->outputs_BQ;
    if (outputs.defined() &&
        (outputs.dim() != 2 || outputs.size(0) != B || outputs.min().item<int64_t>() < 0 ||
         outputs.max().item<int64_t>() >= T)) {
      throw std::invalid_argument("packed outputs must be [B, Q] positions below the row length");
    }
  }
  // Rows are flattened batch-major, as the blocks flatten x.
  const auto valid_N = mask_BT.defined() ? mask_BT.reshape({-1}) : torch::Tensor();
  for (size_t l = 0; l < blocks.size(); ++l) {
    const bool last = l + 1 == blocks.size();
    x = blocks[l]->forward(x, cos, sin, &out.routing, valid_N, allowed,
                           last ? outputs : torch::Tensor());
  }
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
