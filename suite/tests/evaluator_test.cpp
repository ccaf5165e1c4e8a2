// Evaluator tests against hand-computed values and slow per-sequence loops in double precision:
// acc / acc_norm, Wilson intervals, greedy cloze and target perplexity, left truncation, flip
// rate, batched scoring and validation perplexity of a real (tiny) model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "baselines/registry.h"
#include "datasets/sampler.h"
#include "datasets/shard.h"
#include "models/method.h"
#include "suite/evaluator.h"
#include "suite/report.h"

namespace moebench::eval {
namespace {

constexpr int32_t kEot = 0;

// One token per byte: token counts and UTF-8 lengths coincide, and ids decode back to text.
std::vector<int32_t> char_encode(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}
std::string char_decode(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += static_cast<char>(id);
  return s;
}

// A scorer whose log-likelihoods are set by hand per continuation text; it also records the
// requests it saw.
struct HandScorer {
  std::map<std::string, double> logprob;
  std::map<std::string, bool> greedy;
  std::vector<ScoreRequest> seen;
  ScoreFn fn() {
    return [this](const std::vector<ScoreRequest>& requests) {
      std::vector<ScoreResult> out;
      for (const auto& r : requests) {
        seen.push_back(r);
        const std::string cont = char_decode(r.continuation);
        EXPECT_TRUE(logprob.count(cont)) << "unexpected continuation '" << cont << "'";
        out.push_back({logprob[cont], static_cast<int64_t>(r.continuation.size()),
                       greedy.count(cont) ? greedy[cont] : false});
      }
      return out;
    };
  }
};

data::EvalItem item(const std::string& context, std::vector<std::string> choices, int answer) {
  data::EvalItem it;
  it.context = context;
  it.choices = std::move(choices);
  it.answer = answer;
  it.doc_id = "test/" + context;
  return it;
}

TEST(Wilson, MatchesHandComputedIntervals) {
  // Values from the closed form in double precision (z = 1.959963984540054); 0/10 -> 0.2775
  // and 50/100 -> [0.4038, 0.5962] are the textbook Wilson intervals.
  const Interval a = wilson_interval(1, 4);
  EXPECT_NEAR(a.low, 0.04558726080970055, 1e-12);
  EXPECT_NEAR(a.high, 0.6993581574175981, 1e-12);
  const Interval b = wilson_interval(0, 10);
  EXPECT_NEAR(b.low, 0.0, 1e-12);
  EXPECT_NEAR(b.high, 0.2775327998628892, 1e-12);
  const Interval c = wilson_interval(50, 100);
  EXPECT_NEAR(c.low, 0.4038315303659956, 1e-12);
  EXPECT_NEAR(c.high, 0.5961684696340044, 1e-12);
  const Interval d = wilson_interval(10, 10);
  EXPECT_NEAR(d.low, 0.7224672001371107, 1e-12);
  EXPECT_LE(d.high, 1.0);
  EXPECT_TRUE(std::isnan(wilson_interval(0, 0).low));
}

TEST(ScoreTask, AccAndAccNormDisagreeOnChoiceLengthAndTiesGoLow) {
  data::EvalTask task;
  task.name = "toy";
  task.kind = data::TaskKind::kMultipleChoice;
  task.primary_metric = "acc_norm";
  task.chance = 0.5;
  task.items = {
      item("Q1", {" yes", " no"}, 0),    // acc picks " no" (-3.6 > -4.0); per byte -1.0 > -1.2
      item("Q2", {" a", " bbbbbb"}, 1),  // acc picks " a" (-2.0); per byte -0.8 > -1.0
      item("Q3", {" x", " y"}, 1),       // equal scores: both pick index 0 -> wrong
      item("Q4", {" p", " qqqq"}, 0),    // both right
  };
  HandScorer s;
  s.logprob = {{" yes", -4.0}, {" no", -3.6}, {" a", -2.0}, {" bbbbbb", -5.6},
               {" x", -1.0},   {" y", -1.0},  {" p", -0.5}, {" qqqq", -3.0}};
  const TaskScore r = score_task(task, char_encode, s.fn(), 64, kEot);
  ASSERT_NE(r.find("acc"), nullptr);
  ASSERT_NE(r.find("acc_norm"), nullptr);
  EXPECT_EQ(r.n, 4);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.25);
  EXPECT_DOUBLE_EQ(r.find("acc_norm")->value, 0.75);
  EXPECT_NEAR(r.find("acc")->ci_low, 0.04558726080970055, 1e-12);
  EXPECT_NEAR(r.find("acc_norm")->ci_high, 0.9544127391902995, 1e-12);
  EXPECT_DOUBLE_EQ(r.find("acc")->chance, 0.5);
  EXPECT_EQ(r.find("target_ppl"), nullptr);
  EXPECT_EQ(s.seen.size(), 8u);  // one request per choice

  // Rows: both metrics plus the primary marker, all at the step and θ given.
  const auto rows = task_rows(r, 300, 0.7);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].metric, "primary_acc_norm");
  EXPECT_DOUBLE_EQ(rows[2].value, 0.75);
  for (const auto& row : rows) {
    EXPECT_EQ(row.task, "toy");
    EXPECT_EQ(row.step, 300);
    EXPECT_EQ(row.theta, 0.7);
    EXPECT_EQ(row.n, 4);
  }
}

TEST(ScoreTask, UnicodeChoiceLengthIsCountedInBytes) {
  // " é" is 3 UTF-8 bytes: -3.0 / 3 = -1.0 beats " e" at -2.4 / 2 = -1.2.
  data::EvalTask task;
  task.name = "utf8";
  task.primary_metric = "acc_norm";
  task.chance = 0.5;
  task.items = {item("c", {" e", " \xC3\xA9"}, 1)};
  HandScorer s;
  s.logprob = {{" e", -2.4}, {" \xC3\xA9", -3.0}};
  const TaskScore r = score_task(task, char_encode, s.fn(), 64, kEot);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.0);
  EXPECT_DOUBLE_EQ(r.find("acc_norm")->value, 1.0);
}

TEST(ScoreTask, GreedyClozeAccuracyAndTokenWeightedTargetPerplexity) {
  data::EvalTask task;
  task.name = "cloze";
  task.kind = data::TaskKind::kGreedyTarget;
  task.primary_metric = "acc";
  task.chance = 0;
  task.items = {item("the cat sat on the", {" mat"}, 0), item("she drank the", {" tea"}, 0),
                item("he read the", {" book"}, 0)};
  HandScorer s;
  s.logprob = {{" mat", -2.0}, {" tea", -6.0}, {" book", -7.0}};
  s.greedy = {{" mat", true}, {" tea", false}, {" book", true}};
  const TaskScore r = score_task(task, char_encode, s.fn(), 64, kEot);
  EXPECT_NEAR(r.find("acc")->value, 2.0 / 3.0, 1e-15);
  // exp(-(-2 - 6 - 7) / (4 + 4 + 5)) = exp(15 / 13)
  EXPECT_NEAR(r.find("target_ppl")->value, std::exp(15.0 / 13.0), 1e-12);
  EXPECT_TRUE(std::isnan(r.find("target_ppl")->ci_low));
  EXPECT_TRUE(std::isnan(r.find("target_ppl")->chance));
  EXPECT_DOUBLE_EQ(r.find("acc")->chance, 0.0);
  const Interval ci = wilson_interval(2, 3);
  EXPECT_DOUBLE_EQ(r.find("acc")->ci_low, ci.low);
  EXPECT_EQ(s.seen.size(), 3u);
}

TEST(ScoreTask, BadItemsAreRejected) {
  data::EvalTask task;
  task.name = "bad";
  task.primary_metric = "acc";
  task.items = {item("c", {" a", " b"}, 2)};
  HandScorer s;
  EXPECT_THROW(score_task(task, char_encode, s.fn(), 64, kEot), std::invalid_argument);
  task.items = {item("c", {" a", ""}, 0)};  // an empty choice has no token to score
  EXPECT_THROW(score_task(task, char_encode, s.fn(), 64, kEot), std::invalid_argument);
}

TEST(MakeRequest, ContextIsTruncatedFromTheLeft) {
  // Window 8: input = context + continuation[:-1] has at most 8 tokens, so a 3-token
  // continuation leaves 6 context tokens: the last six.
  const ScoreRequest r = make_request(char_encode, "abcdefghij", "xyz", 8, kEot);
  EXPECT_EQ(char_decode(r.context), "efghij");
  EXPECT_EQ(char_decode(r.continuation), "xyz");
  // Short contexts stay whole.
  EXPECT_EQ(char_decode(make_request(char_encode, "abc", "xyz", 8, kEot).context), "abc");
  // An empty context becomes the end-of-text token.
  const ScoreRequest e = make_request(char_encode, "", "xyz", 8, kEot);
  EXPECT_EQ(e.context, std::vector<int32_t>{kEot});
  // A continuation longer than the window keeps its first 8 tokens after one context token.
  const ScoreRequest l = make_request(char_encode, "abc", "0123456789", 8, kEot);
  EXPECT_EQ(char_decode(l.context), "c");
  EXPECT_EQ(char_decode(l.continuation), "01234567");

  // The choices of one item share the context the longest choice leaves: 8 + 1 - 4 = 5 tokens.
  const auto mc = make_choice_requests(char_encode, "abcdefghij", {"xy", "stuv", "z"}, 8, kEot);
  ASSERT_EQ(mc.size(), 3u);
  for (const auto& r : mc) EXPECT_EQ(char_decode(r.context), "fghij");
  EXPECT_EQ(char_decode(mc[0].continuation), "xy");
  EXPECT_EQ(char_decode(mc[1].continuation), "stuv");
  EXPECT_EQ(char_decode(mc[2].continuation), "z");
  // A choice longer than the window is cut to it, leaving one context token to all.
  const auto cut = make_choice_requests(char_encode, "abc", {"0123456789", "q"}, 8, kEot);
  EXPECT_EQ(char_decode(cut[0].context), "c");
  EXPECT_EQ(char_decode(cut[1].context), "c");
  EXPECT_EQ(char_decode(cut[0].continuation), "01234567");
  EXPECT_THROW(make_choice_requests(char_encode, "abc", {"x", ""}, 8, kEot), std::invalid_argument);

  // The scorer sees the truncated requests, one context per item.
  data::EvalTask task;
  task.name = "trunc";
  task.primary_metric = "acc";
  task.chance = 0.5;
  task.items = {item("abcdefghij", {"xyz", "uv"}, 0)};
  HandScorer s;
  s.logprob = {{"xyz", -1.0}, {"uv", -2.0}};
  score_task(task, char_encode, s.fn(), 8, kEot);
  ASSERT_EQ(s.seen.size(), 2u);
  EXPECT_EQ(char_decode(s.seen[0].context), "efghij");
  EXPECT_EQ(char_decode(s.seen[1].context), "efghij");
}

TEST(FlipRate, HandMadeMasks) {
  auto mask = [](std::vector<int> v, int64_t n, int64_t e) {
    return torch::tensor(v, torch::kInt).reshape({n, e}).to(torch::kBool);
  };
  // One layer, 2 tokens x 4 experts: 2 of 8 entries flip, both in token 0.
  const auto a0 = mask({1, 0, 1, 0, 0, 1, 1, 0}, 2, 4);
  const auto b0 = mask({0, 1, 1, 0, 0, 1, 1, 0}, 2, 4);
  FlipRate f = flip_rate({a0}, {b0});
  EXPECT_DOUBLE_EQ(f.entry, 0.25);
  EXPECT_DOUBLE_EQ(f.token, 0.5);
  EXPECT_EQ(f.tokens, 2);
  // A second layer with no change halves both averages.
  const auto a1 = mask({1, 1, 0, 0, 0, 0, 1, 1}, 2, 4);
  f = flip_rate({a0, a1}, {b0, a1.clone()});
  EXPECT_DOUBLE_EQ(f.entry, 0.125);
  EXPECT_DOUBLE_EQ(f.token, 0.25);
  // Every entry flipped.
  f = flip_rate({a0}, {a0.logical_not()});
  EXPECT_DOUBLE_EQ(f.entry, 1.0);
  EXPECT_DOUBLE_EQ(f.token, 1.0);
  EXPECT_THROW(flip_rate({a0}, {a0, a1}), std::invalid_argument);
  EXPECT_THROW(flip_rate({a0}, {mask({1, 0, 1, 0}, 1, 4)}), std::invalid_argument);

  const auto rows = flip_rows(flip_rate({a0}, {b0}), 40);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].task, "routing");
  EXPECT_EQ(rows[0].metric, "flip_rate");
  EXPECT_DOUBLE_EQ(rows[0].value, 0.25);
  EXPECT_EQ(rows[1].metric, "token_flip_rate");
  EXPECT_DOUBLE_EQ(rows[1].value, 0.5);
  EXPECT_EQ(rows[1].step, 40);

  // The snapshot survives a save/load round trip with its step.
  const auto dir = std::filesystem::path(MOEBENCH_BINARY_DIR) / "test_tmp" /
                   ("masks_" + std::to_string(std::random_device{}()));
  save_masks(dir / "calib_masks.pt", {17, {a0, a1}});
  const MaskSnapshot back = load_masks(dir / "calib_masks.pt");
  EXPECT_EQ(back.step, 17);
  ASSERT_EQ(back.masks.size(), 2u);
  EXPECT_TRUE(back.masks[0].equal(a0));
  EXPECT_TRUE(back.masks[1].equal(a1));
  std::filesystem::remove_all(dir);
}

// --- with a model -------------------------------------------------------------------------------

constexpr int64_t kVocab = 40;

models::Transformer tiny_model(const std::string& method, uint64_t seed) {
  torch::manual_seed(seed);
  models::ModelOptions o;
  o.vocab_size = kVocab;
  o.hidden = 32;
  o.layers = 2;
  o.q_heads = 2;
  o.kv_heads = 1;
  o.head_dim = 16;
  o.max_seq_len = 16;
  o.init_std = 0.05;  // RF: ‖Ax‖ ≈ 0.05·sqrt(32·16) ≈ 1.1, so θ near 1 splits the experts
  o.moe.method = method;
  o.moe.experts = 4;
  o.moe.intermediate = 32;
  o.moe.rank = 16;
  o.moe.top_k = 2;
  const auto& spec = baselines::find_method(method);
  o.make_policy = spec.make_policy;
  if (spec.ffn_width) o.dense_intermediate = spec.ffn_width(o.moe);
  auto m = models::Transformer(o);
  m->eval();
  return m;
}

// Slow reference: one request alone, no padding, log-softmax and argmax per position in double.
ScoreResult slow_score(models::TransformerImpl& model, const ScoreRequest& r) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids(r.context.begin(), r.context.end());
  ids.insert(ids.end(), r.continuation.begin(), r.continuation.end() - 1);
  const auto logits =
      model.forward(torch::tensor(ids, torch::kLong).unsqueeze(0)).logits[0].to(torch::kDouble);
  const auto acc = logits.accessor<double, 2>();
  ScoreResult out;
  out.greedy = true;
  for (size_t k = 0; k < r.continuation.size(); ++k) {
    const int64_t t = static_cast<int64_t>(r.context.size() + k) - 1;
    double mx = -INFINITY;
    int64_t arg = 0;
    for (int64_t v = 0; v < kVocab; ++v) {
      if (acc[t][v] > mx) mx = acc[t][v], arg = v;
    }
    double z = 0;
    for (int64_t v = 0; v < kVocab; ++v) z += std::exp(acc[t][v] - mx);
    out.logprob += acc[t][r.continuation[k]] - mx - std::log(z);
    out.greedy = out.greedy && arg == r.continuation[k];
    ++out.tokens;
  }
  return out;
}

TEST(ModelScorer, BatchedEqualsOneRequestAtATime) {
  // Methods that route each token alone (Switch's capacity couples a forward's tokens).
  for (const std::string method : {"routing_free", "topk"}) {
    auto model = tiny_model(method, 7);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int32_t> tok(1, kVocab - 1);
    std::vector<ScoreRequest> requests;
    for (int i = 0; i < 9; ++i) {
      ScoreRequest r;
      const int ctx = 1 + i % 7, cont = 1 + (i * 5) % 6;  // input lengths 1..12, mixed
      for (int k = 0; k < ctx; ++k) r.context.push_back(tok(rng));
      for (int k = 0; k < cont; ++k) r.continuation.push_back(tok(rng));
      requests.push_back(r);
    }
    // A request whose continuation is the model's own greedy choice.
    ScoreRequest g;
    g.context = {5, 9, 2};
    {
      torch::NoGradGuard no_grad;
      const auto logits = model->forward(torch::tensor({5L, 9L, 2L}).unsqueeze(0)).logits;
      g.continuation = {static_cast<int32_t>(logits[0][2].argmax().item<int64_t>())};
    }
    requests.push_back(g);
    // 3 rows per forward: four batches of mixed lengths, right-padded.
    const auto batched = model_scorer(*model, torch::kCPU, 3, 4096)(requests);
    ASSERT_EQ(batched.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const ScoreResult ref = slow_score(*model, requests[i]);
      EXPECT_NEAR(batched[i].logprob, ref.logprob, 1e-4) << method << " request " << i;
      EXPECT_EQ(batched[i].tokens, ref.tokens);
      EXPECT_EQ(batched[i].greedy, ref.greedy) << method << " request " << i;
    }
    EXPECT_TRUE(batched.back().greedy) << method;
    // Padding never changes a score: the same request alone vs in a padded batch.
    for (size_t i = 0; i < requests.size(); ++i) {
      const auto alone = model_scorer(*model, torch::kCPU, 1, 4096)({requests[i]});
      EXPECT_NEAR(alone[0].logprob, batched[i].logprob, 1e-4);
    }
  }
}

TEST(ModelScorer, ChoicesSharingAContextArePackedWithTheSameScores) {
  // Multiple-choice items: each context followed by its choices, as score_task lays them out.
  // The scorer packs an item into one row of up to two windows (context once, then every choice
  // on its own); every score must equal the slow one-request-at-a-time reference. Contexts of
  // 2..11 tokens and choices of 1..4 tokens in a window of 16, so many rows are longer than the
  // window; the last item (8 choices of 4 tokens after 12) does not fit 32 and splits.
  // Switch's capacity couples a forward's tokens, so it is scored unpacked: with one row per
  // forward its scores equal the reference too (packed, its choices would share a capacity).
  for (const std::string method : {"routing_free", "topk", "dense", "switch"}) {
    auto model = tiny_model(method, 5);
    std::mt19937 rng(8);
    std::uniform_int_distribution<int32_t> tok(1, kVocab - 1);
    std::vector<ScoreRequest> requests;
    for (int item = 0; item < 7; ++item) {
      const bool wide = item == 6;
      std::vector<int32_t> context;
      for (int k = 0; k < (wide ? 12 : 2 + (item * 3) % 10); ++k) context.push_back(tok(rng));
      for (int c = 0; c < (wide ? 8 : 4); ++c) {
        ScoreRequest r;
        r.context = context;
        for (int k = 0; k < (wide ? 4 : 1 + (item + c) % 4); ++k) {
          r.continuation.push_back(tok(rng));
        }
        requests.push_back(r);
      }
    }
    const int64_t rows = method == "switch" ? 1 : 4;
    const auto scored = model_scorer(*model, torch::kCPU, rows, 4096)(requests);
    ASSERT_EQ(scored.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const ScoreResult ref = slow_score(*model, requests[i]);
      EXPECT_NEAR(scored[i].logprob, ref.logprob, 1e-4) << method << " request " << i;
      EXPECT_EQ(scored[i].tokens, ref.tokens) << method << " request " << i;
      EXPECT_EQ(scored[i].greedy, ref.greedy) << method << " request " << i;
    }
    // Without the argmax (how score_task asks for choices) the scores stay and greedy is false.
    auto likelihood_only = requests;
    for (auto& r : likelihood_only) r.want_greedy = false;
    const auto lo = model_scorer(*model, torch::kCPU, rows, 4096)(likelihood_only);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(lo[i].logprob, scored[i].logprob) << method << " request " << i;
      EXPECT_FALSE(lo[i].greedy);
    }
  }
}

// A shard of documents with lengths around the window, so rows are truncated and padded.
std::filesystem::path write_shard(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const data::VocabInfo vocab{"test", 1, static_cast<uint32_t>(kVocab), 0};
  data::ShardWriter w(dir / "val.bin", vocab);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> tok(1, kVocab - 1);
  const int lengths[] = {3, 20, 7, 15, 1, 11, 16, 5, 9, 30, 2};
  for (size_t d = 0; d < std::size(lengths); ++d) {
    std::vector<int32_t> ids;
    for (int k = 0; k < lengths[d]; ++k) ids.push_back(tok(rng));
    w.add_document(ids, 1000 + d, 0);
  }
  w.finish();
  return dir / "val.bin";
}

TEST(ValidationLoss, TokenWeightedPerplexityEqualsSlowPerSequenceLoop) {
  const auto dir = std::filesystem::path(MOEBENCH_BINARY_DIR) / "test_tmp" /
                   ("val_" + std::to_string(std::random_device{}()));
  const auto path = write_shard(dir);
  data::ShardReader shard(path);
  const data::BatchSampler sampler(shard, data::SampleMode::kPadded, 16, 3, 42);
  ASSERT_EQ(sampler.num_samples(), 11);
  auto model = tiny_model("routing_free", 5);
  models::BalanceStats stats;
  // 11 rows in batches of 3: three whole batches (rows 0..8) are read.
  const ValResult r = validation_loss(*model, sampler, 3, 0, torch::kCPU, &stats);
  EXPECT_EQ(r.sequences, 9);

  // Reference: each row alone, trimmed to its real tokens (no padding at all), double sums.
  torch::NoGradGuard no_grad;
  double nll = 0;
  int64_t tokens = 0;
  std::vector<int64_t> active(2, 0);
  for (int64_t id = 0; id < 9; ++id) {
    const data::Batch b = sampler.make_batch({id});
    int64_t len = 0;
    while (len < b.seq_len && b.mask[len]) ++len;
    for (int64_t t = len; t < b.seq_len; ++t) ASSERT_EQ(b.mask[t], 0) << "mask is not a prefix";
    std::vector<int64_t> ids(b.inputs.begin(), b.inputs.begin() + len);
    const auto out = model->forward(torch::tensor(ids, torch::kLong).unsqueeze(0));
    const auto logits = out.logits[0].to(torch::kDouble);
    const auto acc = logits.accessor<double, 2>();
    for (int64_t t = 0; t < len; ++t) {
      double mx = -INFINITY;
      for (int64_t v = 0; v < kVocab; ++v) mx = std::max(mx, acc[t][v]);
      double z = 0;
      for (int64_t v = 0; v < kVocab; ++v) z += std::exp(acc[t][v] - mx);
      nll -= acc[t][b.targets[t]] - mx - std::log(z);
    }
    tokens += len;
    for (size_t l = 0; l < out.routing.size(); ++l) {
      active[l] += out.routing[l].active_NE.to(torch::kLong).sum().item<int64_t>();
    }
  }
  EXPECT_EQ(r.tokens, tokens);
  EXPECT_NEAR(r.loss, nll / static_cast<double>(tokens), 1e-5);
  EXPECT_NEAR(r.ppl, std::exp(nll / static_cast<double>(tokens)), 1e-4 * r.ppl);
  // Density of the same forwards: active pairs / (real tokens · E), averaged over layers.
  ASSERT_EQ(stats.num_layers(), 2);
  const double density = (active[0] + active[1]) / (2.0 * static_cast<double>(tokens) * 4.0);
  EXPECT_NEAR(stats.mean_summary().at("density"), density, 1e-12);

  // max_batches caps the rows read.
  EXPECT_EQ(validation_loss(*model, sampler, 3, 1, torch::kCPU).sequences, 3);

  // θ sweep: the trained θ reproduces the plain loss, density never rises with θ, and θ is
  // restored afterwards.
  const auto points = theta_sweep(*model, sampler, 3, 0, torch::kCPU, {0.0, 1.0, 1.2, 100.0}, 1.0);
  ASSERT_EQ(points.size(), 4u);
  EXPECT_NEAR(points[1].val.loss, r.loss, 1e-12);
  EXPECT_NEAR(points[1].density, density, 1e-12);
  EXPECT_DOUBLE_EQ(points[0].density, 1.0);  // θ = 0: every gate with s > 0 is on
  EXPECT_DOUBLE_EQ(points[3].density, 0.0);
  for (size_t i = 1; i < points.size(); ++i) EXPECT_LE(points[i].density, points[i - 1].density);
  EXPECT_NEAR(validation_loss(*model, sampler, 3, 0, torch::kCPU).loss, r.loss, 1e-12);
  const auto rows = val_rows(points[2].val, 30, points[2].theta, points[2].density);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].metric, "density");
  EXPECT_EQ(rows[0].theta, 1.2);
  auto dense = tiny_model("topk", 5);
  EXPECT_THROW(theta_sweep(*dense, sampler, 3, 0, torch::kCPU, {0.5}, 1.0), std::invalid_argument);

  // Calibration masks: real tokens only, one [N, E] mask per layer, and a model compared with
  // itself flips nothing.
  const data::Batch calib = sampler.make_batch({0, 1, 2});
  const auto to_long = [&](const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong).reshape({3, 16});
  };
  const auto mask_BT =
      torch::tensor(std::vector<int64_t>(calib.mask.begin(), calib.mask.end())).reshape({3, 16});
  const auto masks = routing_masks(*model, to_long(calib.inputs), mask_BT);
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].size(0), calib.real_tokens);
  EXPECT_EQ(masks[0].size(1), 4);
  EXPECT_DOUBLE_EQ(flip_rate(masks, masks).entry, 0.0);
  std::filesystem::remove_all(dir);
}

// --- the evaluator's rows in `moebench table` ------------------------------------------------

TEST(ReportColumns, PrimaryAccuracyWithChanceAndDeadExpertsMeanStd) {
  const auto dir = std::filesystem::path(MOEBENCH_BINARY_DIR) / "test_tmp" /
                   ("report_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  {
    Store store((dir / "db.sqlite").string());
    // Two seeds of one method: imdb acc 0.50 / 0.60 (primary acc), next_sentence acc_norm
    // 0.30 / 0.40 (primary acc_norm, whose acc of 0.9 must not show), dead 1 / 2.
    const double imdb[] = {0.5, 0.6}, ns[] = {0.3, 0.4}, dead[] = {1.0, 2.0};
    for (int seed = 0; seed < 2; ++seed) {
      RunRow r;
      r.run_key = "rf-" + std::to_string(seed);
      r.config_json = "{}";
      r.method = "routing_free";
      r.size = "micro";
      r.seed = seed;
      store.begin_run(r);
      TaskScore a{"imdb",
                  "acc",
                  0.5,
                  10,
                  {{"acc", imdb[seed], 10, 0.2, 0.8, 0.5}, {"acc_norm", 0.99, 10, 0.2, 0.8, 0.5}}};
      TaskScore b{"next_sentence",
                  "acc_norm",
                  0.25,
                  10,
                  {{"acc", 0.9, 10, 0.1, 0.9, 0.25}, {"acc_norm", ns[seed], 10, 0.1, 0.9, 0.25}}};
      std::vector<EvalRow> rows = val_rows({3.0, std::exp(3.0), 100, 4}, 30, std::nullopt);
      for (const auto& t : {a, b}) {
        const auto tr = task_rows(t, 30);
        rows.insert(rows.end(), tr.begin(), tr.end());
        // An earlier evaluation and a θ-sweep row must not count.
        auto early = task_rows(t, 10);
        for (auto& e : early) e.value = 0.0;
        rows.insert(rows.end(), early.begin(), early.end());
        auto swept = task_rows(t, 30, 0.5);
        for (auto& e : swept) e.value = 0.0;
        rows.insert(rows.end(), swept.begin(), swept.end());
      }
      store.append_evals(r.run_key, rows);
      store.append_layer_stats(r.run_key, {{30, -1, -1, "dead", dead[seed]}});
      store.finish_run(r.run_key, RunStatus::kDone, 30, 1.0);
    }
    const report::Table table = report::comparison_table(store);
    std::vector<std::string> names;
    for (const auto& c : table.columns) names.push_back(c.name);
    const auto at = [&](const std::string& name) {
      const auto it = std::find(names.begin(), names.end(), name);
      EXPECT_NE(it, names.end()) << "no column '" << name << "'";
      return static_cast<size_t>(it - names.begin());
    };
    const size_t imdb_col = at("imdb acc (chance 0.50)");
    const size_t ns_col = at("next_sentence acc_norm (chance 0.25)");
    const size_t dead_col = at("dead");
    EXPECT_LT(imdb_col, ns_col);  // table order: imdb, cloze, next_sentence, wordnet
    ASSERT_EQ(table.rows.size(), 1u);
    const auto& row = table.rows[0];
    // mean 0.55, sample std sqrt(0.005) = 0.0707
    EXPECT_EQ(row[imdb_col].text, "0.550 ± 0.071");
    EXPECT_NEAR(std::stod(row[imdb_col].csv[0]), 0.55, 1e-12);
    EXPECT_NEAR(std::stod(row[imdb_col].csv[1]), std::sqrt(0.005), 1e-12);
    EXPECT_EQ(row[ns_col].text, "0.350 ± 0.071");
    EXPECT_EQ(row[dead_col].text, "1.50 ± 0.71");
    EXPECT_EQ(table.columns[imdb_col].csv_names[0], "imdb_acc_mean");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moebench::eval
