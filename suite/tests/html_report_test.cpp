// Tests of the HTML report on a synthetic store written through the Store API: the page, its
// figures (rendered by the real gnuplot), its tables and its notes where there is nothing to
// draw. The rendering cases skip when gnuplot is not installed (scripts/setup.sh installs it).
//
// HtmlReport.FixtureDatabaseForBrowserCheck also serves the CTest `report_browser` entry
// (suite/CMakeLists.txt): with MOEBENCH_REPORT_FIXTURE_DB set it leaves the synthetic database
// at that path for `moebench report` and scripts/browser_check.sh.
#include "suite/html_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "suite/plot.h"
#include "suite/tests/store_fixture.h"

namespace moebench::html {
namespace {

namespace fs = std::filesystem;

using test_support::kNaN;
using test_support::slurp;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The src of every <img> on the page.
std::vector<std::string> image_sources(const std::string& html) {
  std::vector<std::string> out;
  const std::regex img("<img[^>]*\\bsrc=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1].str());
  }
  return out;
}

// --- the synthetic store -------------------------------------------------------------------------

struct RunSpec {
  std::string key;
  std::string method;
  int64_t seed = 1;
  bool controlled = false;  // logs λ and steers density to ρ* = 0.25 (RF, ReMoE)
  bool routed = true;       // has layer statistics (not dense)
  bool theta_sweep = false;
  RunStatus status = RunStatus::kDone;
  std::string init{};  // config model.init; "" = no model section
};

// One run as the trainer and evaluator write it: 11 logged steps, 3 eval points with layer
// statistics (4 layers × 8 experts), the θ sweep at the final step.
void add_run(Store& store, const RunSpec& spec) {
  RunRow r;
  r.run_key = spec.key;
  r.config_json = R"({"moe":{"method":")" + spec.method +
                  R"(","rho_target":0.25,"theta":1.0},"train":{"seed":)" +
                  std::to_string(spec.seed) + "}" +
                  (spec.init.empty() ? "" : R"(,"model":{"init":")" + spec.init + R"("})") + "}";
  r.method = spec.method;
  r.size = "micro";
  r.seed = spec.seed;
  r.commit = "abc123";
  r.device = "cpu";
  r.backend = "cpu";
  store.begin_run(r);
  const double offset = 0.05 * static_cast<double>(spec.seed) + (spec.method.size() % 5) * 0.03;
  std::vector<StepRow> steps;
  for (int64_t s = 0; s <= 100; s += 10) {
    StepRow row;
    row.step = s;
    row.tokens = s * 2048;
    row.lm_loss = 9.0 - 3.0 * std::log1p(s / 10.0) / std::log(11.0) + offset +
                  0.05 * std::sin(static_cast<double>(s + spec.seed));
    row.aux_loss = spec.controlled ? 0.01 : 0.0;
    row.loss = row.lm_loss + row.aux_loss;
    // Each controlled method approaches ρ* = 0.25 at its own pace, so the curves stay apart.
    const double pace = 15.0 + 10.0 * (spec.method.size() % 3);
    row.lambda = spec.controlled ? 1e-6 * std::pow(10.0, s / pace) : kNaN;
    row.density = spec.controlled ? 0.25 + 0.35 * std::exp(-s / pace) : (spec.routed ? 0.25 : 1);
    row.lr = 1e-3;
    row.tokens_per_s = 1000;
    row.elapsed_s = static_cast<double>(s);
    steps.push_back(row);
  }
  store.append_steps(r.run_key, steps);
  std::vector<EvalRow> evals;
  std::vector<LayerStatRow> stats;
  for (const int64_t s : {20, 60, 100}) {
    const double loss = 8.0 - 2.0 * s / 100.0 + offset;
    evals.push_back({"val", "loss", loss, 64, kNaN, kNaN, kNaN, std::nullopt, s});
    evals.push_back({"val", "ppl", std::exp(loss), 64, kNaN, kNaN, kNaN, std::nullopt, s});
    if (!spec.routed) continue;
    for (int l = 0; l < 4; ++l) {
      double total = 0;
      for (int e = 0; e < 8; ++e) {
        // Skewed early, balanced late.
        const double skew = (s == 20 ? 0.2 : 0.05) * std::cos(e + l);
        const double load = 0.25 + skew;
        total += load;
        stats.push_back({s, l, e, "load", load});
      }
      stats.push_back({s, l, -1, "active_mean", total});
      stats.push_back({s, l, -1, "active_p50", 2});
      stats.push_back({s, l, -1, "active_p99", spec.controlled ? 5.0 : 2.0});
      stats.push_back({s, l, -1, "active_max", spec.controlled ? 7.0 : 2.0});
      stats.push_back({s, l, -1, "frac_zero", spec.controlled ? 0.04 : 0.0});
    }
  }
  if (spec.theta_sweep) {
    for (const double theta : {0.8, 1.0, 1.2}) {
      evals.push_back(
          {"val", "loss", 6.0 + 0.5 * (theta - 1.0) + offset, 64, kNaN, kNaN, kNaN, theta, 100});
      evals.push_back({"val", "density", 0.25 / theta, 64, kNaN, kNaN, kNaN, theta, 100});
    }
  }
  store.append_evals(r.run_key, evals);
  store.append_layer_stats(r.run_key, stats);
  if (spec.status != RunStatus::kRunning) store.finish_run(r.run_key, spec.status, 100, 60);
}

void add_kernel_bench(Store& store) {
  std::vector<KernelBenchRow> rows;
  for (const std::string shape : {"S", "M"}) {
    for (const std::string load : {"uniform", "zipf"}) {
      const std::string dims = "shape:" + shape + "/gate:full/tokens:2048/density:0.25";
      const double scale = shape == "S" ? 1.0 : 2.0;
      const struct {
        const char* backend;
        double ms;
      } peers[] = {{"reference", 20 * scale}, {"cpu", 8 * scale}, {"naive", 40 * scale}};
      for (const auto& p : peers) {
        const std::string s = dims + "/load:" + load;
        const std::string name = "expert_swiglu/" + s + "/backend:" + p.backend + "/dtype:fp32";
        const double dense_ms = 4 * scale;
        for (const auto& [metric, value] :
             std::vector<std::pair<std::string, double>>{{"real_time_ms", p.ms},
                                                         {"tflops", 0.01 / p.ms},
                                                         {"ratio_to_dense", dense_ms / p.ms},
                                                         {"dense_ms", dense_ms}}) {
          rows.push_back({name, s, p.backend, "fp32", metric, value, "abc123", "cpu",
                          "2026-01-01T00:00:00.000Z"});
        }
      }
    }
  }
  store.insert_kernel_bench(rows);
}

// Routing-Free and top-k with two seeds each, ReMoE and dense with one, an unfinished run that
// the report leaves out, and kernel benchmarks.
void fill_fixture(Store& store) {
  add_run(store, {"rf0001aaaa", "routing_free", 1, true, true, true});
  add_run(store, {"rf0002bbbb", "routing_free", 2, true, true, true});
  add_run(store, {"tk0001cccc", "topk", 1});
  add_run(store, {"tk0002dddd", "topk", 2});
  add_run(store, {"re0001eeee", "remoe", 1, true});
  add_run(store, {"de0001ffff", "dense", 1, false, false});
  add_run(store, {"tk0003gggg", "topk", 3, false, true, false, RunStatus::kRunning});
  add_kernel_bench(store);
}

// A comparison table as `moebench table --published` makes it, with a cell that needs escaping.
Table comparison_table() {
  Table t;
  t.title = "val loss by method";
  t.columns = {simple_column("method"),
               simple_column("size"),
               simple_column("status"),
               {"val loss", {"val_loss_mean", "val_loss_std"}, true},
               simple_column("ppl", true)};
  t.rows.push_back(text_row({"topk", "micro", "2 done", "6.15 ± 0.04", "468.8"}));
  t.rows.push_back(text_row({"routing_free", "micro", "2 done", "6.03 ± 0.04", "415.9"}));
  t.rows.push_back(text_row({"routing_free", "S", "published", "-", "21.3"}));
  t.rows.push_back(text_row({"<script>alert(1)</script>", "micro", "1 done", "6.0", "403"}));
  t.footnotes.push_back("published: the paper's numbers & ours side by side");
  return t;
}

Table claims_table() {
  Table t;
  t.columns = {simple_column("claim"), simple_column("verdict")};
  t.rows.push_back(text_row({"RF beats top-k at equal density", "supported (p < 0.05)"}));
  return t;
}

class HtmlReportTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test_support::make_temp_dir("moebench_html_"); }
  void TearDown() override { test_support::remove_temp_dir(dir_); }
  static bool have_gnuplot() { return !plot::find_program("gnuplot").empty(); }
  std::string db_path() const { return (dir_ / "results.sqlite").string(); }
  ReportOptions options() const {
    ReportOptions o;
    o.out_dir = dir_ / "report";
    o.db_label = "results.sqlite";
    return o;
  }

  fs::path dir_;
};

#define SKIP_WITHOUT_GNUPLOT()                                                                \
  if (!have_gnuplot()) {                                                                      \
    GTEST_SKIP() << "gnuplot is not installed: bash scripts/setup.sh (or apt-get install -y " \
                    "gnuplot-nox)";                                                           \
  }

// The page's images are all there and are SVG documents; nothing is fetched from elsewhere.
void expect_self_contained(const fs::path& out_dir, const std::string& html) {
  const auto sources = image_sources(html);
  EXPECT_FALSE(sources.empty());
  for (const std::string& src : sources) {
    EXPECT_EQ(src.find(':'), std::string::npos) << "not a relative path: " << src;
    EXPECT_NE(src[0], '/') << src;
    const fs::path file = out_dir / src;
    ASSERT_TRUE(fs::is_regular_file(file)) << "broken image: " << src;
    const std::string svg = slurp(file);
    EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0) << src;
    EXPECT_TRUE(contains(svg, "</svg>")) << src;
  }
  EXPECT_FALSE(contains(html, "http://")) << "no network references";
  EXPECT_FALSE(contains(html, "https://")) << "no network references";
  EXPECT_FALSE(contains(html, "<script")) << "no scripts";
  EXPECT_FALSE(contains(html, "<link")) << "styles are inline";
}

TEST(HtmlReport, EscapesText) {
  EXPECT_EQ(escape("a<b & \"c\" 'd' >"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39; &gt;");
  EXPECT_EQ(escape("ρ* = 0.25 ± 0.01"), "ρ* = 0.25 ± 0.01");
}

TEST(HtmlReport, TablesBecomeEscapedHtmlTables) {
  const std::string h = table_html(comparison_table(), "comparison");
  EXPECT_TRUE(contains(h, "<table id=\"comparison\">"));
  EXPECT_TRUE(contains(h, "<caption>val loss by method</caption>"));
  EXPECT_TRUE(contains(h, "<th class=\"num\">val loss</th>")) << "numeric columns align right";
  EXPECT_TRUE(contains(h, "<td class=\"num\">6.03 ± 0.04</td>"));
  EXPECT_TRUE(contains(h, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_FALSE(contains(h, "<script>"));
  EXPECT_TRUE(contains(h, "<li>published: the paper&#39;s numbers &amp; ours side by side</li>"));
  // Five rows: one header, four body rows.
  size_t rows = 0;
  for (size_t at = h.find("<tr>"); at != std::string::npos; at = h.find("<tr>", at + 1)) ++rows;
  EXPECT_EQ(rows, 5u);
}

TEST_F(HtmlReportTest, PageHasEveryFigureAndBothTables) {
  SKIP_WITHOUT_GNUPLOT();
  Store store(db_path());
  fill_fixture(store);
  ReportOptions o = options();
  o.comparison = comparison_table();
  o.claims = claims_table();
  const ReportResult r = write_report(store, o);
  ASSERT_EQ(r.index, o.out_dir / "index.html");
  const std::string html = slurp(r.index);
  EXPECT_EQ(r.runs, 6) << "the running run is left out";
  EXPECT_TRUE(contains(html, "1 running")) << "the page says what it left out";

  expect_self_contained(o.out_dir, html);
  const std::set<std::string> images(r.images.begin(), r.images.end());
  EXPECT_EQ(image_sources(html).size(), r.images.size());
  for (const char* want :
       {"loss_val_micro.svg", "loss_train_micro.svg", "density_micro.svg", "lambda_micro.svg",
        "theta_density_micro.svg", "theta_loss_micro.svg", "active_micro.svg",
        "load_rf0001aaaa_step20.svg", "load_rf0001aaaa_step100.svg", "kernel_dense_S.svg",
        "kernel_naive_S.svg", "kernel_dense_M.svg", "kernel_naive_M.svg"}) {
    EXPECT_TRUE(images.count(want)) << want;
  }
  // Heat-maps default to the lowest seed of each routed group; dense has no load rows.
  EXPECT_TRUE(images.count("load_tk0001cccc_step100.svg"));
  EXPECT_FALSE(images.count("load_tk0002dddd_step100.svg"));
  EXPECT_FALSE(images.count("load_de0001ffff_step100.svg"));

  // Legends name the methods (and the seeds behind a band) and the reference lines.
  const std::string val = slurp(o.out_dir / "loss_val_micro.svg");
  for (const char* m : {"routing_free (2 seeds)", "topk (2 seeds)", "remoe", "dense"}) {
    EXPECT_TRUE(contains(val, m)) << m;
  }
  const std::string density = slurp(o.out_dir / "density_micro.svg");
  EXPECT_TRUE(contains(density, "ρ* = 0.25"));
  EXPECT_TRUE(contains(density, "remoe"));
  EXPECT_FALSE(contains(density, "topk")) << "top-k has no controller";
  EXPECT_TRUE(contains(slurp(o.out_dir / "theta_loss_micro.svg"), "trained θ = 1"));
  EXPECT_TRUE(contains(slurp(o.out_dir / "kernel_naive_S.svg"), "reference"));
  // Routing-Free keeps its colour in every figure.
  EXPECT_TRUE(contains(slurp(o.out_dir / "plot-data" / "loss_val_micro.gp"), "#D55E00"));
  EXPECT_TRUE(contains(slurp(o.out_dir / "plot-data" / "active_micro.gp"), "#D55E00"));

  // The tables, escaped; the ratio to the naive loop is recomputed (40 ms / 8 ms = 5).
  EXPECT_TRUE(contains(html, "<table id=\"comparison\">"));
  EXPECT_TRUE(contains(html, "<table id=\"claims\">"));
  EXPECT_TRUE(contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(contains(html, "<table id=\"kernel-table\">"));
  EXPECT_TRUE(contains(html, "<td class=\"num\">5</td>"));
  // Every figure has a caption with its unit.
  EXPECT_TRUE(contains(html, "nats per token"));
  EXPECT_TRUE(r.notes.empty()) << r.notes.front();
  // One setup per method: plain names, no note about setups.
  EXPECT_FALSE(contains(html, "drawn and counted apart"));
  EXPECT_TRUE(contains(html, "Size micro (4 methods)"));
  EXPECT_TRUE(setup_columns(store.runs()).empty());
}

// The text between `from` and the next `to` after it ("" when absent).
std::string between(const std::string& text, const std::string& from, const std::string& to) {
  const size_t start = text.find(from);
  if (start == std::string::npos) return "";
  const size_t end = text.find(to, start + from.size());
  return text.substr(start + from.size(), end - start - from.size());
}

// The gnuplot point type of the line titled `title` in a figure's script (-1 when absent).
int point_of(const std::string& script, const std::string& title) {
  const std::string line = between(script, "", "title '" + title + "'");
  const size_t pt = line.rfind(" pt ");
  if (pt == std::string::npos || line.size() == script.size()) return -1;
  return std::stoi(line.substr(pt + 4));
}

// Routing-Free in two setups (model.init published: seeds 1-3; normal: seeds 1-2) beside top-k
// (published, seeds 1-2): one band per setup with its own seed count and a label naming the key
// that differs; top-k keeps its plain label. Expected values written out by hand.
TEST_F(HtmlReportTest, MethodInTwoSetupsGetsOneBandEach) {
  Store store(db_path());
  add_run(store,
          {"rfp1aaaaaa", "routing_free", 1, true, true, true, RunStatus::kDone, "published"});
  add_run(store,
          {"rfp2bbbbbb", "routing_free", 2, true, true, true, RunStatus::kDone, "published"});
  add_run(store,
          {"rfp3cccccc", "routing_free", 3, true, true, true, RunStatus::kDone, "published"});
  add_run(store, {"rfn1dddddd", "routing_free", 1, true, true, true, RunStatus::kDone, "normal"});
  add_run(store, {"rfn2eeeeee", "routing_free", 2, true, true, true, RunStatus::kDone, "normal"});
  add_run(store, {"tkp1ffffff", "topk", 1, false, true, false, RunStatus::kDone, "published"});
  add_run(store, {"tkp2gggggg", "topk", 2, false, true, false, RunStatus::kDone, "published"});
  EXPECT_EQ(setup_columns(store.runs()), std::vector<std::string>{"model.init"});

  SKIP_WITHOUT_GNUPLOT();
  ReportOptions o = options();
  const ReportResult r = write_report(store, o);
  EXPECT_EQ(r.runs, 7);
  const std::string html = slurp(r.index);
  expect_self_contained(o.out_dir, html);
  EXPECT_TRUE(contains(html, "Size micro (2 methods)"));
  EXPECT_TRUE(contains(html, "routing_free (2 setups; they differ in model.init)"));

  const std::string published = "routing_free (model.init=published; 3 seeds)";
  const std::string normal = "routing_free (model.init=normal; 2 seeds)";
  for (const char* figure : {"loss_val_micro", "loss_train_micro", "density_micro", "lambda_micro",
                             "theta_loss_micro", "theta_density_micro"}) {
    const std::string svg = slurp(o.out_dir / (std::string(figure) + ".svg"));
    EXPECT_TRUE(contains(svg, published)) << figure;
    EXPECT_TRUE(contains(svg, normal)) << figure;
    EXPECT_FALSE(contains(svg, "5 seeds")) << figure << ": the setups are not merged";
    EXPECT_FALSE(contains(svg, "routing_free (3 seeds)")) << figure;
  }
  EXPECT_TRUE(contains(slurp(o.out_dir / "loss_val_micro.svg"), "topk (2 seeds)"));
  // Routing-Free's colour for both; its own marker (filled circle, 7) for the main setup (5 of
  // the 7 runs), another one for the other.
  const std::string script = slurp(o.out_dir / "plot-data" / "loss_val_micro.gp");
  EXPECT_EQ(point_of(script, published), 7);
  const int other = point_of(script, normal);
  EXPECT_GT(other, 0);
  EXPECT_NE(other, 7);
  // The bands at step 100 (series 0: published, 1: normal, 2: topk, methods by name, the main
  // setup first): add_run's val loss there is 8 - 2 + 0.05 * seed + 0.03 * (12 % 5), so
  // published has 6.11, 6.16, 6.21 (mean 6.16, sample std 0.05) and normal 6.11, 6.16 (mean
  // 6.135, sample std 0.05 / sqrt(2)).
  const auto row_at_100 = [&](int series) {
    std::istringstream in(between(
        slurp(o.out_dir / "plot-data" / ("loss_val_micro." + std::to_string(series) + ".tsv")),
        "\n100\t", "\n"));
    double y = kNaN, low = kNaN, high = kNaN;
    in >> y >> low >> high;
    return std::vector<double>{y, low, high};
  };
  const std::vector<double> p = row_at_100(0);
  EXPECT_NEAR(p[0], 6.16, 1e-9);
  EXPECT_NEAR(p[1], 6.16 - 0.05, 1e-9);
  EXPECT_NEAR(p[2], 6.16 + 0.05, 1e-9);
  const std::vector<double> n = row_at_100(1);
  EXPECT_NEAR(n[0], 6.135, 1e-9);
  EXPECT_NEAR(n[1], 6.135 - 0.05 / std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(n[2], 6.135 + 0.05 / std::sqrt(2.0), 1e-9);

  // The table of active experts: a row per setup with its run count.
  const std::string active = between(html, "<table id=\"active-micro\">", "</table>");
  EXPECT_TRUE(
      contains(active, "<td>routing_free (model.init=published)</td><td class=\"num\">3</td>"))
      << active;
  EXPECT_TRUE(contains(active, "<td>routing_free (model.init=normal)</td><td class=\"num\">2</td>"))
      << active;
  EXPECT_TRUE(contains(active, "<td>topk</td><td class=\"num\">2</td>")) << active;

  // Heat-maps: the lowest seed of each group, the setup named in the caption.
  const std::set<std::string> images(r.images.begin(), r.images.end());
  EXPECT_TRUE(images.count("load_rfp1aaaaaa_step100.svg"));
  EXPECT_TRUE(images.count("load_rfn1dddddd_step100.svg"));
  EXPECT_TRUE(images.count("load_tkp1ffffff_step100.svg"));
  EXPECT_FALSE(images.count("load_rfp2bbbbbb_step100.svg"));
  EXPECT_FALSE(images.count("load_rfn2eeeeee_step100.svg"));
  EXPECT_TRUE(contains(html, "run rfn1dddddd (routing_free (model.init=normal), micro, seed 1)"));
}

// The keys that tell a method's setups apart: only between runs of one method and size; the
// method's own options count (two runs of seed 1 that differ in moe.theta are two setups).
TEST(HtmlReport, SetupColumnsAreTheKeysThatSplitAMethodsRuns) {
  const auto run = [](const std::string& method, const std::string& size, int64_t seed,
                      const std::string& config) {
    return test_support::test_run_row(method, size, seed, config);
  };
  const std::string base = R"({"model":{"layers":4},"moe":{"theta":1.0},"train":{"steps":300}})";
  EXPECT_TRUE(
      setup_columns({run("routing_free", "micro", 1, base), run("routing_free", "micro", 2, base)})
          .empty())
      << "seeds alone do not split";
  EXPECT_TRUE(setup_columns({run("routing_free", "micro", 1, base),
                             run("topk", "micro", 1, R"({"model":{"layers":4},"moe":{"top_k":2}})"),
                             run("routing_free", "S", 1, R"({"model":{"layers":8}})")})
                  .empty())
      << "different methods or sizes are never compared";
  EXPECT_EQ(
      setup_columns({run("routing_free", "micro", 1, base),
                     run("routing_free", "micro", 1,
                         R"({"model":{"layers":4},"moe":{"theta":1.2},"train":{"steps":300}})"),
                     run("topk", "micro", 1, base),
                     run("topk", "micro", 2,
                         R"({"model":{"layers":4},"moe":{"theta":1.0},"train":{"steps":600}})"),
                     run("remoe", "micro", 1, "not json"), run("remoe", "micro", 2, "{}")}),
      (std::vector<std::string>{"moe.theta", "train.steps"}));
}

TEST_F(HtmlReportTest, NotesInsteadOfMissingFigures) {
  SKIP_WITHOUT_GNUPLOT();
  Store store(db_path());
  add_run(store, {"tk0001cccc", "topk", 1});
  const ReportResult r = write_report(store, options());
  const std::string html = slurp(r.index);
  expect_self_contained(options().out_dir, html);
  EXPECT_TRUE(contains(html, "no θ-sweep rows stored"));
  EXPECT_TRUE(contains(html, "no run of this size logs a balance coefficient"));
  EXPECT_TRUE(contains(html, "Kernel benchmarks: none stored"));
  EXPECT_TRUE(contains(html, "No comparison table was given"));
  EXPECT_TRUE(contains(html, "No claims table"));
  EXPECT_FALSE(fs::exists(options().out_dir / "theta_loss_micro.svg"));
  EXPECT_GE(r.notes.size(), 5u);
}

TEST_F(HtmlReportTest, ChosenRunsAndSizeFilter) {
  SKIP_WITHOUT_GNUPLOT();
  Store store(db_path());
  fill_fixture(store);
  ReportOptions o = options();
  o.heatmap_runs = {"re0001", "tk0002dddd"};
  const ReportResult r = write_report(store, o);
  const std::set<std::string> images(r.images.begin(), r.images.end());
  EXPECT_TRUE(images.count("load_re0001eeee_step100.svg"));
  EXPECT_TRUE(images.count("load_tk0002dddd_step20.svg"));
  EXPECT_FALSE(images.count("load_rf0001aaaa_step100.svg"));

  o.heatmap_runs = {"tk000"};  // three top-k runs start so (two shown)
  EXPECT_THROW(write_report(store, o), ReportError);
  o.heatmap_runs = {"nosuchrun"};
  EXPECT_THROW(write_report(store, o), ReportError);

  o.heatmap_runs = {};
  o.size = "S";  // no runs of that size, but the kernel benchmarks still make a page
  const ReportResult s = write_report(store, o);
  EXPECT_EQ(s.runs, 0);
  EXPECT_TRUE(contains(slurp(s.index), "No runs to draw."));
}

TEST_F(HtmlReportTest, NothingToShowIsAnError) {
  Store store(db_path());
  try {
    write_report(store, options());
    ADD_FAILURE() << "an empty store must be an error";
  } catch (const ReportError& e) {
    EXPECT_TRUE(contains(e.what(), "moebench train")) << e.what();
  }
  add_run(store, {"tk0003gggg", "topk", 3, false, true, false, RunStatus::kInterrupted});
  EXPECT_THROW(write_report(store, options()), ReportError) << "only unfinished runs";
  if (!have_gnuplot()) return;
  ReportOptions o = options();
  o.all = true;
  EXPECT_EQ(write_report(store, o).runs, 1);
}

// The synthetic database renders; with MOEBENCH_REPORT_FIXTURE_DB set it is also written there
// (before the gnuplot check, so the browser check gets its database either way).
TEST_F(HtmlReportTest, FixtureDatabaseForBrowserCheck) {
  const char* keep = std::getenv("MOEBENCH_REPORT_FIXTURE_DB");
  if (keep != nullptr && *keep != '\0') {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(std::string(keep) + suffix);
    Store kept(keep);  // closed at the end of this block, before the report reads it
    fill_fixture(kept);
  }
  SKIP_WITHOUT_GNUPLOT();
  Store store(db_path());
  fill_fixture(store);
  ReportOptions o = options();
  o.comparison = comparison_table();
  const ReportResult r = write_report(store, o);
  expect_self_contained(o.out_dir, slurp(r.index));
}

}  // namespace
}  // namespace moebench::html
