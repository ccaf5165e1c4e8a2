// Tests of the gnuplot driver: the palette, the program lookup and its error message, and each
// figure kind rendered by the real gnuplot into an SVG whose legend names the series. The
// rendering cases skip when gnuplot is not installed (scripts/setup.sh installs gnuplot-nox).
#include "suite/plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "suite/tests/store_fixture.h"

namespace moebench::plot {
namespace {

namespace fs = std::filesystem;

using test_support::kNaN;
using test_support::slurp;

// What every figure must be: an SVG document (gnuplot writes the XML declaration first).
void expect_svg(const fs::path& path) {
  ASSERT_TRUE(fs::is_regular_file(path)) << path;
  const std::string text = slurp(path);
  const bool starts = text.rfind("<?xml", 0) == 0 || text.rfind("<svg", 0) == 0;
  EXPECT_TRUE(starts) << path << " starts with: " << text.substr(0, 40);
  EXPECT_NE(text.find("</svg>"), std::string::npos) << path << " is cut short";
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_program("gnuplot").empty()) {
      GTEST_SKIP() << "gnuplot is not installed: bash scripts/setup.sh (or apt-get install -y "
                      "gnuplot-nox)";
    }
    dir_ = test_support::make_temp_dir("moebench_plot_");
  }
  void TearDown() override { test_support::remove_temp_dir(dir_); }
  Output out(const std::string& name) const {
    Output o;
    o.dir = dir_;
    o.name = name;
    return o;
  }

  fs::path dir_;
};

TEST(PlotPalette, EveryMethodKeepsOneDistinctOkabeItoStyle) {
  const auto& palette = okabe_ito();
  ASSERT_EQ(palette.size(), 8u);
  const std::set<std::string> colors(palette.begin(), palette.end());
  std::set<std::string> used;
  for (const char* m :
       {"routing_free", "topk", "switch", "remoe", "aoe", "self_routing", "dense"}) {
    const Style s = method_style(m);
    EXPECT_TRUE(colors.count(s.color)) << m << " " << s.color;
    used.insert(s.color);
    EXPECT_EQ(method_style(m).color, s.color) << "a method must keep its colour";
  }
  EXPECT_EQ(used.size(), 7u) << "the seven methods need seven colours";
  EXPECT_EQ(method_style("routing_free").color, "#D55E00");
  // A name the table does not know still gets a palette colour, the same one every time.
  const Style other = method_style("my_new_method");
  EXPECT_TRUE(colors.count(other.color));
  EXPECT_EQ(method_style("my_new_method").color, other.color);
  EXPECT_EQ(method_style("my_new_method").point, other.point);
}

TEST(PlotProgram, FindsProgramsOnPathAndByPath) {
  EXPECT_FALSE(find_program("sh").empty());
  EXPECT_EQ(find_program("moebench-no-such-program"), "");
  EXPECT_EQ(find_program("/no/such/dir/gnuplot"), "");
  EXPECT_EQ(find_program(""), "");
}

// Without gnuplot the message names the program and how to install it; this case needs no
// gnuplot, so it runs everywhere.
TEST(PlotProgram, MissingGnuplotNamesTheProgramAndSetup) {
  const fs::path dir = fs::temp_directory_path() /
                       ("moebench_plot_missing_" + std::to_string(std::random_device{}()));
  LinePlot p;
  p.series.push_back({"a", method_style("topk"), {0, 1}, {1, 2}, {}, {}});
  Output o;
  o.dir = dir;
  o.name = "missing";
  o.program = "/no/such/dir/gnuplot";
  try {
    render(p, o);
    ADD_FAILURE() << "render without gnuplot must throw";
  } catch (const PlotError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/no/such/dir/gnuplot"), std::string::npos) << msg;
    EXPECT_NE(msg.find("scripts/setup.sh"), std::string::npos) << msg;
    EXPECT_NE(msg.find("gnuplot-nox"), std::string::npos) << msg;
  }
  test_support::remove_temp_dir(dir);
}

TEST_F(PlotTest, LinePlotWithBandAndReferenceLine) {
  LinePlot p;
  p.title = "density over training";
  p.x.label = "step";
  p.y.label = "density (active fraction)";
  Series rf{"routing_free",        method_style("routing_free"), {0, 10, 20, 30},
            {0.5, 0.4, 0.3, 0.26}, {0.45, 0.35, 0.28, 0.25},     {0.55, 0.45, 0.32, 0.27}};
  Series remoe{"remoe", method_style("remoe"), {0, 10, 20}, {0.6, 0.3, kNaN}, {}, {}};
  p.series = {rf, remoe};
  p.refs.push_back({false, 0.25, "rho* = 0.25 (it's the target)", "#555555"});
  const fs::path svg = render(p, out("density"));
  EXPECT_EQ(svg, dir_ / "density.svg");
  expect_svg(svg);
  const std::string text = slurp(svg);
  EXPECT_NE(text.find("routing_free"), std::string::npos) << "legend names the series";
  EXPECT_NE(text.find("remoe"), std::string::npos);
  EXPECT_NE(text.find("rho* = 0.25"), std::string::npos) << "legend names the reference line";
  // The script and the data stay beside the image, for rerunning by hand.
  EXPECT_TRUE(fs::is_regular_file(dir_ / "plot-data" / "density.gp"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "plot-data" / "density.0.tsv"));
  const std::string script = slurp(dir_ / "plot-data" / "density.gp");
  EXPECT_NE(script.find("filledcurves"), std::string::npos) << "the band is drawn";
  EXPECT_NE(script.find("#D55E00"), std::string::npos) << "routing_free is vermillion";
  // The NaN point of remoe is left out of its data file.
  const std::string remoe_data = slurp(dir_ / "plot-data" / "density.1.tsv");
  EXPECT_EQ(remoe_data.find("NaN"), std::string::npos) << remoe_data;
}

TEST_F(PlotTest, LogAxisLeavesOutNonPositiveValues) {
  LinePlot p;
  p.x.label = "step";
  p.y.label = "lambda";
  p.y.log = true;
  p.series.push_back(
      {"routing_free", method_style("routing_free"), {0, 1, 2}, {0, 1e-9, 1e-3}, {}, {}});
  expect_svg(render(p, out("lambda")));
  const std::string data = slurp(dir_ / "plot-data" / "lambda.0.tsv");
  EXPECT_EQ(data.find("\n0\t0\t"), std::string::npos) << "λ = 0 cannot sit on a log axis";

  LinePlot none;
  none.y.label = "lambda";
  none.y.log = true;
  none.series.push_back({"topk", method_style("topk"), {0, 1}, {0, kNaN}, {}, {}});
  EXPECT_THROW(render(none, out("nothing")), std::invalid_argument);
}

TEST_F(PlotTest, HeatMapsOfOneOrManyRows) {
  HeatMap h;
  h.title = "load";
  h.x.label = "expert";
  h.y.label = "layer";
  h.value_label = "fraction of tokens";
  h.values = {{0.1, 0.2, 0.3, 0.4}, {0.4, 0.3, 0.2, kNaN}, {0.25, 0.25, 0.25, 0.25}};
  expect_svg(render(h, out("heat")));
  EXPECT_NE(slurp(dir_ / "heat.svg").find("0.40"), std::string::npos) << "cells carry values";

  HeatMap one = h;
  one.values = {{0.5, 0.5}};
  one.min = 0;
  one.max = 1;
  expect_svg(render(one, out("heat_one_row")));

  HeatMap empty = h;
  empty.values = {};
  EXPECT_THROW(render(empty, out("heat_empty")), std::invalid_argument);
}

TEST_F(PlotTest, ClusteredBarsWithMissingValues) {
  BarChart b;
  b.title = "kernel ratio";
  b.x_label = "shape";
  b.categories = {"S full d0.25", "M lowrank d0.5", "L full d0.25"};
  b.y.label = "time of the dense chain / time (1 = at the limit)";
  b.series.push_back({"cpu", method_style("cpu"), {0.5, 0.7, kNaN}});
  b.series.push_back({"reference", method_style("reference"), {0.2, kNaN, 0.3}});
  b.refs.push_back({false, 1.0, "dense limit", "#555555"});
  b.rotate_labels = true;
  expect_svg(render(b, out("bars")));
  const std::string text = slurp(dir_ / "bars.svg");
  EXPECT_NE(text.find("reference"), std::string::npos);
  EXPECT_NE(text.find("M lowrank d0.5"), std::string::npos) << "category labels are drawn";
}

TEST_F(PlotTest, BadNamesAndShapesAreRejected) {
  LinePlot p;
  p.series.push_back({"a", method_style("a"), {0, 1}, {1, 2}, {}, {}});
  EXPECT_THROW(render(p, out("../escape")), std::invalid_argument);
  EXPECT_THROW(render(p, out("")), std::invalid_argument);
  p.series[0].y = {1};
  EXPECT_THROW(render(p, out("short")), std::invalid_argument);
}

// A gnuplot that fails: the message says which script and quotes what the program said.
TEST_F(PlotTest, FailingGnuplotNamesTheScript) {
  LinePlot p;
  p.series.push_back({"a", method_style("a"), {0, 1}, {1, 2}, {}, {}});
  Output o = out("fails");
  o.program = find_program("false");
  ASSERT_FALSE(o.program.empty());
  try {
    render(p, o);
    ADD_FAILURE() << "a failing gnuplot must throw";
  } catch (const PlotError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fails.gp"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exit status 1"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir_ / "fails.svg"));
}

}  // namespace
}  // namespace moebench::plot
