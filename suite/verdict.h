// `moebench verdict`: the paper's claims judged from paired seeds. Torch-free (it reads the
// store and renders suite/table.h tables); the statistics are in suite/stats.h.
// Spec: shared/DESIGN.md "Verdicts, not just numbers"; published figures:
// shared/spec/PAPER_RESULTS.md.
//
// Seeds are paired: the same seed gives every method the same data order, so a claim about two
// methods is judged from the per-seed differences of their 'done' runs with the same size and
// seed, never from two independent means. Runs pair only when they share a setup: the same size
// name and the same experiment apart from the method (the config's model section, train.steps,
// train.dtype, data.mode, data.batch_size, moe.experts and eval.val_batches). One size with two
// setups (say, 300 and 600 steps) gives two sets of rows, "micro#1" (the setup with the most
// runs) and "micro#2", explained in a footnote. Two 'done' runs of one method, setup and seed
// (different method options) are reported and left out, not silently chosen between.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/stats.h"
#include "suite/store.h"
#include "suite/table.h"

namespace moebench::verdict {

// A store that gives nothing to judge (no 'done' runs, an unknown --size); the message says
// what to do next.
class VerdictError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  double margin = 0.01;          // equivalence margin of the val loss claims, in nats (--margin)
  double density_margin = 0.01;  // RF's density must stay within rho* ± this after warm-up
  double level = 0.95;           // of the t-intervals (the TOST alpha is (1 - level) / 2)
  std::string size;              // only this size; "" = every size
  // A method's name as the tables show it (the CLI passes report::method_label, which marks
  // methods with a caveat); empty = the name itself.
  std::function<std::string(const std::string&)> label;
};

// --- setups ------------------------------------------------------------------------------------
// What runs must share to be compared: the claims pair runs of one setup, and `moebench report`
// (suite/html_report.h) draws one band per method and setup, from these same functions.

// A config's setup keys: "section.key" -> value.
using SetupKeys = std::map<std::string, nlohmann::json>;

// The setup keys of a stored config (runs.config_json, parsed): the whole model section and the
// pairing keys train.steps, train.dtype, data.mode, data.batch_size, moe.experts and
// eval.val_batches. With method_options, also the whole moe section: the method's own options,
// which runs of different methods need not share but runs of one method must, to count as seeds
// of one experiment (the claims leave out two runs of one method, setup and seed that differ
// there). A key the config lacks is absent (hand-made or older configs); a config that is not
// an object has none.
SetupKeys setup_keys(const nlohmann::json& config, bool method_options = false);

// The names of the keys whose values differ between a and b (a key on one side only differs),
// in name order.
std::vector<std::string> differing_keys(const SetupKeys& a, const SetupKeys& b);

// A key's value as text: its JSON ("normal" with quotes, 600) or, with bare_strings, a string
// without quotes (normal); "(none)" where the key is absent.
std::string key_value_text(const SetupKeys& keys, const std::string& name,
                           bool bare_strings = false);

// How a claim came out.
//  - kHolds: the interval lies entirely on the claimed side of 0 (within the margin, for an
//    equivalence claim: the TOST says equivalent).
//  - kReversed: the interval lies entirely on the other side of 0.
//  - kEquivalent: neither, but the TOST says the difference lies within ±margin (only claims
//    with an equivalence margin: the val loss ones).
//  - kFails: an equivalence claim whose interval lies entirely outside ±margin.
//  - kUndecided: none of these; seeds_needed estimates the seeds the observed spread would need.
//  - kNoData: no seed gave a value.
enum class Outcome { kHolds, kReversed, kEquivalent, kFails, kUndecided, kNoData };
std::string to_string(Outcome outcome);  // "holds", "reversed", ..., "no_data"

// One row of the claims table.
struct ClaimRow {
  std::string id;     // stable: "rf_below_topk", "rf_density_at_target", ...
  std::string claim;  // as shown, with method labels
  std::string size;   // the setup: the size name, or "micro#2" when a size has several setups
  std::vector<int64_t> seeds;  // ascending
  std::vector<double> values;  // per seed: the paired difference or the per-run figure
  stats::Interval interval;    // of the values, at Options::level
  stats::TostResult tost;      // for claims with an equivalence margin (else the n < 2 default)
  Outcome outcome = Outcome::kNoData;
  // kUndecided with n >= 2: the fewest seeds at which the observed mean and spread would settle
  // the claim (an interval clear of 0, or inside ±margin where the claim has a margin).
  std::optional<int> seeds_needed;
  std::string verdict;                                      // "holds", "undecided: ~18 seeds", ...
  double paper = std::numeric_limits<double>::quiet_NaN();  // the published figure, if any
  std::string paper_text;                                   // "S: -0.130", "-" without one
  std::string detail;  // what else the row needs: rho*, seeds with monotone density, metric
  std::optional<double> margin;  // the equivalence margin the TOST used; nullopt = none
  bool percent = false;          // values are fractions shown as percentages (relative entropy)
  int digits = 3;                // decimals of the per-seed values as shown (mean, CI: one more)
};

// One row of the seed-to-seed spread table: a method's final val losses in one setup.
struct SpreadRow {
  std::string method;
  std::string size;  // the setup, as in ClaimRow
  std::vector<int64_t> seeds;
  int n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double sd = std::numeric_limits<double>::quiet_NaN();  // sample std; NaN for one seed
  double min = std::numeric_limits<double>::quiet_NaN();
  double max = std::numeric_limits<double>::quiet_NaN();
};

struct Verdict {
  std::vector<ClaimRow> claims;  // by setup (sizes tiny < micro < S < M < L), then claim order
  std::vector<SpreadRow> spread;
  // What the reader needs to trust the rows: setups, runs left out (not 'done', duplicates,
  // unpaired seeds, no val loss), which entropy metric claim 8 used.
  std::vector<std::string> notes;
};

// Judges every claim in every setup that has runs of the methods the claim compares. Throws
// VerdictError when the store has no 'done' runs (at options.size, when given).
//
// The claims, with the value each seed contributes:
//  1-5. routing_free < topk, < aoe, < remoe; remoe < topk; aoe < topk: the difference of the
//       final val losses (last evals row task 'val', metric 'loss' at the trained threshold).
//  6.   RF's density held at rho* ± density_margin after warm-up: the mean of steps.density over
//       the steps after optim.warmup_steps, minus moe.rho_target (default 0.25); judged by TOST.
//  7.   theta trades compute for loss: the least-squares slope of val loss on density over the
//       run's theta sweep (nats per unit density; negative = more compute, lower loss); the
//       detail counts the seeds whose density falls monotonically as theta rises.
//  8.   self_routing's routing entropy above topk's: the relative difference of layer_stats
//       'routing_entropy' (else the normalised load 'entropy'), and, as "at similar loss", the
//       val loss difference self_routing - topk judged by TOST with the loss margin.
Verdict judge(Store& store, const Options& options = {});

// Columns: claim, size, n, per-seed values, mean, 95% CI, verdict, paper, detail. csv fields:
// claim_id, claim, size, n, seeds, values (';'-separated, in seed order), mean, ci_low,
// ci_high, verdict, outcome, seeds_needed, tost_p, paper, detail.
Table claims_table(const Verdict& verdict, const Options& options = {});
// Columns: method, size, n, seeds, mean val loss, std, min, max.
Table spread_table(const Verdict& verdict, const Options& options = {});

}  // namespace moebench::verdict
