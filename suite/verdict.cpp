// `moebench verdict`: the paper's claims judged from paired seeds; see verdict.h.
// Steps: read the 'done' runs -> split them into setups (size + shared experiment keys) ->
// index each setup by method and seed (duplicates reported, left out) -> one row per claim from
// the per-seed values -> the seed-to-seed spread of every method -> tables.
#include "suite/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

namespace moebench::verdict {
namespace {

using Json = nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kNone = "-";
constexpr double kDefaultRhoTarget = 0.25;  // moe.rho_target's default (shared/spec/METHODS.md)
constexpr int kMaxSeeds = 10000;            // beyond this, "undecided" gives no seed count
constexpr size_t kShownValues = 8;          // per-seed values shown in term and md

// --- number formatting ---------------------------------------------------------------------------

// How one claim's values read: signed fixed decimals, or percentages of a fraction.
struct NumberStyle {
  int digits = 3;
  bool percent = false;

  std::string operator()(double x) const {
    if (std::isnan(x)) return kNone;
    char format[32];
    std::snprintf(format, sizeof(format), percent ? "%%+.%df%%%%" : "%%+.%df", digits);
    return format_printf(format, percent ? 100 * x : x);
  }
};

std::string margin_text(double margin) { return format_printf("±%g", margin); }

// --- runs and setups -----------------------------------------------------------------------------

int size_rank(const std::string& size) {
  static const std::vector<std::string> order = {"tiny", "micro", "S", "M", "L"};
  const auto it = std::find(order.begin(), order.end(), size);
  return static_cast<int>(it - order.begin());  // unknown sizes after the named ones
}

bool size_less(const std::string& a, const std::string& b) {
  if (size_rank(a) != size_rank(b)) return size_rank(a) < size_rank(b);
  return a < b;
}

// A 'done' run and the figures every claim may read.
struct RunData {
  RunRow run;
  // An object; {} when config_json does not parse (not written by our trainer). Held by pointer:
  // Json's move may throw, which would make RunData's own moves throwing.
  std::shared_ptr<Json> config = std::make_shared<Json>(Json::object());
  double val_loss = kNaN;
};

double number_at(const Json& config, const char* section, const char* name, double fallback) {
  if (!config.contains(section) || !config[section].is_object()) return fallback;
  const Json& s = config[section];
  if (!s.contains(name) || !s[name].is_number()) return fallback;
  return s[name].get<double>();
}

// One setup: the runs of one size that share the pairing keys, by method and seed.
struct Setup {
  std::string size;
  std::string label;  // size, or size#k when the size has several setups
  SetupKeys keys;
  std::map<std::string, std::map<int64_t, std::vector<const RunData*>>> all;  // method, seed
  std::map<std::string, std::map<int64_t, const RunData*>> runs;  // unique (method, seed) only

  // Any 'done' run, even one left out as a duplicate: its claims then show why they lack data.
  bool has(const std::string& method) const { return all.count(method) > 0; }
  const std::map<int64_t, const RunData*>& of(const std::string& method) const {
    static const std::map<int64_t, const RunData*> none;
    const auto it = runs.find(method);
    return it == runs.end() ? none : it->second;
  }
};

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

// "2 running, 1 failed" in lifecycle order.
std::string status_summary(const std::vector<RunRow>& runs) {
  static const RunStatus order[] = {RunStatus::kRunning, RunStatus::kInterrupted,
                                    RunStatus::kDiverged, RunStatus::kFailed};
  std::vector<std::string> parts;
  for (RunStatus status : order) {
    const auto n = std::count_if(runs.begin(), runs.end(),
                                 [&](const RunRow& r) { return r.status == status; });
    if (n > 0) parts.push_back(std::to_string(n) + " " + to_string(status));
  }
  return join(parts, ", ");
}

// The final val loss at the trained threshold; a run that stored only a perplexity gives its
// log (the same loss), as in `moebench table`.
double final_val_loss(Store& store, const std::string& run_key) {
  if (auto row = store.last_eval(run_key, {"val", "loss", /*trained_theta_only=*/true})) {
    return row->value;
  }
  if (auto row = store.last_eval(run_key, {"val", "ppl", /*trained_theta_only=*/true})) {
    return std::log(row->value);
  }
  return kNaN;
}

// The context the claims read from.
struct Context {
  Store& store;
  const Options& options;
  std::function<std::string(const std::string&)> label;
  std::vector<RunData> runs;  // the 'done' runs (stable: setups point into it)
  std::vector<Setup> setups;  // in size order
  std::vector<std::string> notes;
};

// Reads the 'done' runs (of options.size) and notes the others.
void read_runs(Context& c) {
  std::vector<RunRow> not_done;
  std::set<std::string> sizes_done;
  for (RunRow& run : c.store.runs()) {
    if (run.status == RunStatus::kDone) sizes_done.insert(run.size);
    if (!c.options.size.empty() && run.size != c.options.size) continue;
    if (run.status != RunStatus::kDone) {
      not_done.push_back(std::move(run));
      continue;
    }
    RunData d;
    *d.config = Json::parse(run.config_json, nullptr, /*allow_exceptions=*/false);
    if (!d.config->is_object()) *d.config = Json::object();
    d.val_loss = final_val_loss(c.store, run.run_key);
    d.run = std::move(run);
    c.runs.push_back(std::move(d));
  }
  if (c.runs.empty()) {
    if (!c.options.size.empty() && !sizes_done.empty()) {
      std::vector<std::string> sizes(sizes_done.begin(), sizes_done.end());
      std::sort(sizes.begin(), sizes.end(), size_less);
      throw VerdictError("no 'done' runs of size '" + c.options.size + "' in '" + c.store.path() +
                         "': sizes with 'done' runs: " + join(sizes, ", "));
    }
    throw VerdictError("no 'done' runs in '" + c.store.path() +
                       "': train paired seeds of the methods first, e.g. `moebench matrix "
                       "--plan suite/plans/micro.toml` with seeds = [1, 2, 3]");
  }
  if (!not_done.empty()) {
    c.notes.push_back("left out " + std::to_string(not_done.size()) + " run" +
                      (not_done.size() == 1 ? "" : "s") + " that " +
                      (not_done.size() == 1 ? "is" : "are") + " not 'done' (" +
                      status_summary(not_done) + ")");
  }
}

// "model.layers=8, train.steps=600" where setup b differs from setup a.
std::string key_differences(const Setup& a, const Setup& b) {
  std::vector<std::string> parts;
  for (const auto& name : differing_keys(a.keys, b.keys)) {
    std::string part = name;
    part += "=";
    part += key_value_text(b.keys, name);
    part += " (";
    part += a.label;
    part += ": ";
    part += key_value_text(a.keys, name);
    part += ")";
    parts.push_back(std::move(part));
  }
  return join(parts, ", ");
}

// Splits the runs into setups and indexes them; notes duplicates and several setups.
void build_setups(Context& c) {
  std::map<std::string, std::vector<Setup>> by_size;
  for (const RunData& d : c.runs) {
    std::vector<Setup>& list = by_size[d.run.size];
    SetupKeys keys = setup_keys(*d.config);
    auto it =
        std::find_if(list.begin(), list.end(), [&](const Setup& s) { return s.keys == keys; });
    if (it == list.end()) {
      list.push_back(Setup{d.run.size, d.run.size, std::move(keys), {}, {}});
      it = list.end() - 1;
    }
    it->all[d.run.method][d.run.seed].push_back(&d);
  }
  std::vector<std::string> sizes;
  sizes.reserve(by_size.size());
  for (const auto& [size, list] : by_size) sizes.push_back(size);
  std::sort(sizes.begin(), sizes.end(), size_less);
  for (const auto& size : sizes) {
    std::vector<Setup>& list = by_size[size];
    // The setup with the most runs first (the main experiment; the store's order of runs made
    // at the same millisecond is by key, so first appearance would not be stable).
    const auto count = [](const Setup& s) {
      size_t n = 0;
      for (const auto& [method, seeds] : s.all) {
        for (const auto& [seed, runs] : seeds) n += runs.size();
      }
      return n;
    };
    std::stable_sort(list.begin(), list.end(), [&](const Setup& a, const Setup& b) {
      if (count(a) != count(b)) return count(a) > count(b);
      return Json(a.keys).dump() < Json(b.keys).dump();
    });
    if (list.size() > 1) {
      for (size_t k = 0; k < list.size(); ++k) list[k].label = size + "#" + std::to_string(k + 1);
      std::vector<std::string> parts;
      for (size_t k = 1; k < list.size(); ++k) {
        parts.push_back(list[k].label + ": " + key_differences(list[0], list[k]));
      }
      c.notes.push_back("size " + size + " has " + std::to_string(list.size()) +
                        " setups whose runs are not paired with each other: " + join(parts, "; "));
    }
    for (Setup& s : list) {
      for (const auto& [method, seeds] : s.all) {
        for (const auto& [seed, runs] : seeds) {
          if (runs.size() == 1) {
            s.runs[method][seed] = runs.front();
            continue;
          }
          std::vector<std::string> keys;
          for (const RunData* d : runs) keys.push_back(d->run.run_key);
          c.notes.push_back(c.label(method) + " at " + s.label + ", seed " + std::to_string(seed) +
                            ": " + std::to_string(runs.size()) +
                            " 'done' runs with different configs (" + join(keys, ", ") +
                            "); left out of every claim and the spread rather than one picked "
                            "(`moebench runs` lists them)");
        }
      }
      c.setups.push_back(std::move(s));
    }
  }
}

// --- judging one claim ---------------------------------------------------------------------------

enum class Side {
  kBelow,   // the claim: the value is < 0
  kAbove,   // the claim: the value is > 0
  kWithin,  // the claim: the value lies within ±margin (equivalence)
};

struct ClaimSpec {
  Side side = Side::kBelow;
  std::optional<double> margin;  // equivalence margin; required for kWithin
  NumberStyle style;
};

std::string undecided(std::optional<int> seeds, const std::string& otherwise) {
  if (seeds) return "undecided: ~" + std::to_string(*seeds) + " seeds";
  return "undecided: " + otherwise;
}

// Interval, TOST and verdict of row.values. The TOST runs at alpha = (1 - level) / 2, so that
// "equivalent" means exactly that the interval shown in the table lies inside ±margin.
void judge_values(ClaimRow& row, const ClaimSpec& spec, const Options& options,
                  const std::string& no_data) {
  const double level = options.level;
  row.percent = spec.style.percent;
  row.digits = spec.style.digits;
  row.margin = spec.margin;
  row.interval = stats::t_interval(row.values, level);
  if (spec.margin) row.tost = stats::tost(row.values, *spec.margin, (1 - level) / 2);
  const stats::Interval& ci = row.interval;
  if (ci.n == 0) {
    row.outcome = Outcome::kNoData;
    row.verdict = "no data: " + no_data;
    return;
  }
  row.outcome = Outcome::kUndecided;
  if (ci.n == 1) {
    row.verdict = "undecided: need ≥ 2 seeds";
    return;
  }
  const double mean = ci.mean;
  if (spec.side == Side::kWithin) {
    const double m = *spec.margin;
    if (row.tost.equivalent) {
      row.outcome = Outcome::kHolds;
      row.verdict = "holds (within " + margin_text(m) + ")";
    } else if (ci.low >= m || ci.high <= -m) {
      row.outcome = Outcome::kFails;
      row.verdict = "fails (outside " + margin_text(m) + ")";
    } else {
      // Inside the margin: seeds until the interval fits inside it; outside: until it clears it.
      const double distance = std::fabs(std::fabs(mean) - m);
      row.seeds_needed = stats::seeds_for_half_width(ci.sd, distance, level, kMaxSeeds);
      row.verdict =
          undecided(row.seeds_needed, distance == 0 ? "mean on the margin"
                                                    : "> " + std::to_string(kMaxSeeds) + " seeds");
    }
    return;
  }
  const bool below = ci.high < 0;
  const bool above = ci.low > 0;
  if (spec.side == Side::kBelow ? below : above) {
    row.outcome = Outcome::kHolds;
    row.verdict = "holds";
  } else if (spec.side == Side::kBelow ? above : below) {
    row.outcome = Outcome::kReversed;
    row.verdict = "reversed";
  } else if (spec.margin && row.tost.equivalent) {
    row.outcome = Outcome::kEquivalent;
    row.verdict = "equivalent (" + margin_text(*spec.margin) + ")";
  } else {
    // The fewest seeds at which this mean and spread settle the claim either way: an interval
    // clear of 0 or, where the claim has a margin, one inside it.
    row.seeds_needed = stats::seeds_needed(mean, ci.sd, level, kMaxSeeds);
    if (spec.margin && std::fabs(mean) < *spec.margin) {
      const std::optional<int> inside =
          stats::seeds_for_half_width(ci.sd, *spec.margin - std::fabs(mean), level, kMaxSeeds);
      if (inside && (!row.seeds_needed || *inside < *row.seeds_needed)) row.seeds_needed = inside;
    }
    row.verdict =
        undecided(row.seeds_needed,
                  mean == 0 ? "mean exactly 0" : "> " + std::to_string(kMaxSeeds) + " seeds");
  }
}

// --- per-run figures -----------------------------------------------------------------------------

// A run's balance figures at its last step with layer summaries: the layer = -1 row (the
// trainer's average over layers), else the mean of the per-layer rows.
std::map<std::string, double> balance_of(Store& store, const std::string& run_key) {
  std::map<std::string, double> overall;
  std::map<std::string, std::vector<double>> per_layer;
  for (const LayerStatRow& row : store.last_layer_summaries(run_key)) {
    if (std::isnan(row.value)) continue;
    if (row.layer < 0) {
      overall[row.metric] = row.value;
    } else {
      per_layer[row.metric].push_back(row.value);
    }
  }
  std::map<std::string, double> out;
  for (const auto& [metric, values] : per_layer) out[metric] = stats::mean(values);
  for (const auto& [metric, value] : overall) out[metric] = value;
  return out;
}

double figure(const std::map<std::string, double>& figures, const std::string& name) {
  const auto it = figures.find(name);
  return it == figures.end() ? kNaN : it->second;
}

// The mean density after warm-up minus rho*: (value, rho*, warm-up steps).
struct DensityFigure {
  double offset = kNaN;
  double rho = kDefaultRhoTarget;
  double warmup = 0;
};

DensityFigure density_offset(Store& store, const RunData& d) {
  DensityFigure f;
  f.rho = number_at(*d.config, "moe", "rho_target", kDefaultRhoTarget);
  f.warmup = number_at(*d.config, "optim", "warmup_steps", 0);
  std::vector<double> densities;
  for (const StepRow& step : store.steps(d.run.run_key)) {
    if (static_cast<double>(step.step) > f.warmup && !std::isnan(step.density)) {
      densities.push_back(step.density);
    }
  }
  if (!densities.empty()) f.offset = stats::mean(densities) - f.rho;
  return f;
}

// The θ sweep at the run's last step that has one: (θ, val loss, density), ascending θ.
struct SweepPoint {
  double theta = kNaN;
  double loss = kNaN;
  double density = kNaN;
};

std::vector<SweepPoint> theta_sweep(Store& store, const std::string& run_key) {
  std::map<int64_t, std::map<double, SweepPoint>> by_step;
  for (const EvalRow& row : store.evals(run_key, {"val", "", /*trained_theta_only=*/false})) {
    if (!row.theta) continue;
    SweepPoint& p = by_step[row.step][*row.theta];
    p.theta = *row.theta;
    if (row.metric == "loss") p.loss = row.value;
    if (row.metric == "density") p.density = row.value;
  }
  std::vector<SweepPoint> points;
  if (by_step.empty()) return points;
  for (const auto& [theta, p] : by_step.rbegin()->second) {
    if (!std::isnan(p.loss) && !std::isnan(p.density)) points.push_back(p);
  }
  return points;
}

// --- the claims ----------------------------------------------------------------------------------

const char* const kRoutingFree = "routing_free";
const char* const kTopk = "topk";
const char* const kSelfRouting = "self_routing";

// The published perplexities as loss differences ln(ppl_a / ppl_b), by scale.
struct LossClaim {
  const char* id;
  const char* number;
  const char* a;  // claimed lower
  const char* b;
  std::map<std::string, double> paper;  // scale -> ln(ppl_a / ppl_b)
};

const std::vector<LossClaim>& loss_claims() {
  // PAPER_RESULTS.md: S (README table) top-k 31.22, RF 27.42; M 25.00 / 22.08; L 24.58 / 19.97.
  // The S baseline line (top-k 31.21, AoE 30.00, ReMoE 29.60) comes from one set of runs, so
  // the baseline-versus-top-k claims use its 31.21.
  static const std::vector<LossClaim> claims = {
      {"rf_below_topk",
       "1",
       kRoutingFree,
       kTopk,
       {{"S", std::log(27.42 / 31.22)},
        {"M", std::log(22.08 / 25.00)},
        {"L", std::log(19.97 / 24.58)}}},
      {"rf_below_aoe", "2", kRoutingFree, "aoe", {{"S", std::log(27.42 / 30.00)}}},
      {"rf_below_remoe", "3", kRoutingFree, "remoe", {{"S", std::log(27.42 / 29.60)}}},
      {"remoe_below_topk", "4", "remoe", kTopk, {{"S", std::log(29.60 / 31.21)}}},
      {"aoe_below_topk", "5", "aoe", kTopk, {{"S", std::log(30.00 / 31.21)}}},
  };
  return claims;
}

// Builds the rows of one setup and the notes they need.
class SetupJudge {
 public:
  SetupJudge(Context& c, const Setup& s) : c_(c), s_(s) {}

  void run(std::vector<ClaimRow>& rows) {
    const NumberStyle loss_style{3, false};
    for (const LossClaim& claim : loss_claims()) {
      if (!present({claim.a, claim.b}, claim.number)) continue;
      ClaimRow row = start(claim.id, claim.number,
                           c_.label(claim.a) + " < " + c_.label(claim.b) + " (val loss)");
      fill_paired(row, claim.number, claim.a, claim.b, "final val loss", val_loss(),
                  [](double a, double b) { return a - b; });
      set_paper(row, claim.paper);
      judge_values(row, {Side::kBelow, c_.options.margin, loss_style}, c_.options,
                   "no seed with both runs' final val loss");
      rows.push_back(std::move(row));
    }
    if (present({kRoutingFree}, "6, 7")) {
      rows.push_back(density_row());
      rows.push_back(theta_row());
    }
    if (present({kSelfRouting, kTopk}, "8, 8b")) {
      rows.push_back(entropy_row());
      rows.push_back(similar_loss_row());
    }
    if (!skipped_.empty()) {
      std::vector<std::string> parts;
      for (const auto& [method, numbers] : skipped_) {
        parts.push_back(c_.label(method) + " (claims " + join(numbers, ", ") + ")");
      }
      c_.notes.push_back(s_.label + ": no 'done' runs of " + join(parts, ", ") +
                         ": those claims are not judged there");
    }
  }

 private:
  // Whether every method has runs in this setup; remembers the missing ones for one note.
  bool present(const std::vector<std::string>& methods, const std::string& number) {
    bool all = true;
    for (const auto& m : methods) {
      if (s_.has(m)) continue;
      all = false;
      auto& numbers = skipped_[m];
      if (std::find(numbers.begin(), numbers.end(), number) == numbers.end()) {
        numbers.push_back(number);
      }
    }
    return all;
  }

  ClaimRow start(const std::string& id, const std::string& number, const std::string& text) {
    ClaimRow row;
    row.id = id;
    row.claim = number + ". " + text;
    row.size = s_.label;
    row.paper_text = kNone;
    return row;
  }

  void note(const std::string& number, const std::string& text) {
    c_.notes.push_back("claim " + number + " at " + s_.label + ": " + text);
  }

  // The published figure of the row's scale, else the S one (our CPU sizes have none).
  void set_paper(ClaimRow& row, const std::map<std::string, double>& paper) {
    auto it = paper.find(s_.size);
    if (it == paper.end()) it = paper.find("S");
    if (it == paper.end()) return;
    row.paper = it->second;
    row.paper_text = it->first + ": " + NumberStyle{3, false}(it->second);
  }

  std::function<double(const RunData&)> val_loss() const {
    return [](const RunData& d) { return d.val_loss; };
  }

  // The per-seed values combine(value(a), value(b)) over the seeds both methods have; seeds of
  // one method only, and seeds without the figure, are noted and left out.
  void fill_paired(ClaimRow& row, const std::string& number, const std::string& a,
                   const std::string& b, const std::string& what,
                   const std::function<double(const RunData&)>& value,
                   const std::function<double(double, double)>& combine) {
    const auto& runs_a = s_.of(a);
    const auto& runs_b = s_.of(b);
    std::vector<std::string> unpaired;
    std::vector<std::string> missing;
    for (const auto& [seed, run] : runs_a) {
      if (runs_b.count(seed) == 0) unpaired.push_back(c_.label(a) + " " + std::to_string(seed));
    }
    for (const auto& [seed, run] : runs_b) {
      if (runs_a.count(seed) == 0) unpaired.push_back(c_.label(b) + " " + std::to_string(seed));
    }
    for (const auto& [seed, run_a] : runs_a) {
      const auto it = runs_b.find(seed);
      if (it == runs_b.end()) continue;
      const double v = combine(value(*run_a), value(*it->second));
      if (std::isnan(v)) {
        missing.push_back(std::to_string(seed));
        continue;
      }
      row.seeds.push_back(seed);
      row.values.push_back(v);
    }
    if (!unpaired.empty())
      note(number, "seeds without a partner left out: " + join(unpaired, ", "));
    if (!missing.empty()) note(number, "no " + what + " for seed " + join(missing, ", "));
  }

  ClaimRow density_row() {
    const double margin = c_.options.density_margin;
    ClaimRow row =
        start("rf_density_at_target", "6",
              c_.label(kRoutingFree) + " density at ρ* " + margin_text(margin) + " after warm-up");
    std::set<double> rhos;
    std::set<double> warmups;
    std::vector<std::string> missing;
    for (const auto& [seed, run] : s_.of(kRoutingFree)) {
      const DensityFigure f = density_offset(c_.store, *run);
      rhos.insert(f.rho);
      warmups.insert(f.warmup);
      if (std::isnan(f.offset)) {
        missing.push_back(std::to_string(seed));
        continue;
      }
      row.seeds.push_back(seed);
      row.values.push_back(f.offset);
    }
    if (!missing.empty())
      note("6", "no logged density after warm-up for seed " + join(missing, ", "));
    row.detail = rhos.size() == 1 && warmups.size() == 1
                     ? format_printf("ρ* = %g", *rhos.begin()) +
                           format_printf(", steps > %g", *warmups.begin())
                     : "ρ* or warm-up differ between runs";
    judge_values(row, {Side::kWithin, margin, NumberStyle{4, false}}, c_.options,
                 "no logged density after warm-up");
    return row;
  }

  ClaimRow theta_row() {
    ClaimRow row =
        start("rf_theta_tradeoff", "7", "θ trades compute for loss (slope of val loss on density)");
    int monotone = 0;
    std::set<size_t> point_counts;
    std::vector<std::string> too_few;
    std::vector<std::string> flat;
    for (const auto& [seed, run] : s_.of(kRoutingFree)) {
      const std::vector<SweepPoint> points = theta_sweep(c_.store, run->run.run_key);
      if (points.size() < 2) {
        too_few.push_back(std::to_string(seed));
        continue;
      }
      std::vector<double> density;
      std::vector<double> loss;
      bool falls = true;
      for (size_t i = 0; i < points.size(); ++i) {
        density.push_back(points[i].density);
        loss.push_back(points[i].loss);
        if (i > 0 && points[i].density > points[i - 1].density) falls = false;
      }
      const double slope = stats::ols_slope(density, loss);
      if (std::isnan(slope)) {
        flat.push_back(std::to_string(seed));
        continue;
      }
      row.seeds.push_back(seed);
      row.values.push_back(slope);
      monotone += falls ? 1 : 0;
      point_counts.insert(points.size());
    }
    const size_t runs = s_.of(kRoutingFree).size();
    if (!too_few.empty() && too_few.size() < runs) {
      note("7", "fewer than two θ-sweep points for seed " + join(too_few, ", "));
    }
    if (!flat.empty()) note("7", "density the same at every θ for seed " + join(flat, ", "));
    if (!row.seeds.empty()) {
      const std::string points = point_counts.size() == 1
                                     ? std::to_string(*point_counts.begin())
                                     : std::to_string(*point_counts.begin()) + "-" +
                                           std::to_string(*point_counts.rbegin());
      row.detail = std::to_string(monotone) + "/" + std::to_string(row.seeds.size()) +
                   " seeds: density falls monotonically as θ rises; " + points + " θ points";
    }
    judge_values(row, {Side::kBelow, std::nullopt, NumberStyle{3, false}}, c_.options,
                 "no θ sweep stored (set eval.theta_sweep)");
    return row;
  }

  ClaimRow entropy_row() {
    ClaimRow row =
        start("sr_entropy_above_topk", "8",
              c_.label(kSelfRouting) + " routing entropy > " + c_.label(kTopk) + " (relative)");
    // One metric for the whole row: the routing entropy when every paired run stores it, else
    // the normalised load entropy every run has.
    std::map<std::string, std::map<std::string, double>> balance;
    bool routing = true;
    for (const std::string method : {kSelfRouting, kTopk}) {
      const std::string other = method == kSelfRouting ? kTopk : kSelfRouting;
      for (const auto& [seed, run] : s_.of(method)) {
        if (s_.of(other).count(seed) == 0) continue;
        auto& figures = balance[run->run.run_key];
        figures = balance_of(c_.store, run->run.run_key);
        routing = routing && !std::isnan(figure(figures, "routing_entropy"));
      }
    }
    const std::string metric = routing ? "routing_entropy" : "entropy";
    fill_paired(
        row, "8", kSelfRouting, kTopk, metric,
        [&](const RunData& d) { return figure(balance[d.run.run_key], metric); },
        [](double sr, double topk) { return topk > 0 ? sr / topk - 1 : kNaN; });
    row.detail = routing ? "routing entropy" : "load entropy (no routing entropy stored)";
    if (!row.seeds.empty()) {
      note("8", routing ? "per seed, routing_entropy(self_routing) / routing_entropy(topk) - 1 "
                          "(layer_stats at the last logged step, layer average)"
                        : "per seed, entropy(self_routing) / entropy(topk) - 1 with the "
                          "normalised load entropy (layer_stats 'entropy' at the last logged "
                          "step, layer average): not every run stores 'routing_entropy'");
    }
    row.paper = 0.17;
    row.paper_text = "+17% (abstract)";
    judge_values(row, {Side::kAbove, std::nullopt, NumberStyle{1, true}}, c_.options,
                 "no seed with both runs' " + metric);
    return row;
  }

  ClaimRow similar_loss_row() {
    const double margin = c_.options.margin;
    ClaimRow row = start("sr_loss_similar_topk", "8b",
                         c_.label(kSelfRouting) + " ≈ " + c_.label(kTopk) + " val loss (" +
                             margin_text(margin) + ")");
    fill_paired(row, "8b", kSelfRouting, kTopk, "final val loss", val_loss(),
                [](double a, double b) { return a - b; });
    row.paper_text = "\"competitive\" (abstract)";
    judge_values(row, {Side::kWithin, margin, NumberStyle{3, false}}, c_.options,
                 "no seed with both runs' final val loss");
    return row;
  }

  Context& c_;
  const Setup& s_;
  std::map<std::string, std::vector<std::string>> skipped_;  // method -> claim numbers
};

// The methods in the suite's usual order, then any other by name.
int method_rank(const std::string& method) {
  static const std::vector<std::string> order = {kRoutingFree, kTopk,        "switch", "remoe",
                                                 "aoe",        kSelfRouting, "dense"};
  const auto it = std::find(order.begin(), order.end(), method);
  return static_cast<int>(it - order.begin());
}

void add_spread(Context& c, const Setup& s, std::vector<SpreadRow>& rows) {
  std::vector<std::string> methods;
  for (const auto& [method, runs] : s.runs) methods.push_back(method);
  std::sort(methods.begin(), methods.end(), [](const std::string& a, const std::string& b) {
    if (method_rank(a) != method_rank(b)) return method_rank(a) < method_rank(b);
    return a < b;
  });
  for (const auto& method : methods) {
    SpreadRow row;
    row.method = method;
    row.size = s.label;
    std::vector<double> losses;
    std::vector<std::string> missing;
    for (const auto& [seed, run] : s.of(method)) {
      if (std::isnan(run->val_loss)) {
        missing.push_back(std::to_string(seed));
        continue;
      }
      row.seeds.push_back(seed);
      losses.push_back(run->val_loss);
    }
    if (!missing.empty()) {
      c.notes.push_back(c.label(method) + " at " + s.label + ": no final val loss for seed " +
                        join(missing, ", ") + " (left out of every loss figure)");
    }
    if (losses.empty()) continue;
    row.n = static_cast<int>(losses.size());
    row.mean = stats::mean(losses);
    row.sd = stats::sample_sd(losses);
    row.min = *std::min_element(losses.begin(), losses.end());
    row.max = *std::max_element(losses.begin(), losses.end());
    rows.push_back(std::move(row));
  }
}

// --- tables --------------------------------------------------------------------------------------

Cell number_cell(const std::string& text, double raw) { return {text, {shortest_exact(raw)}}; }

// Compact per-seed values (term, md); the csv gets every seed and value.
Cell values_cell(const ClaimRow& row, const NumberStyle& style) {
  std::vector<std::string> shown;
  std::vector<std::string> seeds;
  std::vector<std::string> values;
  for (size_t i = 0; i < row.values.size(); ++i) {
    if (i < kShownValues) shown.push_back(style(row.values[i]));
    seeds.push_back(std::to_string(row.seeds[i]));
    values.push_back(shortest_exact(row.values[i]));
  }
  std::string text = shown.empty() ? kNone : join(shown, " ");
  if (row.values.size() > kShownValues) {
    text += " … (" + std::to_string(row.values.size()) + ")";
  }
  return {text, {join(seeds, ";"), join(values, ";")}};
}

NumberStyle value_style(const ClaimRow& row) { return {row.digits, row.percent}; }

// Mean and interval: one more digit than the per-seed values.
NumberStyle summary_style(const ClaimRow& row) { return {row.digits + 1, row.percent}; }

std::string level_text(double level) { return format_printf("%g%% CI", 100 * level); }

}  // namespace

// --- setups --------------------------------------------------------------------------------------

namespace {

// The experiment keys two methods' runs must share to be paired (the method's own options may
// differ: that is what is compared). Missing keys (hand-made or older configs) count as absent
// on both sides.
const std::vector<std::pair<std::string, std::string>>& pairing_keys() {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"train", "steps"},     {"train", "dtype"}, {"data", "mode"},
      {"data", "batch_size"}, {"moe", "experts"}, {"eval", "val_batches"}};
  return keys;
}

// Every key of config[section] as "section.key" -> value.
void add_section(const Json& config, const char* section, SetupKeys& keys) {
  if (!config.contains(section) || !config[section].is_object()) return;
  for (const auto& [name, value] : config[section].items()) {
    std::string key = section;
    key += ".";
    key += name;
    keys[key] = value;
  }
}

}  // namespace

SetupKeys setup_keys(const Json& config, bool method_options) {
  SetupKeys keys;
  if (!config.is_object()) return keys;
  add_section(config, "model", keys);
  if (method_options) add_section(config, "moe", keys);
  for (const auto& [section, name] : pairing_keys()) {
    if (config.contains(section) && config[section].is_object() && config[section].contains(name)) {
      std::string key = section;
      key += ".";
      key += name;
      keys[key] = config[section][name];
    }
  }
  return keys;
}

std::vector<std::string> differing_keys(const SetupKeys& a, const SetupKeys& b) {
  std::set<std::string> names;
  for (const auto& [k, v] : a) names.insert(k);
  for (const auto& [k, v] : b) names.insert(k);
  std::vector<std::string> out;
  for (const auto& name : names) {
    const auto ia = a.find(name);
    const auto ib = b.find(name);
    const bool in_a = ia != a.end();
    const bool in_b = ib != b.end();
    if (in_a != in_b || (in_a && ia->second != ib->second)) out.push_back(name);
  }
  return out;
}

std::string key_value_text(const SetupKeys& keys, const std::string& name, bool bare_strings) {
  const auto it = keys.find(name);
  if (it == keys.end()) return "(none)";
  if (bare_strings && it->second.is_string()) return it->second.get<std::string>();
  return it->second.dump();
}

std::string to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kHolds:
      return "holds";
    case Outcome::kReversed:
      return "reversed";
    case Outcome::kEquivalent:
      return "equivalent";
    case Outcome::kFails:
      return "fails";
    case Outcome::kUndecided:
      return "undecided";
    case Outcome::kNoData:
      return "no_data";
  }
  return "unknown";
}

Verdict judge(Store& store, const Options& options) {
  if (!(options.level > 0 && options.level < 1)) {
    throw VerdictError("the confidence level must lie in (0, 1)");
  }
  if (!(options.margin > 0) || !(options.density_margin > 0)) {
    throw VerdictError("the equivalence margins must be > 0 (--margin)");
  }
  Context c{store, options, options.label, {}, {}, {}};
  if (!c.label) c.label = [](const std::string& method) { return method; };
  read_runs(c);
  build_setups(c);
  Verdict v;
  for (const Setup& s : c.setups) SetupJudge(c, s).run(v.claims);
  for (const Setup& s : c.setups) add_spread(c, s, v.spread);
  v.notes = std::move(c.notes);
  return v;
}

Table claims_table(const Verdict& verdict, const Options& options) {
  Table table;
  table.title = "Claims judged from paired seeds (same size, setup and seed for every method)";
  table.columns = {{"claim", {"claim_id", "claim"}, false},
                   {"size", {"size"}, false},
                   {"n", {"n"}, true},
                   {"per seed", {"seeds", "values"}, false},
                   {"mean", {"mean"}, true},
                   {level_text(options.level), {"ci_low", "ci_high"}, true},
                   {"verdict", {"verdict", "outcome", "seeds_needed", "tost_p"}, false},
                   {"paper", {"paper"}, false},
                   {"detail", {"detail"}, false}};
  for (const ClaimRow& row : verdict.claims) {
    const NumberStyle style = summary_style(row);
    const stats::Interval& ci = row.interval;
    const std::string n = std::to_string(ci.n);
    const std::string ci_text =
        ci.defined() ? "[" + style(ci.low) + ", " + style(ci.high) + "]" : kNone;
    table.rows.push_back({{row.claim, {row.id, row.claim}},
                          text_cell(row.size),
                          {n, {n}},
                          values_cell(row, value_style(row)),
                          number_cell(style(ci.mean), ci.mean),
                          {ci_text, {shortest_exact(ci.low), shortest_exact(ci.high)}},
                          {row.verdict,
                           {row.verdict, to_string(row.outcome),
                            row.seeds_needed ? std::to_string(*row.seeds_needed) : "",
                            row.margin && ci.n >= 2 ? shortest_exact(row.tost.p_value) : ""}},
                          {row.paper_text, {shortest_exact(row.paper)}},
                          {row.detail.empty() ? kNone : row.detail, {row.detail}}});
  }
  const std::string level = format_printf("%g%%", 100 * options.level);
  table.footnotes = {
      "per seed: claims 1-5 and 8b the difference of the final val losses (nats, first method "
      "minus second), 6 the mean density after warm-up minus ρ*, 7 the least-squares slope of "
      "val loss on density over the θ sweep (nats per unit density), 8 the relative difference "
      "of the routing entropies; values in seed order",
      "mean and " + level +
          " t-interval over seeds; holds / reversed: the interval lies entirely on the claimed / "
          "the other side of 0; equivalent (claims 1-5) and holds (claims 6, 8b): the interval "
          "lies inside ±margin (two one-sided t-tests at " +
          format_printf("%g%%", 50 * (1 - options.level)) +
          " each); fails: entirely outside it; undecided: ~N = seeds at which the observed mean "
          "and spread would settle it",
      "paper: ln(ppl ratio) of the published perplexities at that scale (S unless the row is M "
      "or L; Routing-Free repo README, shared/spec/PAPER_RESULTS.md), only the sign and size "
      "compare with our small runs; '-' = no published figure",
  };
  if (verdict.claims.empty()) {
    table.footnotes.push_back(
        "no claim could be judged: the claims compare routing_free, topk, aoe, remoe and "
        "self_routing runs of one size that share seeds");
  }
  table.footnotes.insert(table.footnotes.end(), verdict.notes.begin(), verdict.notes.end());
  return table;
}

Table spread_table(const Verdict& verdict, const Options& options) {
  const auto label = [&](const std::string& method) {
    return options.label ? options.label(method) : method;
  };
  Table table;
  table.title = "Seed-to-seed spread of the final val loss";
  table.columns = {{"method", {"method"}, false},
                   {"size", {"size"}, false},
                   {"n", {"n"}, true},
                   {"seeds", {"seeds"}, false},
                   {"mean val loss", {"val_loss_mean"}, true},
                   {"std", {"val_loss_std"}, true},
                   {"min", {"val_loss_min"}, true},
                   {"max", {"val_loss_max"}, true}};
  const auto fixed = [](double x) {
    return std::isnan(x) ? std::string(kNone) : format_printf("%.4f", x);
  };
  for (const SpreadRow& row : verdict.spread) {
    const std::string n = std::to_string(row.n);
    std::vector<std::string> seeds;
    for (int64_t s : row.seeds) seeds.push_back(std::to_string(s));
    table.rows.push_back({text_cell(label(row.method)),
                          text_cell(row.size),
                          {n, {n}},
                          {join(seeds, " "), {join(seeds, ";")}},
                          number_cell(fixed(row.mean), row.mean),
                          number_cell(fixed(row.sd), row.sd),
                          number_cell(fixed(row.min), row.min),
                          number_cell(fixed(row.max), row.max)});
  }
  table.footnotes = {
      "'done' runs, one per seed (duplicates left out, see the claims notes); std: sample std "
      "over seeds (n - 1), '-' for one seed"};
  return table;
}

}  // namespace moebench::verdict
