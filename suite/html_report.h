// The static HTML report of a results database (`moebench report --db DB --out DIR`): DIR/
// index.html with the SVG figures beside it (suite/plot.h) and the tables the caller passes in.
// The page is self-contained: inline CSS, no scripts, images by relative path, so it opens
// offline and the folder can be committed, copied or served as it is. Torch-free.
//
// Figures, each with a caption that says what it shows and its units, or a short note where the
// database has nothing to draw. A line (and band) is one method in one setup: runs of a method
// whose configs differ apart from the seed, in the keys `moebench verdict` pairs runs by
// (verdict::setup_keys) or in the method's options, are drawn apart, each labelled with the keys
// that tell them apart ("routing_free (model.init=normal; 3 seeds)"); a method with one setup
// keeps its plain name.
//  - validation and training loss over steps per method (mean over seeds, band ± 1 sample std);
//  - density and λ over steps of the methods with a balance controller (Routing-Free, ReMoE),
//    with each run's target density ρ* (config moe.rho_target) as a dashed line;
//  - the θ sweep (Routing-Free's inference-time threshold): density and val loss against θ;
//  - active experts per token per method (mean, median, 99th percentile, max; last eval);
//  - per-layer × per-expert load heat-maps of chosen runs, at their first and last eval;
//  - kernel benchmark ratios per shape and backend: to the equal-FLOP dense chain and to the
//    naive per-expert loop.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/store.h"
#include "suite/table.h"

namespace moebench::html {

// A report that cannot be made: nothing in the database to show, a --runs key that matches no
// run (or several), a folder that cannot be written. The message says what to do next.
// plot::PlotError (gnuplot missing or failing) passes through unchanged.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ReportOptions {
  std::filesystem::path out_dir;  // created if missing; index.html, *.svg, plot-data/
  std::string title = "moebench report";
  std::string db_label;  // how the page names the database ("results/moebench.sqlite")
  std::string size;      // only runs of this size ("micro"); "" = every size, a section each
  bool all = false;      // include runs that are not 'done' (running, interrupted, ...)
  // Runs whose load heat-maps are drawn: run keys or unique prefixes of them. Empty = the
  // lowest-seed run of each (method, size, setup) group.
  std::vector<std::string> heatmap_runs;
  // Tables made by the caller (suite/report.h needs the method registry, which this torch-free
  // code cannot link): the comparison table with the published numbers, and the claims table
  // (suite/verdict.h). A table without columns shows a note instead.
  Table comparison;
  Table claims;
  std::string gnuplot = "gnuplot";  // program name or path (plot::Output::program)
};

struct ReportResult {
  std::filesystem::path index;      // out_dir / "index.html"
  std::vector<std::string> images;  // file names relative to out_dir, in page order
  std::vector<std::string> notes;   // figures left out and why ("no θ-sweep rows ...")
  int runs = 0;                     // runs shown
};

// Reads the store (runs, steps, evals, layer stats, kernel benchmarks), renders the figures and
// writes index.html. Files of an earlier report in out_dir are overwritten, not deleted. Throws
// ReportError when no run matches (and there are no kernel benchmarks either), plot::PlotError
// when gnuplot is missing or fails.
ReportResult write_report(Store& store, const ReportOptions& options);

// The config keys ("model.init") in which runs of one method and size differ between setups, in
// name order: the keys by which the figures tell a method's setups apart (verdict::setup_keys
// with the method's options); empty when every method has one setup at each size. Grouping by
// method, size and these keys splits the runs exactly into (method, size, setup) groups:
// `moebench report` adds them to the comparison table's group-by columns so that its rows
// split as the figures' bands do.
std::vector<std::string> setup_columns(const std::vector<RunRow>& runs);

// Text for HTML element content and attribute values: & < > " ' escaped.
std::string escape(const std::string& text);

// A Table as an HTML <table>: title as its <caption>, numeric columns right-aligned, footnotes
// in a list below it; every text escaped. `id` names the table element ("" = none).
std::string table_html(const Table& table, const std::string& id = "");

}  // namespace moebench::html
