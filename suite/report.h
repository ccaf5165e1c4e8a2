// Comparison tables over the stored runs (`moebench table`, `moebench runs`); torch-free.
// Spec: shared/DESIGN.md "Configs and the store" (mean ± std, baseline delta, published).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/store.h"
#include "suite/table.h"

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
// mistyped --db must not leave an empty database behind and report "no runs". The reports
// (`moebench table`, `moebench runs`) pass kReadOnly, so they work on read-only files and
// folders and never write a schema into a stray file; callers that store rows (`moebench
// eval`) keep the default. Store's errors (not a moebench database, a newer schema) come as
// ReportError.
std::unique_ptr<Store> open_results(const std::string& path,
                                    Store::Mode mode = Store::Mode::kReadWrite);

// --- rendering (suite/table.h) ----------------------------------------------------------------

// The tables are moebench::Table; these names keep report:: callers compiling.
using moebench::Cell;
using moebench::Column;
using moebench::Format;
using moebench::render;
using moebench::Table;

// parse_format of suite/table.h, failing as a ReportError like every other bad report input.
Format parse_format(const std::string& text);

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

// A method's name as every table shows it: marked ‡ when the method's file states a caveat
// (Self-Routing: our reading of the abstract), whose footnote is added to `notes` once.
std::string method_label(const std::string& method, std::vector<std::string>& notes);

// The published rows, for tests and documentation: (method, size, perplexity).
struct PublishedResult {
  std::string method;
  std::string size;
  double ppl;
};
const std::vector<PublishedResult>& published_results();

}  // namespace moebench::report
