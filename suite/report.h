// Comparison tables over the stored runs (`moebench table`, `moebench runs`); torch-free.
// Spec: shared/DESIGN.md "Configs and the store" (mean ± std, baseline delta, published).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/store.h"

namespace moebench::report {

// Every user-facing failure of the reports (no database, no runs, a bad column name); the
// message says what to do next.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr const char* kDefaultDb = "results/moebench.sqlite";
inline constexpr const char* kCreateRunsHint = "moebench train --config micro";

// Opens an existing results database. Unlike Store's constructor it never creates one: a
// mistyped --db must not leave an empty database behind and report "no runs".
std::unique_ptr<Store> open_results(const std::string& path);

// --- per-run figures ----------------------------------------------------------------------------

// The numbers one run contributes to a table row; NaN where the run has none.
struct RunSummary {
  RunRow run;
  double val_loss = 0;      // value of the last evals row task='val', metric='loss', theta NULL
  int64_t val_step = -1;    // its step; -1 = no such row
  double tokens_per_s = 0;  // mean over the last third (at least one) of the logged steps
  double density = 0;       // last logged step
  double lambda = 0;        // last logged step
  // Balance at the last step with layer summaries: the layer = -1 row (average over layers),
  // else the mean of the per-layer rows.
  double cv = 0;
  double maxvio = 0;
  double entropy = 0;
};

// All runs, in the store's order (created_at, run_key).
std::vector<RunSummary> summarize_runs(Store& store);

// --- the table structure ----------------------------------------------------------------------

// One column as shown (term, md) and as exported (csv, possibly several fields: a mean and
// its std are two csv fields so that the csv stays machine-readable).
struct Column {
  std::string name;                    // "val loss"
  std::vector<std::string> csv_names;  // {"val_loss_mean", "val_loss_std"}
  bool numeric = false;                // right-aligned in term and md
};

struct Cell {
  std::string text;              // "3.100 ± 0.141"; "-" = no value
  std::vector<std::string> csv;  // one per csv field of the column, full precision; "" = none
};

struct Table {
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> footnotes;  // shown under the table (term, md); stderr for csv
};

// --- `moebench table` ---------------------------------------------------------------------------

struct TableOptions {
  // Runs columns (method, size, seed, status, device, backend, git_commit, dirty,
  // torch_version) or config keys ("moe.theta", see config_keys()).
  std::vector<std::string> group_by = {"method", "size"};
  std::string baseline = "topk";  // the method the delta column compares against
  bool all = false;               // include runs that are not 'done' (their rows are marked)
  bool published = false;         // add the published numbers (shared/spec/PAPER_RESULTS.md)
};

// One row per group of runs (sorted by the group columns: the baseline method first, sizes
// tiny < micro < S < M < L), then the columns runs, status, val loss (mean ± sample std over
// the runs), Δ vs <baseline>, ppl, tok/s, density, λ, CV, MaxVio, entropy, wall.
//  - Perplexity is exp(mean val loss) (the geometric mean of the runs' perplexities), so that
//    it always agrees with the loss column beside it.
//  - Δ = mean val loss of the group - that of the group with method = baseline and the same
//    other group values; without such a group the cell is "-" and a footnote says so.
//  - The other figures are plain means over the group's runs of each run's RunSummary value.
//  - Published rows (status "published") carry only a perplexity and Δ = ln(ppl / ppl of the
//    published baseline), the loss delta if ppl = exp(loss); they never enter our means.
// Throws ReportError when the store has no runs, no runs pass the status filter, or a group
// column is unknown.
Table comparison_table(Store& store, const TableOptions& options = {});

// `moebench runs`: one row per stored run (run_key, method, size, seed, status, step, wall,
// val loss). Throws ReportError when the store has no runs.
Table runs_table(Store& store);

// --- rendering ----------------------------------------------------------------------------------

enum class Format { kTerm, kMarkdown, kCsv };
Format parse_format(const std::string& text);  // "term" | "md" | "csv"; throws ReportError

// term: aligned columns (widths in code points, so "±" and "λ" count as one); md: a GitHub
// table with a |---| separator row; both end with the footnotes. csv: RFC 4180, one header
// line of csv_names, footnotes left out (the command prints them on stderr).
std::string render(const Table& table, Format format);

// The published rows, for tests and documentation: (method, size, perplexity).
struct PublishedResult {
  std::string method;
  std::string size;
  double ppl;
};
const std::vector<PublishedResult>& published_results();

}  // namespace moebench::report
