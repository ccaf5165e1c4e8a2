// The evaluator: lm-eval-style log-likelihood scoring, validation perplexity, θ sweep and routing
// flip rate. Spec: shared/spec/DATA.md "Zero-shot evaluation available offline",
// shared/spec/METHODS.md "Metrics every run reports".
#include "suite/evaluator.h"

#include "baselines/registry.h"
#include "models/method.h"
#include "suite/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <utility>

#include "datasets/corpus.h"

namespace moebench::eval {
namespace {

// Puts the model in eval mode for a scope and restores the mode it had (the trainer evaluates
// in the middle of training).
class EvalMode {
 public:
  explicit EvalMode(models::TransformerImpl& model)
      : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalMode() {
    if (was_training_) model_.train();
  }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  models::TransformerImpl& model_;
  bool was_training_;
};

Metric accuracy(const std::string& name, int64_t correct, int64_t n, double chance) {
  const Interval ci = wilson_interval(correct, n);
  return {name,    n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : kNaN,
          n,       ci.low,
          ci.high, chance};
}

}  // namespace

BatchTensors to_tensors(const data::Batch& b, torch::Device device) {
  const std::vector<int64_t> shape = {b.batch_size, b.seq_len};
  auto ints = [&](const std::vector<int32_t>& v) {
    return torch::from_blob(const_cast<int32_t*>(v.data()), shape, torch::kInt32)
        .to(torch::kLong)
        .to(device);
  };
  auto mask = torch::from_blob(const_cast<uint8_t*>(b.mask.data()), shape, torch::kUInt8)
                  .to(torch::kFloat)
                  .to(device);
  return {ints(b.inputs), ints(b.targets), mask, b.real_tokens};
}

Interval wilson_interval(int64_t successes, int64_t n, double z) {
  if (n <= 0) return {};
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(successes) / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double center = (p + z2 / (2.0 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

std::vector<ScoreRequest> make_choice_requests(const EncodeFn& encode, const std::string& context,
                                               const std::vector<std::string>& continuations,
                                               int64_t max_seq_len, int32_t eot_id) {
  if (max_seq_len < 1) throw std::invalid_argument("make_request: max_seq_len must be >= 1");
  const auto T = static_cast<size_t>(max_seq_len);
  std::vector<ScoreRequest> out;
  size_t longest = 0;
  for (const auto& continuation : continuations) {
    ScoreRequest r;
    r.continuation = encode(continuation);
    if (r.continuation.empty()) {
      throw std::invalid_argument("eval item: the continuation '" + continuation +
                                  "' encodes to no tokens; every choice needs at least one");
    }
    if (r.continuation.size() > T) r.continuation.resize(T);
    longest = std::max(longest, r.continuation.size());
    out.push_back(std::move(r));
  }
  std::vector<int32_t> ctx = context.empty() ? std::vector<int32_t>{} : encode(context);
  if (ctx.empty()) ctx = {eot_id};  // the first continuation token needs a position to come from
  // The input is context + continuation[:-1]: the longest choice leaves T + 1 - longest
  // positions (at least 1) to the context, whose last tokens are kept.
  const size_t keep = T + 1 - longest;
  if (ctx.size() > keep) ctx.erase(ctx.begin(), ctx.end() - static_cast<std::ptrdiff_t>(keep));
  for (auto& r : out) r.context = ctx;
  return out;
}

ScoreRequest make_request(const EncodeFn& encode, const std::string& context,
                          const std::string& continuation, int64_t max_seq_len, int32_t eot_id) {
  return make_choice_requests(encode, context, {continuation}, max_seq_len, eot_id).front();
}

const Metric* TaskScore::find(const std::string& name) const {
  for (const auto& m : metrics) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

TaskScore score_task(const data::EvalTask& task, const EncodeFn& encode, const ScoreFn& score,
                     int64_t max_seq_len, int32_t eot_id) {
  const bool mc = task.kind == data::TaskKind::kMultipleChoice;
  std::vector<ScoreRequest> requests;
  std::vector<size_t> first;  // index of each item's first request
  for (size_t i = 0; i < task.items.size(); ++i) {
    const auto& item = task.items[i];
    if (item.choices.empty() || item.answer < 0 ||
        item.answer >= static_cast<int>(item.choices.size())) {
      throw std::invalid_argument(
          fmt::format("task {}: item {} (doc {}) has {} choices and answer {}: rebuild the task",
                      task.name, i, item.doc_id, item.choices.size(), item.answer));
    }
    first.push_back(requests.size());
    if (mc) {
      for (auto& r :
           make_choice_requests(encode, item.context, item.choices, max_seq_len, eot_id)) {
        r.want_greedy = false;  // choices are compared by likelihood only
        requests.push_back(std::move(r));
      }
    } else {
      requests.push_back(
          make_request(encode, item.context, item.choices[item.answer], max_seq_len, eot_id));
    }
  }
  const std::vector<ScoreResult> results = score(requests);
  if (results.size() != requests.size()) {
    throw std::logic_error(
        fmt::format("scorer returned {} results for {} requests", results.size(), requests.size()));
  }

  TaskScore out;
  out.task = task.name;
  out.primary_metric = task.primary_metric;
  out.chance = task.chance;
  out.n = static_cast<int64_t>(task.items.size());
  if (mc) {
    int64_t correct = 0, correct_norm = 0;
    for (size_t i = 0; i < task.items.size(); ++i) {
      const auto& item = task.items[i];
      int best = 0, best_norm = 0;
      double best_ll = -INFINITY, best_ll_norm = -INFINITY;
      for (size_t c = 0; c < item.choices.size(); ++c) {
        const double ll = results[first[i] + c].logprob;
        const double ll_norm = ll / static_cast<double>(item.choices[c].size());
        // Strict '>' keeps the lower index on ties.
        if (ll > best_ll) best_ll = ll, best = static_cast<int>(c);
        if (ll_norm > best_ll_norm) best_ll_norm = ll_norm, best_norm = static_cast<int>(c);
      }
      correct += best == item.answer;
      correct_norm += best_norm == item.answer;
    }
    out.metrics.push_back(accuracy("acc", correct, out.n, task.chance));
    out.metrics.push_back(accuracy("acc_norm", correct_norm, out.n, task.chance));
  } else {
    int64_t correct = 0, tokens = 0;
    double logprob = 0;
    for (size_t i = 0; i < task.items.size(); ++i) {
      const ScoreResult& r = results[first[i]];
      correct += r.greedy;
      tokens += r.tokens;
      logprob += r.logprob;
    }
    out.metrics.push_back(accuracy("acc", correct, out.n, task.chance));
    Metric ppl{"target_ppl", tokens > 0 ? std::exp(-logprob / static_cast<double>(tokens)) : kNaN,
               out.n,        kNaN,
               kNaN,         kNaN};
    out.metrics.push_back(ppl);
  }
  if (out.primary_metric.empty() || out.find(out.primary_metric) == nullptr) {
    throw std::invalid_argument("task " + task.name + ": primary metric '" + task.primary_metric +
                                "' is not one it reports (acc, acc_norm)");
  }
  return out;
}

namespace {

// One row of a scoring batch: a context and the continuations of one or more requests that
// share it (packed), or a single request.
struct ScoreUnit {
  std::vector<int64_t> ids, positions;
  std::vector<int> segment;       // -1: the context; j: the unit's j-th request
  std::vector<size_t> requests;   // indices into the request list
  std::vector<int64_t> rows;      // per scored token: its position in the unit
  std::vector<int64_t> targets;   // per scored token: the token it must predict
  std::vector<size_t> first_row;  // per request: its first scored token in rows
};

// Consecutive requests with the same context (a multiple-choice item's choices) share one unit
// when `share` is set and the packed row stays within `max_row` tokens; every choice then reads
// the context once. (Positions stay inside the model's window: each request fits it alone.) Each
// request's first continuation token is predicted at the context's last position; its later tokens
// follow in its own segment at the positions they would have unpacked.
std::vector<ScoreUnit> make_units(const std::vector<ScoreRequest>& requests, bool share,
                                  int64_t max_row) {
  std::vector<ScoreUnit> units;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ScoreRequest& r = requests[i];
    const auto c = static_cast<int64_t>(r.context.size());
    const auto extra = static_cast<int64_t>(r.continuation.size()) - 1;
    const bool join = share && !units.empty() && i > 0 && requests[i - 1].context == r.context &&
                      static_cast<int64_t>(units.back().ids.size()) + extra <= max_row;
    if (!join) {
      ScoreUnit u;
      for (int64_t t = 0; t < c; ++t) {
        u.ids.push_back(r.context[t]);
        u.positions.push_back(t);
        u.segment.push_back(-1);
      }
      units.push_back(std::move(u));
    }
    ScoreUnit& u = units.back();
    const int seg = static_cast<int>(u.requests.size());
    u.requests.push_back(i);
    u.first_row.push_back(u.rows.size());
    u.rows.push_back(c - 1);
    u.targets.push_back(r.continuation[0]);
    for (int64_t t = 0; t < extra; ++t) {
      u.rows.push_back(static_cast<int64_t>(u.ids.size()));
      u.ids.push_back(r.continuation[t]);
      u.positions.push_back(c + t);
      u.segment.push_back(seg);
      u.targets.push_back(r.continuation[t + 1]);
    }
  }
  return units;
}

// Runs score(start, end) for every batch. With LibTorch set to n > 1 threads, the first batch
// runs here (it settles what a model sets on its first forward, such as the expert backend's
// name), then n threads take the others, each with one LibTorch thread: a forward of this size
// keeps one core busy on its own matrix products (BLAS runs single-threaded, env_info.cpp),
// while LibTorch's threads only split the elementwise work. An exception in any batch is
// rethrown here after all threads stop; the thread setting is restored.
void run_batches(const std::vector<std::pair<size_t, size_t>>& batches,
                 const std::function<void(size_t, size_t)>& score) {
  const int threads = torch::get_num_threads();
  if (threads <= 1 || batches.size() <= 1) {
    for (const auto& [start, end] : batches) score(start, end);
    return;
  }
  score(batches[0].first, batches[0].second);
  std::atomic<size_t> next{1};
  std::exception_ptr error;
  std::mutex error_mutex;
  torch::set_num_threads(1);
  {
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (size_t i = next++; i < batches.size(); i = next++) {
          try {
            score(batches[i].first, batches[i].second);
          } catch (...) {
            const std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            next = batches.size();
          }
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  torch::set_num_threads(threads);
  if (error) std::rethrow_exception(error);
}

}  // namespace

ScoreFn model_scorer(models::TransformerImpl& model, torch::Device device, int64_t max_rows,
                     int64_t max_batch_tokens) {
  // Sharing a context changes nothing for methods that route each token alone; Switch's
  // capacity couples the tokens of a forward, so its requests are scored one per row.
  const auto& method = baselines::find_method(model.opts.moe.method);
  const bool share = !method.couples_tokens;
  return [&model, device, max_rows, max_batch_tokens,
          share](const std::vector<ScoreRequest>& requests) {
    std::vector<ScoreResult> out(requests.size());
    const int64_t limit = model.opts.max_seq_len;
    for (const auto& r : requests) {
      const auto L = static_cast<int64_t>(r.context.size() + r.continuation.size()) - 1;
      if (L > limit || L < 1 || r.context.empty()) {
        throw std::invalid_argument(fmt::format(
            "scoring request of {} input tokens does not fit the model's window of {} (build "
            "requests with make_request)",
            L, limit));
      }
    }
    // Rows of up to two windows hold a whole item when its context fills most of the window
    // (next_sentence's 4 choices after one ~100-token context; measured in the closing note of
    // issue 13); longer rows would spend on the [L, L] attention what they save in context.
    const std::vector<ScoreUnit> units = make_units(requests, share, 2 * limit);
    // Longest first, so each batch holds similar lengths and the first row sets its width.
    std::vector<size_t> order(units.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return units[a].ids.size() > units[b].ids.size(); });
    std::vector<std::pair<size_t, size_t>> batches;  // [start, end) in `order`
    for (size_t start = 0; start < order.size();) {
      const auto L = static_cast<int64_t>(units[order[start]].ids.size());
      size_t end = start + 1;
      while (end < order.size() && static_cast<int64_t>(end - start) < max_rows &&
             static_cast<int64_t>(end - start + 1) * L <= max_batch_tokens) {
        ++end;
      }
      batches.emplace_back(start, end);
      start = end;
    }
    EvalMode mode(model);
    // One forward per batch; each writes only its own requests' results.
    auto score_batch = [&](size_t start, size_t end) {
      torch::NoGradGuard no_grad;
      const auto L = static_cast<int64_t>(units[order[start]].ids.size());
      const auto B = static_cast<int64_t>(end - start);
      bool packed = false;
      for (size_t u = start; u < end; ++u) packed = packed || units[order[u]].requests.size() > 1;
      std::vector<int64_t> ids(static_cast<size_t>(B * L), 0);  // padding id 0: never scored
      std::vector<float> real(static_cast<size_t>(B * L), 0.0f);
      std::vector<int64_t> positions(static_cast<size_t>(B * L), 0);
      // Padding attends only to itself (a row of -inf would give NaN); a token to the earlier
      // context and its own segment.
      std::vector<uint8_t> allowed(packed ? static_cast<size_t>(B * L * L) : 0, 0);
      // The head runs once per distinct scored position (an item's choices all predict their
      // first token from the context's last one): row_outputs[b] lists row b's, head (b, rank)
      // is the rank-th of them, and `slot` maps each scored token to its head entry.
      std::vector<int64_t> head_b, head_rank, slot, targets;
      std::vector<int64_t> slot_of_pos(static_cast<size_t>(L));
      std::vector<std::vector<int64_t>> row_outputs(static_cast<size_t>(B));
      bool want_greedy = false;
      for (int64_t b = 0; b < B; ++b) {
        const ScoreUnit& u = units[order[start + b]];
        const auto n = static_cast<int64_t>(u.ids.size());
        for (int64_t t = 0; t < n; ++t) {
          ids[b * L + t] = u.ids[t];
          real[b * L + t] = 1;
          positions[b * L + t] = u.positions[t];
        }
        for (int64_t t = n; t < L; ++t) positions[b * L + t] = t < limit ? t : limit - 1;
        if (packed) {
          for (int64_t q = 0; q < L; ++q) {
            for (int64_t k = 0; k <= q; ++k) {
              const bool ok =
                  q >= n ? k == q : (u.segment[k] == -1 || u.segment[k] == u.segment[q]);
              allowed[(b * L + q) * L + k] = ok;
            }
          }
        }
        std::fill(slot_of_pos.begin(), slot_of_pos.end(), -1);
        for (const int64_t pos : u.rows) {
          if (slot_of_pos[pos] < 0) {
            slot_of_pos[pos] = static_cast<int64_t>(head_b.size());
            head_b.push_back(b);
            head_rank.push_back(static_cast<int64_t>(row_outputs[b].size()));
            row_outputs[b].push_back(pos);
          }
          slot.push_back(slot_of_pos[pos]);
        }
        targets.insert(targets.end(), u.targets.begin(), u.targets.end());
        for (const size_t r : u.requests) want_greedy = want_greedy || requests[r].want_greedy;
      }
      const auto inputs_BT = torch::from_blob(ids.data(), {B, L}, torch::kLong).clone().to(device);
      const auto mask_BT = torch::from_blob(real.data(), {B, L}, torch::kFloat).clone().to(device);
      models::PackedLayout layout;
      if (packed) {
        layout.positions_BT =
            torch::from_blob(positions.data(), {B, L}, torch::kLong).clone().to(device);
        layout.allowed_BTT =
            torch::from_blob(allowed.data(), {B, L, L}, torch::kUInt8).to(torch::kBool).to(device);
      }
      // The last block works only at the scored positions (its queries and FFN; keys and values
      // still come from every token), unless routing couples tokens (Switch's capacity), where
      // the tokens a forward holds change the decisions. Rows with fewer scored positions than
      // the widest repeat one.
      int64_t Q = L;
      if (share) {
        Q = 0;
        for (const auto& r : row_outputs) Q = std::max(Q, static_cast<int64_t>(r.size()));
        std::vector<int64_t> outputs(static_cast<size_t>(B * Q));
        for (int64_t b = 0; b < B; ++b) {
          const auto& r = row_outputs[b];
          for (int64_t q = 0; q < Q; ++q) {
            outputs[b * Q + q] = q < static_cast<int64_t>(r.size()) ? r[q] : r.front();
          }
        }
        layout.outputs_BQ =
            torch::from_blob(outputs.data(), {B, Q}, torch::kLong).clone().to(device);
      }
      const bool use_layout = packed || share;
      // The mask keeps padding out of routing decisions that couple tokens (Switch capacity).
      const auto hidden_BTH =
          model.trunk(inputs_BT, mask_BT, use_layout ? &layout : nullptr).hidden;
      // The head only at the scored positions.
      auto as_tensor = [&device](std::vector<int64_t>& v) {
        return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kLong)
            .clone()
            .to(device);
      };
      // Each head entry's row in the trunk's [B, Q] (all positions: Q = L) output.
      std::vector<int64_t> head_rows(head_b.size());
      for (size_t i = 0; i < head_b.size(); ++i) {
        const int64_t b = head_b[i], rank = head_rank[i];
        head_rows[i] = b * Q + (share ? rank : row_outputs[b][rank]);
      }
      const auto rows_U = as_tensor(head_rows);
      const auto slot_P = as_tensor(slot);
      const auto target_P = as_tensor(targets);
      const auto logits_UV =
          model.head_logits(hidden_BTH.reshape({B * Q, -1}).index_select(0, rows_U))
              .to(torch::kFloat);
      const int64_t V = logits_UV.size(1);
      const auto logprob = torch::log_softmax(logits_UV, -1)
                               .reshape({-1})
                               .index_select(0, slot_P * V + target_P)
                               .to(torch::kDouble)
                               .to(torch::kCPU);
      const auto hit =
          want_greedy ? logits_UV.argmax(-1).index_select(0, slot_P).eq(target_P).to(torch::kCPU)
                      : torch::zeros_like(target_P, torch::kBool).to(torch::kCPU);
      const double* lp = logprob.data_ptr<double>();
      const bool* h = hit.data_ptr<bool>();
      size_t base = 0;
      for (int64_t b = 0; b < B; ++b) {
        const ScoreUnit& u = units[order[start + b]];
        for (size_t j = 0; j < u.requests.size(); ++j) {
          const size_t first = u.first_row[j];
          const size_t last = j + 1 < u.requests.size() ? u.first_row[j + 1] : u.rows.size();
          ScoreResult& res = out[u.requests[j]];
          res.logprob = 0;
          res.greedy = true;
          for (size_t p = first; p < last; ++p) {
            res.logprob += lp[base + p];
            res.greedy = res.greedy && h[base + p];
          }
          res.tokens = static_cast<int64_t>(last - first);
        }
        base += u.rows.size();
      }
    };
    run_batches(batches, score_batch);
    return out;
  };
}

ValResult validation_loss(models::TransformerImpl& model, const data::BatchSampler& sampler,
                          int micro_batch, int64_t max_batches, torch::Device device,
                          models::BalanceStats* stats) {
  if (micro_batch < 1) throw std::invalid_argument("validation_loss: micro_batch must be >= 1");
  torch::NoGradGuard no_grad;
  EvalMode mode(model);
  int64_t batches = sampler.num_samples() / micro_batch;
  if (max_batches > 0) batches = std::min(batches, max_batches);
  double nll = 0;
  ValResult r;
  for (int64_t b = 0; b < batches; ++b) {
    std::vector<int64_t> ids(micro_batch);
    for (int i = 0; i < micro_batch; ++i) ids[i] = b * micro_batch + i;
    const BatchTensors batch = to_tensors(sampler.make_batch(ids), device);
    auto out = model.forward(batch.inputs_BT, batch.mask_BT);
    const auto logprob_BT = torch::log_softmax(out.logits.to(torch::kFloat), -1)
                                .gather(-1, batch.targets_BT.unsqueeze(-1))
                                .squeeze(-1);
    // Sum in double over real tokens: a token-weighted mean over all batches, not a mean of
    // batch means (which would overweight short, heavily padded batches).
    nll -= (logprob_BT.to(torch::kDouble) * batch.mask_BT.to(torch::kDouble)).sum().item<double>();
    r.tokens += batch.real_tokens;
    r.sequences += micro_batch;
    if (stats && !out.routing.empty()) stats->add(out.routing, batch.mask_BT.reshape({-1}));
  }
  if (r.tokens > 0) {
    r.loss = nll / static_cast<double>(r.tokens);
    r.ppl = std::exp(r.loss);
  }
  return r;
}

std::vector<ThetaPoint> theta_sweep(models::TransformerImpl& model,
                                    const data::BatchSampler& sampler, int micro_batch,
                                    int64_t max_batches, torch::Device device,
                                    const std::vector<double>& thetas, double trained_theta) {
  if (baselines::threshold_option_of(model.opts.moe.method).empty()) {
    throw std::invalid_argument("the θ sweep needs a method with a threshold; this one is '" +
                                model.opts.moe.method + "'");
  }
  std::vector<ThetaPoint> out;
  try {
    for (double theta : thetas) {
      model.set_theta(theta);
      models::BalanceStats stats;
      ThetaPoint p;
      p.theta = theta;
      p.val = validation_loss(model, sampler, micro_batch, max_batches, device, &stats);
      if (stats.num_layers() > 0) p.density = stats.mean_summary().at("density");
      out.push_back(p);
    }
  } catch (...) {
    model.set_theta(trained_theta);
    throw;
  }
  model.set_theta(trained_theta);
  return out;
}

std::vector<torch::Tensor> routing_masks(models::TransformerImpl& model,
                                         const torch::Tensor& inputs_BT,
                                         const torch::Tensor& mask_BT) {
  torch::NoGradGuard no_grad;
  EvalMode mode(model);
  const auto out = model.forward(inputs_BT, mask_BT);
  const auto keep = mask_BT.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
  std::vector<torch::Tensor> masks;
  for (const auto& layer : out.routing) {
    masks.push_back(layer.active_NE.index_select(0, keep).to(torch::kBool).to(torch::kCPU));
  }
  return masks;
}

FlipRate flip_rate(const std::vector<torch::Tensor>& before,
                   const std::vector<torch::Tensor>& after) {
  if (before.size() != after.size()) {
    throw std::invalid_argument(
        fmt::format("flip rate: {} layers before, {} after (snapshots of different models?)",
                    before.size(), after.size()));
  }
  FlipRate r;
  if (before.empty()) return r;
  double entry = 0, token = 0;
  for (size_t l = 0; l < before.size(); ++l) {
    const auto& a = before[l];
    const auto& b = after[l];
    if (a.dim() != 2 || a.sizes() != b.sizes()) {
      throw std::invalid_argument(fmt::format(
          "flip rate: layer {} masks have shapes {} and {}; both must be the same [N, E]", l,
          fmt::join(a.sizes().vec(), "x"), fmt::join(b.sizes().vec(), "x")));
    }
    const auto changed_NE = a.to(torch::kBool).ne(b.to(torch::kBool));
    const auto n = static_cast<double>(a.size(0));
    if (a.numel() > 0) {
      entry +=
          static_cast<double>(changed_NE.sum().item<int64_t>()) / static_cast<double>(a.numel());
      token += static_cast<double>(changed_NE.any(1).sum().item<int64_t>()) / n;
    }
    r.tokens = a.size(0);
  }
  r.entry = entry / static_cast<double>(before.size());
  r.token = token / static_cast<double>(before.size());
  return r;
}

void save_masks(const std::filesystem::path& path, const MaskSnapshot& snapshot) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  torch::serialize::OutputArchive archive;
  archive.write("step", torch::tensor(snapshot.step, torch::kLong));
  archive.write("layers", torch::tensor(static_cast<int64_t>(snapshot.masks.size()), torch::kLong));
  for (size_t l = 0; l < snapshot.masks.size(); ++l) {
    archive.write("layer" + std::to_string(l), snapshot.masks[l].to(torch::kCPU));
  }
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  save_archive(archive, tmp);
  std::filesystem::rename(tmp, path);
}

MaskSnapshot load_masks(const std::filesystem::path& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string(), torch::kCPU);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot read " + path.string() + ": " + e.what_without_backtrace());
  }
  MaskSnapshot s;
  torch::Tensor step, layers;
  archive.read("step", step);
  archive.read("layers", layers);
  s.step = step.item<int64_t>();
  for (int64_t l = 0; l < layers.item<int64_t>(); ++l) {
    torch::Tensor m;
    archive.read("layer" + std::to_string(l), m);
    s.masks.push_back(m);
  }
  return s;
}

void check_task_names(const std::vector<std::string>& names) {
  const auto& known = data::eval_task_names();
  for (const auto& n : names) {
    if (std::find(known.begin(), known.end(), n) == known.end()) {
      throw std::invalid_argument(
          fmt::format("unknown eval task '{}' (known: {})", n, fmt::join(known, ", ")));
    }
  }
}

std::vector<data::EvalTask> load_eval_tasks(const std::filesystem::path& data_dir,
                                            const std::vector<std::string>& names,
                                            size_t max_items) {
  check_task_names(names);
  std::vector<data::EvalTask> tasks;
  if (names.empty()) return tasks;
  const auto docs = data::load_corpus(data_dir);
  const auto splits = data::assign_splits(docs);
  for (const auto& n : names) {
    tasks.push_back(data::build_eval_task(n, docs, splits, data_dir, max_items));
  }
  return tasks;
}

std::vector<EvalRow> task_rows(const TaskScore& score, int64_t step, std::optional<double> theta) {
  std::vector<EvalRow> rows;
  for (const auto& m : score.metrics) {
    rows.push_back({score.task, m.name, m.value, m.n, m.ci_low, m.ci_high, m.chance, theta, step});
    if (m.name == score.primary_metric) {
      rows.push_back({score.task, kPrimaryPrefix + m.name, m.value, m.n, m.ci_low, m.ci_high,
                      m.chance, theta, step});
    }
  }
  return rows;
}

std::vector<EvalRow> val_rows(const ValResult& val, int64_t step, std::optional<double> theta,
                              double density) {
  std::vector<EvalRow> rows;
  rows.push_back({"val", "loss", val.loss, val.sequences, kNaN, kNaN, kNaN, theta, step});
  rows.push_back({"val", "ppl", val.ppl, val.sequences, kNaN, kNaN, kNaN, theta, step});
  if (!std::isnan(density)) {
    rows.push_back({"val", "density", density, val.sequences, kNaN, kNaN, kNaN, theta, step});
  }
  return rows;
}

std::vector<EvalRow> flip_rows(const FlipRate& flip, int64_t step) {
  return {{"routing", "flip_rate", flip.entry, flip.tokens, kNaN, kNaN, kNaN, std::nullopt, step},
          {"routing", "token_flip_rate", flip.token, flip.tokens, kNaN, kNaN, kNaN, std::nullopt,
           step}};
}

std::string format_scores(const std::vector<TaskScore>& scores) {
  std::string out = fmt::format("{:<14} {:<11} {:>8} {:>17} {:>7} {:>6}\n", "task", "metric",
                                "value", "95% CI", "chance", "n");
  for (const auto& s : scores) {
    for (const auto& m : s.metrics) {
      const std::string ci =
          std::isnan(m.ci_low) ? "-" : fmt::format("[{:.3f}, {:.3f}]", m.ci_low, m.ci_high);
      const std::string chance = std::isnan(m.chance) ? "-" : fmt::format("{:.3f}", m.chance);
      const std::string name = m.name + (m.name == s.primary_metric ? " *" : "");
      out += fmt::format("{:<14} {:<11} {:>8.4f} {:>17} {:>7} {:>6}\n", s.task, name, m.value, ci,
                         chance, m.n);
    }
  }
  out += "* the task's primary metric\n";
  return out;
}

}  // namespace moebench::eval
