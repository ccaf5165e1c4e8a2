// gnuplot driver: data files and a script per figure, rendered by the gnuplot program.
// See plot.h for the layout of the output folder and the palette.
#include "suite/plot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <system_error>

namespace moebench::plot {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDataFolder = "plot-data";
constexpr const char* kFont = "sans-serif,12";
constexpr const char* kGrid = "#e3e3e3";
constexpr const char* kInk = "#333333";

// --- text ----------------------------------------------------------------------------------------

// A gnuplot single-quoted string: no backslash escapes inside, a quote is doubled. Line breaks
// would end the command, so they become spaces.
std::string quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Enough digits that a plotted value reads back as what the report computed.
std::string number(double x) {
  if (std::isnan(x)) return "NaN";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.10g", x);
  return buf;
}

// A category label as a tab-separated field: no tab, and a line break as the two characters
// \n, which gnuplot turns back into a line break when it draws the label.
std::string field(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c == '\t' || c == '\r' || c == '\\' ? ' ' : c;
    }
  }
  return out;
}

void check_name(const std::string& name) {
  const bool ok =
      !name.empty() && name[0] != '.' && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
  if (!ok) {
    throw std::invalid_argument("plot name '" + name +
                                "' must be letters, digits, '_', '-' or '.' (a file stem)");
  }
}

// --- files ---------------------------------------------------------------------------------------

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw PlotError("cannot write '" + path.string() + "': " + std::strerror(errno));
  }
}

// The script's relative path to a data file (gnuplot runs in the report folder).
std::string data_ref(const std::string& name, const std::string& suffix) {
  return std::string(kDataFolder) + "/" + name + suffix;
}

// --- running gnuplot -------------------------------------------------------------------------

std::string last_chars(const std::string& text, size_t n) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t.size() > n ? "..." + t.substr(t.size() - n) : t;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `program script` in `dir` with stdin from /dev/null and stdout+stderr into `log`; returns
// the exit status (128 + signal when killed). Everything the child needs is prepared before
// fork(), so the child only makes system calls.
int run_in(const std::string& program, const std::string& script, const fs::path& dir,
           const fs::path& log) {
  const std::string dir_s = dir.string(), log_s = log.string();
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(script.c_str()),
                             nullptr};
  const pid_t pid = fork();
  if (pid < 0) throw PlotError(std::string("cannot start gnuplot: fork: ") + std::strerror(errno));
  if (pid == 0) {
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(log_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || chdir(dir_s.c_str()) != 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw PlotError(std::string("waitpid: ") + std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Writes the script and renders it; returns the SVG path.
fs::path run_script(const Output& out, const std::string& body) {
  const std::string path = find_program(out.program);
  if (path.empty()) {
    throw PlotError("the report's figures need gnuplot, and '" + out.program +
                    "' was not found on PATH: install it with `bash scripts/setup.sh` (Debian "
                    "package gnuplot-nox)");
  }
  fs::path svg = out.dir / (out.name + ".svg");
  const std::string script_ref = data_ref(out.name, ".gp");
  std::string script;
  script += "# " + out.name + ".svg, written by `moebench report` (suite/plot.cpp).\n";
  script += "# Rerun from the report folder: gnuplot " + script_ref + "\n";
  script += "set encoding utf8\n";
  // noenhanced: method names such as routing_free would otherwise turn '_' into a subscript.
  script += "set terminal svg size " + std::to_string(out.width) + "," +
            std::to_string(out.height) + " font " + quote(kFont) +
            " noenhanced background '#ffffff'\n";
  script += "set output " + quote(out.name + ".svg") + "\n";
  script += "set datafile separator tab\n";
  script += body;
  script += "unset output\n";
  write_file(out.dir / script_ref, script);

  std::error_code ec;
  fs::remove(svg, ec);
  const fs::path log = out.dir / data_ref(out.name, ".log");
  const int status = run_in(path, script_ref, out.dir, log);
  const std::string messages = read_text(log);
  if (status != 0 || !fs::is_regular_file(svg) || fs::file_size(svg, ec) == 0) {
    throw PlotError("gnuplot (" + path + ") failed on " + (out.dir / script_ref).string() +
                    " (exit status " + std::to_string(status) +
                    "): " + (messages.empty() ? "no output" : last_chars(messages, 600)));
  }
  // A clean run leaves nothing to read; the log stays only when gnuplot had something to say.
  if (messages.empty()) fs::remove(log, ec);
  return svg;
}

fs::path prepare(const Output& out) {
  check_name(out.name);
  std::error_code ec;
  fs::create_directories(out.dir / kDataFolder, ec);
  if (ec) {
    throw PlotError("cannot create '" + (out.dir / kDataFolder).string() + "': " + ec.message());
  }
  return out.dir / kDataFolder;
}

// --- shared settings ---------------------------------------------------------------------------

std::string frame(const std::string& title) {
  std::string s;
  s += "set border 3 lc rgb " + quote(kInk) + "\n";
  s += "set tics nomirror textcolor rgb " + quote(kInk) + "\n";
  if (!title.empty()) s += "set title " + quote(title) + "\n";
  return s;
}

std::string axis_settings(const Axis& axis, const char* name) {
  std::string s;
  const std::string n = name;
  if (!axis.label.empty()) s += "set " + n + "label " + quote(axis.label) + "\n";
  if (axis.log) {
    s += "set logscale " + n + " 10\n";
    // Powers of ten as 1e-05: noenhanced text cannot draw superscripts.
    s += "set format " + n + " '%.0e'\n";
  }
  if (axis.min < axis.max) {
    s += "set " + n + "range [" + number(axis.min) + ":" + number(axis.max) + "]\n";
  }
  return s;
}

bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }

std::string style_of(const Style& st) { return "lc rgb " + quote(st.color); }

}  // namespace

// --- palette ---------------------------------------------------------------------------------

const std::vector<std::string>& okabe_ito() {
  static const std::vector<std::string> colors = {"#000000", "#E69F00", "#56B4E9", "#009E73",
                                                  "#F0E442", "#0072B2", "#D55E00", "#CC79A7"};
  return colors;
}

Style method_style(const std::string& method) {
  // Presentation only: these names pick a look, never behaviour. Yellow (#F0E442) is left out
  // of the fixed choices because thin yellow lines are hard to see on white.
  static const std::map<std::string, Style> fixed = {
      {"routing_free", {"#D55E00", 7}},   // the method under study: vermillion, filled circle
      {"topk", {"#0072B2", 4}},           // blue, open square
      {"switch", {"#56B4E9", 8}},         // sky blue, open triangle
      {"remoe", {"#009E73", 6}},          // bluish green, open circle
      {"aoe", {"#E69F00", 10}},           // orange, open inverted triangle
      {"self_routing", {"#CC79A7", 12}},  // reddish purple, open diamond
      {"dense", {"#000000", 2}},          // black, cross
  };
  const auto it = fixed.find(method);
  if (it != fixed.end()) return it->second;
  // std::hash is not stable across library versions; this small FNV-1a hash is.
  uint32_t h = 2166136261u;
  for (unsigned char c : method) h = (h ^ c) * 16777619u;
  const auto& colors = okabe_ito();
  static const int points[] = {1, 3, 5, 9, 11, 13};
  return {colors[h % colors.size()], points[(h / 8) % 6]};
}

// --- programs --------------------------------------------------------------------------------

std::string find_program(const std::string& program) {
  auto executable = [](const std::string& p) {
    struct stat st {};
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
  };
  if (program.empty()) return "";
  if (program.find('/') != std::string::npos) {
    return executable(program) ? fs::absolute(program).string() : "";
  }
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    const size_t colon = std::min(path.find(':', start), path.size());
    std::string dir = path.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir;
    candidate += '/';
    candidate += program;
    if (executable(candidate)) return fs::absolute(candidate).string();
    start = colon + 1;
  }
  return "";
}

// --- line plots ------------------------------------------------------------------------------

fs::path render(const LinePlot& plot, const Output& out) {
  const fs::path data_dir = prepare(out);
  struct Drawn {
    const Series* series;
    std::string file;
    size_t points = 0;
    bool band = false;
  };
  std::vector<Drawn> drawn;
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const Series& s = plot.series[i];
    if (s.x.size() != s.y.size()) {
      throw std::invalid_argument("series '" + s.label + "': x and y differ in length");
    }
    const bool has_band = !s.band_low.empty() || !s.band_high.empty();
    if (has_band && (s.band_low.size() != s.x.size() || s.band_high.size() != s.x.size())) {
      throw std::invalid_argument("series '" + s.label + "': band and x differ in length");
    }
    Drawn d{&s, "." + std::to_string(i) + ".tsv"};
    std::string text = "# x\ty\tband_low\tband_high\n";
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!usable(s.x[k], plot.x.log) || !usable(s.y[k], plot.y.log)) continue;
      double lo = s.y[k], hi = s.y[k];
      if (has_band && usable(s.band_low[k], plot.y.log) && usable(s.band_high[k], plot.y.log)) {
        lo = s.band_low[k], hi = s.band_high[k];
      }
      d.band = d.band || lo != hi;
      text += number(s.x[k]) + "\t" + number(s.y[k]) + "\t" + number(lo) + "\t" + number(hi) + "\n";
      ++d.points;
      x_lo = std::min(x_lo, s.x[k]), x_hi = std::max(x_hi, s.x[k]);
      y_lo = std::min(y_lo, lo), y_hi = std::max(y_hi, hi);
    }
    if (d.points == 0) continue;
    write_file(data_dir / (out.name + d.file), text);
    drawn.push_back(d);
  }
  if (drawn.empty()) {
    throw std::invalid_argument("line plot '" + out.name + "' has no points to draw");
  }

  std::string body = frame(plot.title) + axis_settings(plot.x, "x") + axis_settings(plot.y, "y");
  body += "set grid lc rgb " + quote(kGrid) + "\n";
  body += "set key outside below horizontal center Left reverse samplen 2.5 spacing 1.1\n";
  body += "set pointsize 0.8\n";
  // A margin above and below the data, so that a curve or a reference line at the edge of the
  // range does not vanish into the border.
  body += "set offsets graph 0, graph 0, graph 0.05, graph 0.05\n";
  std::vector<std::string> parts;
  // Bands first, so that every line is drawn above every band.
  for (const Drawn& d : drawn) {
    if (!d.band) continue;
    parts.push_back(quote(data_ref(out.name, d.file)) + " using 1:3:4 with filledcurves fc rgb " +
                    quote(d.series->style.color) + " fs transparent solid 0.2 noborder notitle");
  }
  for (const Drawn& d : drawn) {
    const size_t every = plot.every_point_marked ? 1 : std::max<size_t>(1, (d.points + 7) / 8);
    parts.push_back(quote(data_ref(out.name, d.file)) + " using 1:2 with linespoints " +
                    style_of(d.series->style) + " lw 2 pt " +
                    std::to_string(d.series->style.point) + " pi " + std::to_string(every) +
                    " title " + quote(d.series->label));
  }
  // Reference lines are two-point series across the data, so autoscaling keeps them in view
  // and the legend names them.
  for (size_t i = 0; i < plot.refs.size(); ++i) {
    const RefLine& r = plot.refs[i];
    if (!usable(r.value, r.vertical ? plot.x.log : plot.y.log)) continue;
    const std::string file = ".ref" + std::to_string(i) + ".tsv";
    std::string text = "# reference line\n";
    if (r.vertical) {
      text += number(r.value) + "\t" + number(y_lo) + "\n" + number(r.value) + "\t" + number(y_hi) +
              "\n";
    } else {
      text += number(x_lo) + "\t" + number(r.value) + "\n" + number(x_hi) + "\t" + number(r.value) +
              "\n";
    }
    write_file(data_dir / (out.name + file), text);
    parts.push_back(quote(data_ref(out.name, file)) + " using 1:2 with lines dt 2 lw 1.5 lc rgb " +
                    quote(r.color) + " title " + quote(r.label));
  }
  body += "plot ";
  for (size_t i = 0; i < parts.size(); ++i) body += (i ? ", \\\n     " : "") + parts[i];
  body += "\n";
  return run_script(out, body);
}

// --- heat-maps -------------------------------------------------------------------------------

fs::path render(const HeatMap& plot, const Output& out) {
  const fs::path data_dir = prepare(out);
  const size_t rows = plot.values.size();
  const size_t cols = rows ? plot.values[0].size() : 0;
  if (rows == 0 || cols == 0) {
    throw std::invalid_argument("heat-map '" + out.name + "' has no cells");
  }
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  std::string text;
  for (const auto& row : plot.values) {
    if (row.size() != cols) {
      throw std::invalid_argument("heat-map '" + out.name + "': rows differ in length");
    }
    for (size_t c = 0; c < cols; ++c) {
      if (std::isfinite(row[c])) lo = std::min(lo, row[c]), hi = std::max(hi, row[c]);
      text += (c ? "\t" : "") + number(row[c]);
    }
    text += "\n";
  }
  if (!std::isfinite(lo)) {
    throw std::invalid_argument("heat-map '" + out.name + "' has no finite cells");
  }
  if (plot.min < plot.max) lo = plot.min, hi = plot.max;
  if (lo == hi) hi = lo + 1;  // one colour for all cells still needs a range
  const std::string file = ".matrix.tsv";
  write_file(data_dir / (out.name + file), text);

  std::string body = frame(plot.title);
  if (!plot.x.label.empty()) body += "set xlabel " + quote(plot.x.label) + "\n";
  if (!plot.y.label.empty()) body += "set ylabel " + quote(plot.y.label) + "\n";
  body += "set xrange [-0.5:" + number(cols - 0.5) + "]\n";
  body += "set yrange [-0.5:" + number(rows - 0.5) + "]\n";
  // A tic per cell while they fit; gnuplot chooses beyond that.
  if (cols <= 32) body += "set xtics 1 out\n";
  if (rows <= 32) body += "set ytics 1 out\n";
  body += "set border 15 lc rgb " + quote(kInk) + "\n";
  body += "set key off\n";
  // viridis, sampled: sequential, perceptually even and readable with colour-vision deficiency.
  body +=
      "set palette defined (0 '#440154', 1 '#46327e', 2 '#365c8d', 3 '#277f8e', 4 '#1fa187', "
      "5 '#4ac16d', 6 '#a0da39', 7 '#fde725')\n";
  body += "set cbrange [" + number(lo) + ":" + number(hi) + "]\n";
  if (!plot.value_label.empty()) body += "set cblabel " + quote(plot.value_label) + "\n";
  body += "set datafile missing 'NaN'\n";
  const std::string ref = quote(data_ref(out.name, file));
  // `pixels` draws each cell as its own rectangle, which also works for a single row or column.
  body += "plot " + ref + " matrix with image pixels notitle";
  if (rows <= 16 && cols <= 16) {
    // The value in each cell: dark text on the light end of the scale, white on the dark end.
    const double mid = (lo + hi) / 2;
    body += ", \\\n     " + ref + " matrix using 1:2:(sprintf('%.2f', $3)):($3 > " + number(mid) +
            " ? 0 : 16777215) with labels tc rgb variable font ',10' notitle";
  }
  body += "\n";
  return run_script(out, body);
}

// --- bar charts ------------------------------------------------------------------------------

fs::path render(const BarChart& plot, const Output& out) {
  const fs::path data_dir = prepare(out);
  if (plot.categories.empty() || plot.series.empty()) {
    throw std::invalid_argument("bar chart '" + out.name + "' has no bars");
  }
  double hi = 0;
  bool any = false;
  for (const BarSeries& s : plot.series) {
    if (s.values.size() != plot.categories.size()) {
      throw std::invalid_argument("bar series '" + s.label + "': one value per category needed");
    }
    for (double v : s.values) {
      if (usable(v, plot.y.log)) any = true, hi = std::max(hi, v);
    }
  }
  if (!any) throw std::invalid_argument("bar chart '" + out.name + "' has no bars");
  for (const RefLine& r : plot.refs) {
    if (!r.vertical && std::isfinite(r.value)) hi = std::max(hi, r.value);
  }
  std::string text = "# category";
  for (const BarSeries& s : plot.series) text += "\t" + field(s.label);
  text += "\n";
  for (size_t c = 0; c < plot.categories.size(); ++c) {
    text += field(plot.categories[c]);
    for (const BarSeries& s : plot.series) {
      text += "\t" + (usable(s.values[c], plot.y.log) ? number(s.values[c]) : std::string("NaN"));
    }
    text += "\n";
  }
  const std::string file = ".tsv";
  write_file(data_dir / (out.name + file), text);

  std::string body = frame(plot.title);
  // gnuplot sizes the bottom margin for one line of tic labels; an x label moved down by the
  // extra lines of multi-line labels makes room for them (and keeps the legend clear of them).
  size_t lines = 1;
  for (const auto& c : plot.categories) {
    lines = std::max<size_t>(lines, 1 + std::count(c.begin(), c.end(), '\n'));
  }
  if (!plot.x_label.empty() || lines > 1) {
    body += "set xlabel " + quote(plot.x_label.empty() ? " " : plot.x_label);
    if (lines > 1) body += " offset 0,-" + std::to_string(lines - 1);
    body += "\n";
  }
  body += axis_settings(plot.y, "y");
  // Bars grow from zero: an autoscaled linear axis would start at the smallest bar.
  if (!plot.y.log && !(plot.y.min < plot.y.max))
    body += "set yrange [0:" + number(hi * 1.08) + "]\n";
  body += "set grid ytics lc rgb " + quote(kGrid) + "\n";
  body += "set key outside below horizontal center Left reverse\n";
  body += "set style data histograms\n";
  body += "set style histogram clustered gap 1\n";
  body += "set style fill solid 0.85 border lc rgb " + quote(kInk) + "\n";
  body += "set datafile missing 'NaN'\n";
  if (plot.rotate_labels) body += "set xtics rotate by 40 right\n";
  body += "set xtics nomirror scale 0\n";
  for (const RefLine& r : plot.refs) {
    if (r.vertical || !std::isfinite(r.value)) continue;
    body += "set arrow from graph 0, first " + number(r.value) + " to graph 1, first " +
            number(r.value) + " nohead dt 2 lw 1.5 lc rgb " + quote(r.color) + " back\n";
  }
  // Cluster i is centred on x = i; without a range gnuplot leaves a cluster's width empty.
  body += "set xrange [-0.5:" + number(plot.categories.size() - 0.5) + "]\n";
  body += "plot ";
  const std::string ref = quote(data_ref(out.name, file));
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const BarSeries& s = plot.series[i];
    body += i ? ", \\\n     '' using " + std::to_string(i + 2) : ref + " using 2:xtic(1)";
    body += " " + style_of(s.style) + " title " + quote(s.label);
  }
  // A label beside a reference line would sit on the bars; the legend names it instead, through
  // an entry that draws nothing (NaN).
  for (const RefLine& r : plot.refs) {
    if (r.vertical || !std::isfinite(r.value)) continue;
    body += ", \\\n     NaN with lines dt 2 lw 1.5 lc rgb " + quote(r.color) + " title " +
            quote(r.label);
  }
  body += "\n";
  return run_script(out, body);
}

}  // namespace moebench::plot
