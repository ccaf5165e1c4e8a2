// Moving runs between results stores: `moebench merge` (the databases of cluster jobs into one),
// `moebench export` (a compact, text, git-friendly folder of CSV files) and `moebench import`
// (such a folder back into a database). Torch-free.
//
// One merge rule serves all three. Runs are keyed by run key, and each source run meets the
// target in one transaction, so a failure never leaves part of a run behind:
//  - absent in the target: copied whole (the row as it is, with all its steps, layer_stats and
//    evals rows);
//  - the same in both (config_json, status and every row): nothing to do, so merging twice
//    changes nothing;
//  - unfinished in the target (running, interrupted, failed) and finished in the source (done,
//    diverged): replaced by the source's run ("updated"), unless a live trainer holds the
//    target's lease;
//  - finished in the target and unfinished in the source: the source holds an older state of
//    the run, the target's is kept ("superseded"; the mirror image of "updated", so the order
//    in which job databases are merged does not matter);
//  - any other difference: a conflict, reported with what differs; the target is left as it is.
// Leases are never copied. kernel_bench and env rows are appended when the target lacks them
// (all columns compared); an env row with the same key and time but another value is a conflict.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "suite/store.h"

namespace moebench {

// Every user-facing failure of export and import (a missing or damaged file, a bad manifest,
// an unknown run key); the message names the file and says what to do.
class ExchangeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a merge (or an import) did, summed over runs.
struct MergeReport {
  int copied = 0;      // absent in the target: copied whole
  int updated = 0;     // unfinished in the target, finished in the source: replaced
  int identical = 0;   // the same in both: nothing to do
  int superseded = 0;  // finished in the target, unfinished in the source: the target's kept
  int kernel_bench_added = 0;
  int env_added = 0;
  // One line each: "run KEY (method M, size S, seed N): what differs; kept the target's copy",
  // or the env row that differs. The target holds what it held before.
  std::vector<std::string> conflicts;

  MergeReport& operator+=(const MergeReport& other);
  // "3 copied, 1 updated, 5 identical, 0 superseded, 1 conflict; kernel_bench +4 rows, env +2
  // rows"
  std::string summary() const;
};

// Merges every run, kernel_bench and env row of `source` into `target` by the rule above.
// Throws std::runtime_error when the target is read-only or a write fails (runs merged before
// the failure stay: rerunning the same merge finishes the job).
MergeReport merge_store(Store& source, Store& target);

// --- export / import ----------------------------------------------------------------------------

// The export folder's files. The four run tables are always written; kernel_bench.csv and env.csv
// only when the store has such rows.
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kRunsFile = "runs.csv";
inline constexpr const char* kStepsFile = "steps.csv";
inline constexpr const char* kEvalsFile = "evals.csv";
inline constexpr const char* kLayerStatsFile = "layer_stats.csv";
inline constexpr const char* kKernelBenchFile = "kernel_bench.csv";
inline constexpr const char* kEnvFile = "env.csv";
// manifest.json's "format" and "format_version"; a newer version is refused on import.
inline constexpr const char* kExportFormat = "moebench-export";
inline constexpr int kExportFormatVersion = 1;

struct ExportOptions {
  std::vector<std::string> run_keys;  // empty = every run; an unknown key is an error
  std::vector<RunStatus> statuses;    // empty = any status
};

// What an export wrote: rows per file name (manifest.json aside).
struct ExportSummary {
  std::map<std::string, int64_t> rows;
  int64_t runs() const;
};

// Writes the export of `source` into `dir` (created if missing): one CSV file per table (RFC 4180
// quoting, "\n" line ends, a header row; doubles in their shortest exact spelling, nan / inf /
// -inf spelled out, an empty field for a missing theta) and manifest.json with the format and
// schema versions, the selection, and the row count and SHA-256 of each file. The same store
// gives the same bytes. Each file is written beside its final name and renamed into place, the
// manifest last; a stale kernel_bench.csv or env.csv from an earlier export is removed.
// Throws ExchangeError for an unknown run key or a file that cannot be written.
ExportSummary export_store(Store& source, const std::filesystem::path& dir,
                           const ExportOptions& options = {});

// An export folder read back and checked, before anything is written anywhere.
struct ExportContents {
  std::vector<RunRecord> runs;
  std::vector<KernelBenchRow> kernel_bench;
  std::vector<EnvRow> env;
};

// Reads and checks an export folder: the manifest (format, versions, the files it lists), each
// file's presence, SHA-256 and row count, the CSV headers and values, and that every row
// belongs to a run of runs.csv and no key repeats. Throws ExchangeError naming the file (and
// line) and what to do.
ExportContents read_export(const std::filesystem::path& dir);

// Merges contents (read_export) into the target by the rule above.
MergeReport merge_contents(const ExportContents& contents, Store& target);

// read_export, then merge_contents: a damaged export is refused before any row is written.
MergeReport import_export(const std::filesystem::path& dir, Store& target);

// --- the pieces, for tests ----------------------------------------------------------------------

namespace exchange_detail {

// The field as RFC 4180 writes it: quoted (embedded quotes doubled) when it holds a comma, a
// quote or a line break, else as it is.
std::string csv_field(const std::string& text);

struct CsvRecord {
  int64_t line = 0;  // the line the record starts on (1-based), for error messages
  std::vector<std::string> fields;
};
// Parses RFC 4180 text ("\n" or "\r\n" line ends, line breaks allowed inside quotes, blank lines
// skipped). Throws ExchangeError naming `source` and the line of a malformed record.
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source);

// The shortest spelling that reads back to the same double ("0.1", "1e-300"); "nan", "inf",
// "-inf" for the others. parse_number reads it back (and throws std::invalid_argument for
// anything else).
std::string format_number(double value);
double parse_number(const std::string& text);

}  // namespace exchange_detail

}  // namespace moebench
