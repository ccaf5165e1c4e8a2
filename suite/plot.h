// A small gnuplot driver for the HTML report (`moebench report`): each figure is written as
// plain data files and a gnuplot script under DIR/plot-data/, then rendered by running the
// `gnuplot` program into DIR/NAME.svg. Keeping the script and data beside the image means a
// reader can rerun or restyle any figure (`cd DIR && gnuplot plot-data/NAME.gp`) without this
// code. Torch-free.
//
// Colours come from the Okabe–Ito palette (Okabe & Ito 2008), which stays distinguishable for
// the common forms of colour blindness; each method name keeps one colour and one marker across
// every figure. The heat-map uses a viridis-like sequential scale for the same reason.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace moebench::plot {

// A figure that could not be rendered: gnuplot missing (the message names the program and
// scripts/setup.sh), gnuplot failing (the message quotes its error and names the script), or a
// file that could not be written (the message names the path).
class PlotError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The eight Okabe–Ito colours as "#rrggbb", black first.
const std::vector<std::string>& okabe_ito();

// How one method is drawn in every figure: a colour and a gnuplot point type (open markers, so
// that lines stay apart in greyscale and for readers who cannot tell two colours apart).
struct Style {
  std::string color;  // "#rrggbb"
  int point = 6;      // gnuplot pointtype
};
// The methods of this suite have fixed styles (Routing-Free, the method under study, in
// vermillion); any other name gets a style picked by a stable hash of the name, so it too keeps
// its look across figures and runs of the report.
Style method_style(const std::string& method);

struct Axis {
  std::string label;  // with its unit: "step", "validation loss (nats/token)"
  bool log = false;   // logarithmic; values <= 0 are left out of a log axis
  double min = 0;     // range; min >= max (the default) lets gnuplot choose
  double max = 0;
};

// A horizontal (y = value) or vertical (x = value) dashed reference line with a short label.
struct RefLine {
  bool vertical = false;
  double value = 0;
  std::string label;  // "ρ* = 0.25"
  std::string color = "#555555";
};

// One curve; x and y have the same length. With band_low/band_high (same length again) a shaded
// band is drawn under the line in the same colour (mean ± std over seeds). NaN points are
// skipped, as are band points whose bounds are NaN.
struct Series {
  std::string label;  // legend entry
  Style style;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<double> band_low;
  std::vector<double> band_high;
};

struct LinePlot {
  std::string title;  // above the plot; "" = none
  Axis x;
  Axis y;
  std::vector<Series> series;
  std::vector<RefLine> refs;
  bool every_point_marked = false;  // a marker at every point (sparse sweeps), else a few
};

// A matrix drawn as coloured cells: values[row][col], row r at y = r and column c at x = c (a
// layer × expert load map). Cells are labelled with their value while they are few enough to
// read. NaN cells are left blank.
struct HeatMap {
  std::string title;
  Axis x;                   // columns (min/max ignored: the matrix fixes the range)
  Axis y;                   // rows
  std::string value_label;  // colour bar label with unit
  std::vector<std::vector<double>> values;
  double min = 0;  // colour range; min >= max = from the data
  double max = 0;
};

// Clustered bars: one cluster per category, one bar per series within it.
struct BarSeries {
  std::string label;
  Style style;
  std::vector<double> values;  // one per category; NaN = no bar
};

struct BarChart {
  std::string title;
  std::string x_label;
  std::vector<std::string> categories;  // '\n' breaks a label into lines
  Axis y;
  std::vector<BarSeries> series;
  std::vector<RefLine> refs;   // horizontal ones only
  bool rotate_labels = false;  // category labels at 45 degrees (long or many categories)
};

// Where and how a figure is rendered.
struct Output {
  std::filesystem::path dir;  // the report folder: DIR/NAME.svg and DIR/plot-data/NAME.*
  std::string name;           // file stem: letters, digits, '_', '-' and '.' only
  int width = 640;            // SVG size in pixels
  int height = 400;
  std::string program = "gnuplot";  // a name looked up on PATH, or a path
};

// The full path of `program` (a name looked up on PATH, or a path with '/'), or "" when it is
// not an executable file.
std::string find_program(const std::string& program);

// Each writes the data files and the script, runs gnuplot (working folder out.dir) and returns
// the SVG's path (out.dir / (out.name + ".svg")). Throws PlotError; a figure with no data at all
// (no series, no points, an empty matrix) is the caller's mistake and throws std::invalid_argument.
std::filesystem::path render(const LinePlot& plot, const Output& out);
std::filesystem::path render(const HeatMap& plot, const Output& out);
std::filesystem::path render(const BarChart& plot, const Output& out);

}  // namespace moebench::plot
