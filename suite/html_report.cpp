// The static HTML report: reads the store, draws the figures with gnuplot (suite/plot.h) and
// writes index.html. See html_report.h for what the page holds.
#include "suite/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "suite/plot.h"
#include "suite/verdict.h"

namespace moebench::html {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kWidth = 640;  // figure size in SVG pixels; two fit side by side on a wide screen
constexpr int kHeight = 400;

// --- small helpers ---------------------------------------------------------------------------

// Short numbers for captions and tables: 0.25, 1e-09, 3.142.
std::string short_number(double x) {
  if (std::isnan(x)) return "-";
  return format_printf("%.4g", x);
}

// File stems carry sizes and run keys; anything but [A-Za-z0-9_-] becomes '_'.
std::string stem(const std::string& text) {
  std::string out;
  for (char c : text) {
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  }
  return out.empty() ? "_" : out;
}

std::string plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

int size_rank(const std::string& size) {
  static const std::vector<std::string> order = {"tiny", "micro", "S", "M", "L"};
  return static_cast<int>(std::find(order.begin(), order.end(), size) - order.begin());
}

// A number from the run's stored config ({"moe": {"rho_target": 0.25}}); NaN when absent.
double config_number(const nlohmann::json& config, const std::string& section,
                     const std::string& key) {
  if (!config.is_object() || !config.contains(section)) return kNaN;
  const auto& s = config[section];
  if (!s.is_object() || !s.contains(key) || !s[key].is_number()) return kNaN;
  return s[key].get<double>();
}

// --- what the store holds about one run ----------------------------------------------------

// A stored run with all its rows (Store::run_record), the two config values the plots mark and
// its setup.
struct RunData : RunRecord {
  double rho_target = std::numeric_limits<double>::quiet_NaN();  // config moe.rho_target
  double theta = std::numeric_limits<double>::quiet_NaN();       // config moe.theta
  verdict::SetupKeys setup;  // verdict::setup_keys: what `moebench verdict` pairs runs by
  verdict::SetupKeys keys;   // the same with the method's options: what a band's runs share
};

// The runs of one method, size and setup (RunData::keys): one line or band in each figure.
struct Group {
  std::string method;
  std::string size;
  // How this setup differs from the method's other setups at this size ("model.init=normal"),
  // "" when the method has one setup there.
  std::string setup;
  int variant = 0;  // the setup's place among the method's setups at this size (0 = the main one)
  const verdict::SetupKeys* keys = nullptr;
  std::vector<const RunData*> runs;  // by seed
};

// The method, with its setup where it has several: "routing_free (model.init=normal)".
std::string group_name(const Group& g) {
  return g.setup.empty() ? g.method : g.method + " (" + g.setup + ")";
}

// The names of the keys in which any of these setups differs from the first, in name order.
std::vector<std::string> distinguishing_keys(const std::vector<const verdict::SetupKeys*>& setups) {
  std::set<std::string> names;
  for (size_t k = 1; k < setups.size(); ++k) {
    for (const std::string& name : verdict::differing_keys(*setups.front(), *setups[k])) {
      names.insert(name);
    }
  }
  return {names.begin(), names.end()};
}

// Mean and sample std over seeds of a per-run curve (x -> y). The band is mean ± std where two
// or more runs have a value at that x, NaN (no band) elsewhere.
struct Curve {
  std::vector<double> x, mean, low, high;
};

Curve aggregate(const std::vector<std::map<double, double>>& per_run) {
  std::map<double, std::vector<double>> at;
  for (const auto& run : per_run) {
    for (const auto& [x, y] : run) {
      if (std::isfinite(y)) at[x].push_back(y);
    }
  }
  Curve c;
  for (const auto& [x, ys] : at) {
    double sum = 0;
    for (double y : ys) sum += y;
    const double mean = sum / ys.size();
    double lo = kNaN, hi = kNaN;
    if (ys.size() > 1) {
      double sq = 0;
      for (double y : ys) sq += (y - mean) * (y - mean);
      const double sd = std::sqrt(sq / (ys.size() - 1));
      lo = mean - sd, hi = mean + sd;
    }
    c.x.push_back(x), c.mean.push_back(mean), c.low.push_back(lo), c.high.push_back(hi);
  }
  return c;
}

// "routing_free" for one run, "routing_free (3 seeds)" for more, "routing_free (model.init=
// normal; 3 seeds)" for one of the method's setups: the legend says what a band is made of.
// Runs of one setup that share a seed (their configs differ outside the setup keys) are counted
// as runs: "(4 runs, 2 seeds)".
std::string series_label(const Group& g) {
  std::set<int64_t> seeds;
  for (const RunData* r : g.runs) seeds.insert(r->run.seed);
  std::string count;
  if (seeds.size() < g.runs.size()) {
    count = plural(g.runs.size(), "run") + ", " + plural(seeds.size(), "seed");
  } else if (g.runs.size() > 1) {
    count = plural(g.runs.size(), "seed");
  }
  if (g.setup.empty()) return count.empty() ? g.method : g.method + " (" + count + ")";
  return g.method + " (" + g.setup + (count.empty() ? "" : "; " + count) + ")";
}

// The method's style; its other setups keep the colour with another marker.
plot::Style group_style(const Group& g) {
  plot::Style style = plot::method_style(g.method);
  if (g.variant == 0) return style;
  static const int points[] = {5, 9, 13, 11, 3, 1};  // filled square, triangles, diamond; *, +
  std::vector<int> free;
  for (const int p : points) {
    if (p != style.point) free.push_back(p);
  }
  style.point = free[static_cast<size_t>(g.variant - 1) % free.size()];
  return style;
}

plot::Series series_of(const Group& g, const Curve& c) {
  return {series_label(g), group_style(g), c.x, c.mean, c.low, c.high};
}

// A line plot of these series with its title and axis labels (units included); the caller sets
// the rest (a log axis, markers at every point).
plot::LinePlot line_plot(const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<plot::Series>& series,
                         const std::vector<plot::RefLine>& refs = {}) {
  plot::LinePlot p;
  p.title = title;
  p.x.label = x_label;
  p.y.label = y_label;
  p.series = series;
  p.refs = refs;
  return p;
}

bool is_val_loss(const EvalRow& e) { return e.task == "val" && e.metric == "loss"; }

// --- the page being built ----------------------------------------------------------------------

class Page {
 public:
  Page(const ReportOptions& options, ReportResult& result) : opt_(options), result_(result) {}

  std::string html;

  void heading(int level, const std::string& text, const std::string& id = "") {
    html += "<h" + std::to_string(level) + (id.empty() ? "" : " id=\"" + escape(id) + "\"") + ">" +
            escape(text) + "</h" + std::to_string(level) + ">\n";
  }
  void paragraph(const std::string& text) { html += "<p>" + escape(text) + "</p>\n"; }
  void note(const std::string& text) {
    html += "<p class=\"note\">" + escape(text) + "</p>\n";
    result_.notes.push_back(text);
  }
  void open_figures() { html += "<div class=\"figures\">\n"; }
  void close_figures() { html += "</div>\n"; }

  // figure() of a line plot (see line_plot).
  void line_figure(const std::string& name, const std::string& caption, const plot::LinePlot& p) {
    figure(name, caption, [&](const plot::Output& out) { return plot::render(p, out); });
  }

  // Renders one figure through `draw` (which calls plot::render) and adds it with its caption;
  // a figure with nothing drawable (std::invalid_argument from plot::render) becomes a note.
  void figure(const std::string& name, const std::string& caption,
              const std::function<fs::path(const plot::Output&)>& draw, int width = kWidth,
              int height = kHeight) {
    plot::Output out;
    out.dir = opt_.out_dir;
    out.name = name;
    out.width = width;
    out.height = height;
    out.program = opt_.gnuplot;
    fs::path svg;
    try {
      svg = draw(out);
    } catch (const std::invalid_argument& e) {
      note(caption + ": nothing to draw (" + e.what() + ").");
      return;
    }
    const std::string file = svg.filename().string();
    result_.images.push_back(file);
    html += "<figure" + std::string(width > kWidth ? " class=\"wide\"" : "") + "><img src=\"" +
            escape(file) + "\" width=\"" + std::to_string(width) + "\" height=\"" +
            std::to_string(height) + "\" alt=\"" + escape(caption) + "\"><figcaption>" +
            escape(caption) + "</figcaption></figure>\n";
  }

 private:
  const ReportOptions& opt_;
  ReportResult& result_;
};

// --- sections ------------------------------------------------------------------------------------

void loss_section(Page& page, const std::string& size, const std::vector<Group>& groups) {
  page.heading(4, "Loss over training");
  std::vector<plot::Series> val, train;
  for (const Group& g : groups) {
    std::vector<std::map<double, double>> val_runs, train_runs;
    for (const RunData* r : g.runs) {
      std::map<double, double> v, t;
      for (const EvalRow& e : r->evals) {
        if (is_val_loss(e) && !e.theta) v[static_cast<double>(e.step)] = e.value;
      }
      for (const StepRow& s : r->steps) t[static_cast<double>(s.step)] = s.lm_loss;
      val_runs.push_back(v), train_runs.push_back(t);
    }
    const Curve vc = aggregate(val_runs), tc = aggregate(train_runs);
    if (!vc.x.empty()) val.push_back(series_of(g, vc));
    if (!tc.x.empty()) train.push_back(series_of(g, tc));
  }
  page.open_figures();
  if (val.empty()) {
    page.note("Validation loss (" + size + "): no validation evaluations stored.");
  } else {
    page.line_figure("loss_val_" + stem(size),
                     "Validation loss per method over training steps (" + size +
                         "): cross-entropy in nats per token on the validation split, mean over "
                         "seeds; shaded band: ± 1 sample standard deviation over seeds (only where "
                         "two or more seeds ran).",
                     line_plot("validation loss (" + size + ")", "training step",
                               "validation loss (nats/token)", val));
  }
  if (train.empty()) {
    page.note("Training loss (" + size + "): no training steps stored.");
  } else {
    page.line_figure(
        "loss_train_" + stem(size),
        "Training loss per method over training steps (" + size +
            "): language-model cross-entropy of each logged training batch in nats per "
            "token, without the balancing loss so that methods compare; mean over seeds, "
            "shaded: ± 1 sample standard deviation.",
        line_plot("training loss (" + size + ")", "training step", "training LM loss (nats/token)",
                  train));
  }
  page.close_figures();
}

// Density and λ of the methods that log a balance coefficient (a finite λ on some step):
// Routing-Free and ReMoE steer their density towards ρ* with it.
void controller_section(Page& page, const std::string& size, const std::vector<Group>& groups) {
  page.heading(4, "Density and λ of the controlled methods");
  std::vector<plot::Series> density, lambda;
  std::map<double, std::set<std::string>> targets;  // ρ* -> methods
  for (const Group& g : groups) {
    bool controlled = false;
    for (const RunData* r : g.runs) {
      for (const StepRow& s : r->steps) controlled = controlled || std::isfinite(s.lambda);
    }
    if (!controlled) continue;
    std::vector<std::map<double, double>> d_runs, l_runs;
    for (const RunData* r : g.runs) {
      std::map<double, double> d, l;
      for (const StepRow& s : r->steps) {
        d[static_cast<double>(s.step)] = s.density;
        l[static_cast<double>(s.step)] = s.lambda;
      }
      d_runs.push_back(d), l_runs.push_back(l);
      const double rho = r->rho_target;
      if (std::isfinite(rho)) targets[rho].insert(g.method);
    }
    density.push_back(series_of(g, aggregate(d_runs)));
    lambda.push_back(series_of(g, aggregate(l_runs)));
  }
  if (density.empty()) {
    page.note("Density and λ (" + size +
              "): no run of this size logs a balance coefficient λ (Routing-Free and ReMoE "
              "do).");
    return;
  }
  std::vector<plot::RefLine> refs;
  for (const auto& [rho, methods] : targets) {
    std::string label = "ρ* = " + short_number(rho);
    if (targets.size() > 1) {
      std::string names;
      for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m;
      label += " (" + names + ")";
    }
    refs.push_back({false, rho, label, "#555555"});
  }
  std::string rho_text;
  for (const auto& [rho, methods] : targets) {
    rho_text += (rho_text.empty() ? "" : ", ") + short_number(rho);
  }
  page.open_figures();
  page.line_figure("density_" + stem(size),
                   "Density over training steps (" + size +
                       ") of the methods with a balance controller: active (token, expert) pairs / "
                       "(tokens × experts) of each logged training batch, a fraction from 0 to 1; "
                       "mean over seeds, shaded ± 1 std. Dashed: the target density ρ* (" +
                       (rho_text.empty() ? std::string("not in the stored configs") : rho_text) +
                       ").",
                   line_plot("density (" + size + ")", "training step",
                             "density (fraction of expert slots active)", density, refs));
  plot::LinePlot lambda_plot =
      line_plot("λ (" + size + ")", "training step", "λ (log scale)", lambda);
  lambda_plot.y.log = true;
  page.line_figure(
      "lambda_" + stem(size),
      "Balance coefficient λ over training steps (" + size +
          "), log scale (dimensionless: the weight of the balancing loss); mean over "
          "seeds, shaded ± 1 std. λ grows while the density is above ρ* and shrinks "
          "below it; steps where λ is 0 cannot be drawn on a log axis and are left out.",
      lambda_plot);
  page.close_figures();
}

// The θ sweep: evals rows with a theta, at the last step each run has them (the end-of-run
// evaluation writes the sweep; suite/evaluator.cpp val_rows).
void theta_section(Page& page, const std::string& size, const std::vector<Group>& groups) {
  page.heading(4, "θ sweep (inference-time threshold)");
  std::vector<plot::Series> density, loss;
  std::set<double> trained;
  for (const Group& g : groups) {
    std::vector<std::map<double, double>> d_runs, l_runs;
    for (const RunData* r : g.runs) {
      int64_t last = -1;
      for (const EvalRow& e : r->evals) {
        if (e.theta && e.task == "val") last = std::max(last, e.step);
      }
      if (last < 0) continue;
      std::map<double, double> d, l;
      for (const EvalRow& e : r->evals) {
        if (!e.theta || e.task != "val" || e.step != last) continue;
        if (e.metric == "density") d[*e.theta] = e.value;
        if (e.metric == "loss") l[*e.theta] = e.value;
      }
      d_runs.push_back(d), l_runs.push_back(l);
      const double theta = r->theta;
      if (std::isfinite(theta)) trained.insert(theta);
    }
    if (d_runs.empty()) continue;
    const Curve dc = aggregate(d_runs), lc = aggregate(l_runs);
    if (!dc.x.empty()) density.push_back(series_of(g, dc));
    if (!lc.x.empty()) loss.push_back(series_of(g, lc));
  }
  if (density.empty() && loss.empty()) {
    page.note("θ sweep (" + size +
              "): no θ-sweep rows stored; a Routing-Free run with eval.theta_sweep set writes "
              "them (or `moebench eval --run KEY --theta-sweep 0.8,1.0,1.2`).");
    return;
  }
  std::vector<plot::RefLine> refs;
  refs.reserve(trained.size());
  for (double t : trained) refs.push_back({true, t, "trained θ = " + short_number(t), "#555555"});
  auto sweep = [&](const std::string& name, const std::string& caption, const std::string& title,
                   const std::string& y_label, const std::vector<plot::Series>& series) {
    if (series.empty()) {
      page.note(caption + ": no rows of this metric in the sweep.");
      return;
    }
    plot::LinePlot p =
        line_plot(title, "θ (activity threshold at evaluation)", y_label, series, refs);
    p.every_point_marked = true;
    page.line_figure(name, caption, p);
  };
  page.open_figures();
  sweep("theta_density_" + stem(size),
        "θ sweep (" + size +
            "): density on the validation split (active fraction of expert slots, 0 to 1) "
            "against the evaluation-time threshold θ, at each run's final step; mean over "
            "seeds. Dashed: the θ the model was trained with.",
        "density vs θ (" + size + ")", "density (fraction of expert slots active)", density);
  sweep("theta_loss_" + stem(size),
        "θ sweep (" + size +
            "): validation loss (nats per token) against the evaluation-time threshold θ, at "
            "each run's final step; mean over seeds. Dashed: the trained θ.",
        "validation loss vs θ (" + size + ")", "validation loss (nats/token)", loss);
  page.close_figures();
}

// The layer summaries (expert = -1) of a run's last step that has any: the mean over layers
// (layer = -1 row) when stored, else the mean of the per-layer rows.
std::map<std::string, double> last_summary(const RunData& r) {
  int64_t last = -1;
  for (const LayerStatRow& s : r.layer_stats) {
    if (s.expert < 0) last = std::max(last, s.step);
  }
  std::map<std::string, double> overall, sum;
  std::map<std::string, int> count;
  for (const LayerStatRow& s : r.layer_stats) {
    if (s.expert >= 0 || s.step != last) continue;
    if (s.layer < 0) {
      overall[s.metric] = s.value;
    } else {
      sum[s.metric] += s.value, ++count[s.metric];
    }
  }
  for (const auto& [metric, total] : sum) {
    if (!overall.count(metric)) overall[metric] = total / count[metric];
  }
  return overall;
}

void active_section(Page& page, const std::string& size, const std::vector<Group>& groups) {
  page.heading(4, "Active experts per token");
  const std::vector<std::pair<std::string, std::string>> stats = {{"active_mean", "mean"},
                                                                  {"active_p50", "median"},
                                                                  {"active_p99", "99th pct"},
                                                                  {"active_max", "max"}};
  plot::BarChart chart;
  chart.title = "active experts per token (" + size + ")";
  chart.x_label = "statistic of the per-token count (last evaluation)";
  chart.y.label = "active experts per token";
  for (const auto& s : stats) chart.categories.push_back(s.second);
  Table table;
  table.columns = {simple_column("method"),
                   simple_column("runs", true),
                   simple_column("mean", true),
                   simple_column("median", true),
                   simple_column("99th pct", true),
                   simple_column("max", true),
                   simple_column("tokens with none", true)};
  std::vector<std::string> without;
  for (const Group& g : groups) {
    std::map<std::string, std::vector<double>> values;
    for (const RunData* r : g.runs) {
      const auto summary = last_summary(*r);
      for (const auto& [metric, v] : summary) values[metric].push_back(v);
    }
    if (!values.count("active_mean")) {
      without.push_back(group_name(g));
      continue;
    }
    auto mean = [&](const std::string& metric) {
      const auto it = values.find(metric);
      if (it == values.end() || it->second.empty()) return kNaN;
      double sum = 0;
      for (double v : it->second) sum += v;
      return sum / it->second.size();
    };
    plot::BarSeries bars{series_label(g), group_style(g), {}};
    std::vector<std::string> row = {group_name(g), std::to_string(g.runs.size())};
    for (const auto& s : stats) {
      bars.values.push_back(mean(s.first));
      row.push_back(format_printf("%.2f", mean(s.first)));
    }
    const double zero = mean("frac_zero");
    row.push_back(std::isnan(zero) ? "-" : format_printf("%.1f%%", 100 * zero));
    chart.series.push_back(bars);
    table.rows.push_back(text_row(row));
  }
  if (chart.series.empty()) {
    page.note("Active experts per token (" + size + "): no layer statistics stored.");
    return;
  }
  table.title =
      "Active experts per token at the last evaluation (" + size + "), mean over layers and seeds";
  table.footnotes.push_back(
      "tokens with none: share of tokens that activate no expert (Routing-Free and ReMoE allow "
      "it; the layer then passes the token on unchanged)");
  if (!without.empty()) {
    std::string names;
    for (const auto& m : without) names += (names.empty() ? "" : ", ") + m;
    table.footnotes.push_back("no routing statistics stored for: " + names);
  }
  page.open_figures();
  page.figure("active_" + stem(size),
              "Active experts per token (" + size +
                  "), per method: the mean, median, 99th percentile and maximum number of "
                  "experts a token activates, at each run's last evaluation, averaged over "
                  "layers and seeds (the store keeps these summaries of the distribution, not "
                  "the full histogram).",
              [&](const plot::Output& out) { return plot::render(chart, out); });
  page.close_figures();
  page.html +=
      "<div class=\"table-wrap\">" + table_html(table, "active-" + stem(size)) + "</div>\n";
}

// --- heat-maps -------------------------------------------------------------------------------

std::vector<const RunData*> heatmap_runs(const ReportOptions& opt, const std::vector<RunData>& all,
                                         const std::vector<Group>& groups) {
  std::vector<const RunData*> chosen;
  if (opt.heatmap_runs.empty()) {
    for (const Group& g : groups) chosen.push_back(g.runs.front());
    return chosen;
  }
  for (const std::string& key : opt.heatmap_runs) {
    // An exact key wins over being the prefix of longer keys.
    std::vector<const RunData*> hits;
    for (const RunData& r : all) {
      if (r.run.run_key == key) {
        hits = {&r};
        break;
      }
      if (r.run.run_key.rfind(key, 0) == 0) hits.push_back(&r);
    }
    if (key.empty() || hits.empty()) {
      throw ReportError("--runs: no run with key (or key prefix) '" + key +
                        "' among the runs shown; list them with `moebench runs`");
    }
    if (hits.size() > 1) {
      throw ReportError("--runs: '" + key + "' is the prefix of " + plural(hits.size(), "run") +
                        "; give more of the key (`moebench runs` lists them)");
    }
    if (std::find(chosen.begin(), chosen.end(), hits[0]) == chosen.end()) {
      chosen.push_back(hits[0]);
    }
  }
  return chosen;
}

// `names`: how the figures name each run's group (group_name), by run key.
void heatmap_section(Page& page, const std::vector<const RunData*>& runs,
                     const std::map<std::string, std::string>& names) {
  page.heading(2, "Expert load per layer", "load");
  // One colour scale for every map, so that maps compare at a glance.
  double hi = 0;
  for (const RunData* r : runs) {
    for (const LayerStatRow& s : r->layer_stats) {
      if (s.expert >= 0 && s.metric == "load" && std::isfinite(s.value)) hi = std::max(hi, s.value);
    }
  }
  bool any = false;
  page.open_figures();
  for (const RunData* r : runs) {
    std::set<int64_t> steps;
    for (const LayerStatRow& s : r->layer_stats) {
      if (s.expert >= 0 && s.metric == "load") steps.insert(s.step);
    }
    if (steps.empty()) continue;
    std::vector<int64_t> shown = {*steps.begin()};
    if (*steps.rbegin() != *steps.begin()) shown.push_back(*steps.rbegin());
    for (const int64_t step : shown) {
      int layers = 0, experts = 0;
      for (const LayerStatRow& s : r->layer_stats) {
        if (s.step == step && s.expert >= 0 && s.metric == "load" && s.layer >= 0) {
          layers = std::max(layers, s.layer + 1), experts = std::max(experts, s.expert + 1);
        }
      }
      if (layers == 0) continue;
      std::vector<std::vector<double>> values(layers, std::vector<double>(experts, kNaN));
      for (const LayerStatRow& s : r->layer_stats) {
        if (s.step == step && s.expert >= 0 && s.metric == "load" && s.layer >= 0) {
          values[s.layer][s.expert] = s.value;
        }
      }
      const std::string key = r->run.run_key.substr(0, 10);
      const bool first = step == shown.front() && shown.size() > 1;
      const auto named = names.find(r->run.run_key);
      const std::string name = named == names.end() ? r->run.method : named->second;
      std::string caption = "Load of each expert in each layer, run " + key;
      caption += " (" + name + ", " + r->run.size + ", seed ";
      caption += std::to_string(r->run.seed) + ") at step " + std::to_string(step);
      caption += first ? " (its first evaluation)" : " (its last evaluation)";
      caption +=
          ": the fraction of tokens that activate the expert (0 to 1; a layer's row sums to its "
          "mean number of active experts per token, and a perfectly balanced layer has every "
          "cell equal to its density). One colour scale for all maps.";
      any = true;
      page.figure("load_" + stem(key) + "_step" + std::to_string(step), caption,
                  [&](const plot::Output& out) {
                    plot::HeatMap h;
                    h.title = name + " " + r->run.size + " seed " + std::to_string(r->run.seed) +
                              ", step " + std::to_string(step);
                    h.x.label = "expert";
                    h.y.label = "layer";
                    h.value_label = "load (fraction of tokens)";
                    h.values = values;
                    h.min = 0;
                    h.max = hi > 0 ? hi : 1;
                    return plot::render(h, out);
                  });
    }
  }
  page.close_figures();
  if (!any) {
    page.note(
        "Expert load: the chosen runs have no per-expert load rows (layer statistics are "
        "written at each evaluation of a routed model).");
  }
}

// --- kernel benchmarks -----------------------------------------------------------------------

struct Bench {
  std::string name, shape, backend, dtype, device;
  std::map<std::string, double> metrics;
  double ratio_to_dense = kNaN;  // dense-chain time / this time (1 = at the limit)
  double ratio_to_naive = kNaN;  // naive-loop time / this time (> 1 = faster than the loop)
};

// Peers measured on a GPU carry "-cuda" (kernels/bench/bench_expert_ops.cpp peer_name); the
// naive loop to compare with is the one on the same device.
bool on_gpu(const std::string& backend) {
  return backend == "cuda" ||
         (backend.size() > 5 && backend.compare(backend.size() - 5, 5, "-cuda") == 0);
}
bool is_peer(const std::string& backend, const char* base) {
  return backend == base || backend == std::string(base) + "-cuda";
}

// The latest import of each benchmark (as `moebench bench show`), with both ratios. ratio_to_
// dense is the stored counter when present (the benchmark measures the dense chain beside each
// row), else dense_ms / real_time_ms; ratio_to_naive is recomputed here: the naive row's
// real_time_ms with the same shape, dtype, device and GPU-ness over this row's real_time_ms.
std::vector<Bench> latest_benchmarks(Store& store) {
  const std::vector<KernelBenchRow> rows = store.kernel_bench();
  std::map<std::string, std::string> latest;
  for (const auto& r : rows) latest[r.name] = std::max(latest[r.name], r.created_at);
  std::vector<Bench> out;
  std::map<std::string, size_t> index;
  for (const auto& r : rows) {
    if (r.created_at != latest[r.name]) continue;
    auto [it, added] = index.emplace(r.name, out.size());
    if (added) out.push_back({r.name, r.shape, r.backend, r.dtype, r.device, {}});
    out[it->second].metrics[r.metric] = r.value;
  }
  auto metric = [](const Bench& b, const char* m) {
    const auto it = b.metrics.find(m);
    return it == b.metrics.end() ? kNaN : it->second;
  };
  std::map<std::string, double> naive_ms;
  auto peer_key = [](const Bench& b) {
    return b.shape + "|" + b.dtype + "|" + b.device + "|" + (on_gpu(b.backend) ? "gpu" : "cpu");
  };
  for (const Bench& b : out) {
    if (is_peer(b.backend, "naive")) naive_ms[peer_key(b)] = metric(b, "real_time_ms");
  }
  for (Bench& b : out) {
    const double ms = metric(b, "real_time_ms");
    b.ratio_to_dense = metric(b, "ratio_to_dense");
    if (std::isnan(b.ratio_to_dense)) b.ratio_to_dense = metric(b, "dense_ms") / ms;
    const auto it = naive_ms.find(peer_key(b));
    if (it != naive_ms.end() && ms > 0) b.ratio_to_naive = it->second / ms;
  }
  return out;
}

// "shape:S/gate:full/tokens:2048" -> {"shape:S", "gate:full", "tokens:2048"}.
std::vector<std::string> segments(const std::string& shape) {
  std::vector<std::string> out;
  std::stringstream in(shape);
  std::string seg;
  while (std::getline(in, seg, '/')) out.push_back(seg);
  return out;
}

// A segment as a bar label: the value alone where it names itself ("full", "zipf"), key=value
// where a bare number would be ambiguous ("tokens=2048").
std::string segment_label(const std::string& seg) {
  const auto colon = seg.find(':');
  if (colon == std::string::npos) return seg;
  const std::string key = seg.substr(0, colon), value = seg.substr(colon + 1);
  const bool numeric = !value.empty() && (std::isdigit(static_cast<unsigned char>(value[0])) ||
                                          value[0] == '.' || value[0] == '-');
  return numeric ? key + "=" + value : value;
}

// The lines of a multi-line bar label.
std::vector<std::string> lines_of(const std::string& label) {
  std::vector<std::string> out;
  std::stringstream in(label);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

void kernel_section(Page& page, Store& store) {
  page.heading(2, "Kernel benchmarks", "kernels");
  const std::vector<Bench> benches = latest_benchmarks(store);
  if (benches.empty()) {
    page.note(
        "Kernel benchmarks: none stored; `make bench` runs them and imports the results "
        "(`moebench bench import --json FILE`).");
    return;
  }
  // One chart per value of the first shape segment (the layer shape S/M/L), the rest of the
  // segments (gate, tokens, density, load) naming the clusters; a bar per backend, each backend
  // in one colour in every chart.
  std::vector<std::string> families, backends;
  std::set<std::string> dtypes;
  for (const Bench& b : benches) {
    const auto segs = segments(b.shape);
    const std::string family = segs.empty() ? "" : segs.front();
    if (std::find(families.begin(), families.end(), family) == families.end()) {
      families.push_back(family);
    }
    if (std::find(backends.begin(), backends.end(), b.backend) == backends.end()) {
      backends.push_back(b.backend);
    }
    dtypes.insert(b.dtype);
  }
  std::sort(backends.begin(), backends.end());
  static const std::vector<std::string> colors = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                  "#E69F00", "#56B4E9", "#000000"};
  std::map<std::string, plot::Style> backend_style;
  for (size_t i = 0; i < backends.size(); ++i) {
    backend_style[backends[i]] = {colors[i % colors.size()], 6};
  }
  struct Kind {
    std::string file, what, y_label, ref_label;
    double Bench::*ratio;
    const char* left_out;  // the peer that is 1 by definition
  };
  const std::vector<Kind> kinds = {
      {"kernel_dense", "to the dense chain", "speed / dense-chain speed", "1 = dense chain",
       &Bench::ratio_to_dense, "dense"},
      {"kernel_naive", "to the naive loop", "speed / naive-loop speed", "1 = naive loop",
       &Bench::ratio_to_naive, "naive"}};
  page.open_figures();
  for (const Kind& kind : kinds) {
    for (const std::string& family : families) {
      std::vector<const Bench*> members;
      for (const Bench& b : benches) {
        const auto segs = segments(b.shape);
        if ((segs.empty() ? "" : segs.front()) == family && !is_peer(b.backend, kind.left_out)) {
          members.push_back(&b);
        }
      }
      if (members.empty()) continue;
      // Segments that are the same for every bar go into the title; the others name the
      // clusters, numbers as k=value with the key cut to its first letter where that is unique.
      std::vector<std::string> keys;
      std::map<std::string, std::set<std::string>> values;
      for (const Bench* b : members) {
        const auto segs = segments(b->shape);
        for (size_t i = 1; i < segs.size(); ++i) {
          const std::string key = segs[i].substr(0, segs[i].find(':'));
          if (!values.count(key)) keys.push_back(key);
          values[key].insert(segs[i]);
        }
      }
      std::string common;
      std::map<char, int> initials;
      for (const auto& key : keys) {
        if (values[key].size() == 1) {
          common += (common.empty() ? "" : ", ") + segment_label(*values[key].begin());
        } else if (!key.empty()) {
          ++initials[key[0]];
        }
      }
      auto cluster_of = [&](const Bench& b) {
        const auto segs = segments(b.shape);
        std::string label;
        for (size_t i = 1; i < segs.size(); ++i) {
          const std::string key = segs[i].substr(0, segs[i].find(':'));
          if (values[key].size() == 1) continue;
          std::string part = segment_label(segs[i]);
          if (part.rfind(key + "=", 0) == 0 && !key.empty() && initials[key[0]] == 1) {
            part = key.substr(0, 1) + part.substr(key.size());
          }
          label += (label.empty() ? "" : "\n") + part;
        }
        if (dtypes.size() > 1) label += (label.empty() ? "" : "\n") + b.dtype;
        return label.empty() ? std::string("all") : label;
      };
      plot::BarChart chart;
      std::map<std::string, std::map<std::string, double>> value;  // backend -> cluster -> ratio
      size_t longest = 0;
      for (const Bench* b : members) {
        // A row without this ratio (the dense chain has no naive loop of its shape) has no bar.
        if (!std::isfinite(b->*kind.ratio)) continue;
        const std::string cluster = cluster_of(*b);
        if (std::find(chart.categories.begin(), chart.categories.end(), cluster) ==
            chart.categories.end()) {
          chart.categories.push_back(cluster);
          for (const auto& line : lines_of(cluster)) longest = std::max(longest, line.size());
        }
        value[b->backend][cluster] = b->*kind.ratio;
      }
      for (const std::string& backend : backends) {
        if (!value.count(backend)) continue;
        plot::BarSeries s{backend, backend_style[backend], {}};
        for (const auto& c : chart.categories) {
          const auto it = value[backend].find(c);
          s.values.push_back(it == value[backend].end() ? kNaN : it->second);
        }
        chart.series.push_back(s);
      }
      const std::string family_label = family.empty() ? "all shapes" : segment_label(family);
      chart.title = "expert block speed " + kind.what + ", shape " + family_label +
                    (common.empty() ? "" : " (" + common + ")");
      chart.x_label = "benchmark configuration";
      chart.y.label = kind.y_label;
      chart.refs.push_back({false, 1.0, kind.ref_label, "#555555"});
      // About 7 px a character at the 12 px font; turn the labels when they would overlap.
      constexpr int kKernelWidth = 1240;
      chart.rotate_labels = longest * 7.0 > 0.9 * (kKernelWidth - 140.0) /
                                                static_cast<double>(chart.categories.size());
      page.figure(
          kind.file + "_" + stem(family_label),
          "Expert block (SwiGLU, forward + backward) speed " + kind.what + ", layer shape " +
              family_label + (common.empty() ? "" : ", " + common) +
              ", per benchmark configuration and backend (latest import): the " +
              (kind.left_out == std::string("dense") ? "dense chain's" : "naive loop's") +
              " time over this backend's time, a dimensionless ratio (higher is "
              "faster). Dashed: 1.",
          [&](const plot::Output& out) { return plot::render(chart, out); }, kKernelWidth, 360);
    }
  }
  page.close_figures();

  Table t;
  t.title = "Kernel benchmark results (latest import of each benchmark)";
  t.columns = {simple_column("shape"),        simple_column("backend"),
               simple_column("dtype"),        simple_column("device"),
               simple_column("ms", true),     simple_column("TFLOP/s", true),
               simple_column("×dense", true), simple_column("×naive", true)};
  auto metric = [](const Bench& b, const char* m) {
    const auto it = b.metrics.find(m);
    return it == b.metrics.end() ? std::string("-") : short_number(it->second);
  };
  for (const Bench& b : benches) {
    t.rows.push_back(text_row({b.shape, b.backend, b.dtype, b.device, metric(b, "real_time_ms"),
                               metric(b, "tflops"), short_number(b.ratio_to_dense),
                               short_number(b.ratio_to_naive)}));
  }
  t.footnotes.push_back(
      "×dense: time of the dense SwiGLU GEMM chain with the same useful FLOPs / this time (the "
      "benchmark's ratio_to_dense counter; 1.0 = at the limit)");
  t.footnotes.push_back(
      "×naive: time of the naive per-expert loop (same shape, dtype and device) / this time, "
      "computed by the report from the two rows' real_time_ms");
  page.html += "<details><summary>All kernel benchmark rows (" + std::to_string(benches.size()) +
               ")</summary>\n<div class=\"table-wrap\">" + table_html(t, "kernel-table") +
               "</div></details>\n";
}

// --- the page ------------------------------------------------------------------------------------

const char* kStyle = R"css(
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #222;
       background: #fff; max-width: 1360px; margin: 0 auto; padding: 12px 24px 40px;
       line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.35em; border-bottom: 2px solid #0072B2; padding-bottom: 3px; margin-top: 1.8em; }
h3 { font-size: 1.1em; margin: 1.2em 0 0.4em; }
nav a { margin-right: 1em; }
.meta { color: #555; font-size: 0.92em; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr));
           gap: 18px; }
figure { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 4px; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; width: 100%; height: auto; }
figcaption { font-size: 0.88em; color: #444; margin-top: 6px; }
.table-wrap { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 0.86em; }
caption { text-align: left; font-weight: bold; padding: 4px 0; white-space: nowrap; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #eef3f8; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f8f8f8; }
ul.footnotes { font-size: 0.84em; color: #444; margin-top: 4px; }
p.note { background: #fff6e0; border-left: 4px solid #E69F00; padding: 6px 10px;
         font-size: 0.92em; }
details { margin: 10px 0; }
summary { cursor: pointer; font-weight: bold; }
)css";

}  // namespace

std::vector<std::string> setup_columns(const std::vector<RunRow>& runs) {
  std::map<std::pair<std::string, std::string>, std::vector<verdict::SetupKeys>> setups;
  for (const RunRow& r : runs) {
    const auto config = nlohmann::json::parse(r.config_json, nullptr, /*allow_exceptions=*/false);
    verdict::SetupKeys keys = verdict::setup_keys(config, /*method_options=*/true);
    std::vector<verdict::SetupKeys>& list = setups[{r.size, r.method}];
    if (std::find(list.begin(), list.end(), keys) == list.end()) list.push_back(std::move(keys));
  }
  std::set<std::string> names;
  for (const auto& [key, list] : setups) {
    std::vector<const verdict::SetupKeys*> pointers;
    pointers.reserve(list.size());
    for (const verdict::SetupKeys& k : list) pointers.push_back(&k);
    for (const std::string& name : distinguishing_keys(pointers)) names.insert(name);
  }
  return {names.begin(), names.end()};
}

std::string escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string table_html(const Table& table, const std::string& id) {
  std::string h = "<table" + (id.empty() ? std::string() : " id=\"" + escape(id) + "\"") + ">\n";
  if (!table.title.empty()) h += "<caption>" + escape(table.title) + "</caption>\n";
  h += "<thead><tr>";
  for (const Column& c : table.columns) {
    h += std::string(c.numeric ? "<th class=\"num\">" : "<th>") + escape(c.name) + "</th>";
  }
  h += "</tr></thead>\n<tbody>\n";
  for (const auto& row : table.rows) {
    h += "<tr>";
    for (size_t i = 0; i < table.columns.size(); ++i) {
      const std::string text = i < row.size() ? row[i].text : "";
      h += std::string(table.columns[i].numeric ? "<td class=\"num\">" : "<td>") + escape(text) +
           "</td>";
    }
    h += "</tr>\n";
  }
  h += "</tbody>\n</table>\n";
  if (!table.footnotes.empty()) {
    h += "<ul class=\"footnotes\">\n";
    for (const auto& f : table.footnotes) h += "<li>" + escape(f) + "</li>\n";
    h += "</ul>\n";
  }
  return h;
}

ReportResult write_report(Store& store, const ReportOptions& options) {
  ReportResult result;
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec || !fs::is_directory(options.out_dir)) {
    throw ReportError("cannot create the report folder '" + options.out_dir.string() +
                      "': " + (ec ? ec.message() : "not a folder"));
  }

  // The runs shown, with everything the figures read.
  const std::vector<RunRow> rows = store.runs();
  std::vector<RunData> runs;
  std::map<std::string, int> left_out;  // status -> runs left out for it
  for (const RunRow& r : rows) {
    if (!options.size.empty() && r.size != options.size) continue;
    if (!options.all && r.status != RunStatus::kDone) {
      ++left_out[to_string(r.status)];
      continue;
    }
    RunData d;
    if (auto record = store.run_record(r.run_key)) static_cast<RunRecord&>(d) = std::move(*record);
    // A config that does not parse (not written by our trainer) just has no ρ* or θ to mark.
    const auto config = nlohmann::json::parse(r.config_json, nullptr, /*allow_exceptions=*/false);
    d.rho_target = config_number(config, "moe", "rho_target");
    d.theta = config_number(config, "moe", "theta");
    d.setup = verdict::setup_keys(config);
    d.keys = verdict::setup_keys(config, /*method_options=*/true);
    runs.push_back(std::move(d));
  }
  const bool any_bench = !store.kernel_bench().empty();
  if (runs.empty() && !any_bench) {
    std::string which = options.all ? "runs" : "finished ('done') runs";
    if (!options.size.empty()) which += " of size " + options.size;
    throw ReportError("no " + which + " in '" + store.path() +
                      "' and no kernel benchmarks: train some (moebench train --config micro)" +
                      (options.all ? "" : " or pass --all to include unfinished runs"));
  }
  result.runs = static_cast<int>(runs.size());

  // Groups (method, size, setup) as `moebench verdict` splits runs into setups, with the
  // method's options (verdict::setup_keys): sizes in scale order, methods by name, a method's
  // setups as verdict orders them (the setup with the most runs of the size first), runs by
  // seed. A method with several setups at a size names each by the keys in which they differ.
  std::map<std::string, size_t> setup_runs;  // size + verdict setup -> runs of every method
  const auto setup_id = [](const RunData& r) {
    return r.run.size + "\n" + nlohmann::json(r.setup).dump();
  };
  for (const RunData& r : runs) ++setup_runs[setup_id(r)];
  std::map<std::pair<std::string, std::string>, std::vector<Group>> by_key;
  for (const RunData& r : runs) {
    std::vector<Group>& list = by_key[{r.run.size, r.run.method}];
    auto it =
        std::find_if(list.begin(), list.end(), [&](const Group& g) { return *g.keys == r.keys; });
    if (it == list.end()) {
      Group g;
      g.method = r.run.method, g.size = r.run.size, g.keys = &r.keys;
      list.push_back(std::move(g));
      it = list.end() - 1;
    }
    it->runs.push_back(&r);
  }
  std::map<std::string, std::vector<Group>> by_size;
  std::map<std::string, std::string> group_names;         // run key -> group_name
  std::map<std::string, std::vector<std::string>> split;  // size -> "method (key, ...)"
  for (auto& [key, list] : by_key) {
    const auto main_runs = [&](const Group& g) { return setup_runs[setup_id(*g.runs.front())]; };
    std::stable_sort(list.begin(), list.end(), [&](const Group& a, const Group& b) {
      if (main_runs(a) != main_runs(b)) return main_runs(a) > main_runs(b);
      return nlohmann::json(*a.keys).dump() < nlohmann::json(*b.keys).dump();
    });
    std::vector<const verdict::SetupKeys*> setups;
    setups.reserve(list.size());
    for (const Group& g : list) setups.push_back(g.keys);
    const std::vector<std::string> names = distinguishing_keys(setups);
    if (!names.empty()) {
      std::string joined;
      for (const auto& n : names) joined += (joined.empty() ? "" : ", ") + n;
      split[key.first].push_back(key.second + " (" + std::to_string(list.size()) +
                                 " setups; they differ in " + joined + ")");
    }
    for (size_t k = 0; k < list.size(); ++k) {
      Group& g = list[k];
      g.variant = static_cast<int>(k);
      for (const auto& n : names) {
        g.setup += (g.setup.empty() ? "" : ", ") + n + "=" +
                   verdict::key_value_text(*g.keys, n, /*bare_strings=*/true);
      }
      std::sort(g.runs.begin(), g.runs.end(),
                [](const RunData* a, const RunData* b) { return a->run.seed < b->run.seed; });
      for (const RunData* r : g.runs) group_names[r->run.run_key] = group_name(g);
      by_size[g.size].push_back(g);
    }
  }
  std::vector<std::string> sizes;
  sizes.reserve(by_size.size());
  for (const auto& [size, groups] : by_size) sizes.push_back(size);
  std::stable_sort(sizes.begin(), sizes.end(), [](const std::string& a, const std::string& b) {
    return size_rank(a) < size_rank(b);
  });
  std::vector<Group> all_groups;
  for (const auto& size : sizes) {
    for (const Group& g : by_size[size]) all_groups.push_back(g);
  }
  const std::vector<const RunData*> heat_runs = heatmap_runs(options, runs, all_groups);

  Page page(options, result);
  page.html += "<h1>" + escape(options.title) + "</h1>\n";
  std::string meta = "Database: " + (options.db_label.empty() ? store.path() : options.db_label) +
                     ". " + plural(runs.size(), "run") + " shown";
  if (!options.size.empty()) meta += " (size " + options.size + ")";
  std::string omitted;
  for (const auto& [status, n] : left_out) {
    omitted += (omitted.empty() ? "" : ", ") + std::to_string(n) + " " + status;
  }
  if (!omitted.empty()) meta += "; left out, not done: " + omitted;
  meta +=
      ". Figures: gnuplot SVG, Okabe–Ito colours, one colour per method throughout; each "
      "figure's script and data are in plot-data/.";
  page.html += "<p class=\"meta\">" + escape(meta) + "</p>\n";
  page.html +=
      "<nav><a href=\"#tables\">Tables</a><a href=\"#training\">Training</a>"
      "<a href=\"#load\">Expert load</a><a href=\"#kernels\">Kernels</a>"
      "<a href=\"#runs\">Runs</a></nav>\n";

  page.heading(2, "Tables", "tables");
  page.heading(3, "Comparison with the paper");
  if (options.comparison.columns.empty()) {
    page.note("No comparison table was given to this report.");
  } else {
    page.html +=
        "<div class=\"table-wrap\">" + table_html(options.comparison, "comparison") + "</div>\n";
  }
  page.heading(3, "Claims");
  if (options.claims.columns.empty()) {
    page.note("No claims table in this report yet.");
  } else {
    page.html += "<div class=\"table-wrap\">" + table_html(options.claims, "claims") + "</div>\n";
  }

  page.heading(2, "Training, routing and the θ sweep", "training");
  if (sizes.empty()) page.note("No runs to draw.");
  for (const std::string& size : sizes) {
    const std::vector<Group>& groups = by_size[size];
    std::set<std::string> methods;
    for (const Group& g : groups) methods.insert(g.method);
    page.heading(3, "Size " + size + " (" + plural(methods.size(), "method") + ")",
                 "size-" + stem(size));
    if (split.count(size)) {
      std::string which;
      for (const auto& m : split[size]) which += (which.empty() ? "" : "; ") + m;
      page.paragraph(
          "Runs of one method in different setups are drawn and counted apart, a line (and "
          "band) each: " +
          which +
          ". A setup is what `moebench verdict` pairs runs by (the model section, train.steps, "
          "train.dtype, data.mode, data.batch_size, moe.experts, eval.val_batches) with the "
          "method's own options (moe.*); the seed is not part of it.");
    }
    loss_section(page, size, groups);
    controller_section(page, size, groups);
    theta_section(page, size, groups);
    active_section(page, size, groups);
  }

  if (runs.empty()) {
    page.heading(2, "Expert load per layer", "load");
    page.note("No runs to draw.");
  } else {
    heatmap_section(page, heat_runs, group_names);
  }
  kernel_section(page, store);

  page.heading(2, "Runs", "runs");
  Table t;
  t.columns = {simple_column("run"),        simple_column("method"), simple_column("size"),
               simple_column("seed", true), simple_column("status"), simple_column("step", true),
               simple_column("commit"),     simple_column("device"), simple_column("backend")};
  for (const RunData& r : runs) {
    t.rows.push_back(
        text_row({r.run.run_key, r.run.method, r.run.size, std::to_string(r.run.seed),
                  to_string(r.run.status), std::to_string(r.run.status_step),
                  r.run.commit + (r.run.dirty ? " (dirty)" : ""), r.run.device, r.run.backend}));
  }
  page.html += "<details><summary>The " + plural(runs.size(), "run") +
               " shown</summary>\n<div class=\"table-wrap\">" + table_html(t, "run-table") +
               "</div></details>\n";
  page.html += "<p class=\"meta\">Made by <code>moebench report</code>; rerun it to refresh.</p>\n";

  std::string doc = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  doc += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  doc += "<title>" + escape(options.title) + "</title>\n<style>" + kStyle + "</style>\n";
  doc += "</head>\n<body>\n" + page.html + "</body>\n</html>\n";

  result.index = options.out_dir / "index.html";
  // Written next to it and renamed, so a reader never sees half a page.
  const fs::path tmp = options.out_dir / "index.html.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << doc;
    out.close();
    if (!out) throw ReportError("cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, result.index, ec);
  if (ec) throw ReportError("cannot write '" + result.index.string() + "': " + ec.message());
  return result;
}

}  // namespace moebench::html
