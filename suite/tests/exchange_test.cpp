// Tests of merge, export and import (suite/exchange.h): the CSV and number pieces, an
// export that reads back row for row and bit for bit, the merge rule (copied, identical,
// updated, superseded, conflict), leases never copied, and damaged exports refused before any
// row is written.
#include "suite/exchange.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/hashing.h"
#include "suite/store.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
using data::sha256_hex;
using exchange_detail::csv_field;
using exchange_detail::format_number;
using exchange_detail::parse_csv;
using exchange_detail::parse_number;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t bits(double x) {
  uint64_t b = 0;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The message of the ExchangeError fn throws ("" when it throws none).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ExchangeError& e) {
    return e.what();
  }
  return "";
}

class ExchangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("moebench_exchange_" + std::to_string(std::random_device{}()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string db(const std::string& name) const { return (dir_ / (name + ".sqlite")).string(); }

  static RunRow make_run(const std::string& key, const std::string& method, int64_t seed) {
    RunRow r;
    r.run_key = key;
    r.config_json = "{\"key\":\"" + key + "\",\"method\":\"" + method + "\"}";
    r.method = method;
    r.size = "micro";
    r.seed = seed;
    r.commit = "abc123";
    r.device = "cpu";
    r.backend = "cpu";
    return r;
  }

  // A run as the trainer leaves it: steps, layer summaries, a θ sweep row and the final val
  // loss. Equal arguments give equal rows (timestamps aside), as two copies of one run have.
  static void add_run(Store& store, const std::string& key, const std::string& method, int64_t seed,
                      RunStatus status, double val_loss, int64_t steps = 4) {
    store.begin_run(make_run(key, method, seed));
    std::vector<StepRow> rows;
    for (int64_t s = 1; s <= steps; ++s) {
      const double x = static_cast<double>(s);
      rows.push_back({s, 512 * s, 6 - x / 3, 5.9 - x / 3, 0.1 / x, kNaN, 0.25, 1e-3, 0.5 * x,
                      1000 + x, x / 7});
    }
    store.append_steps(key, rows);
    store.append_layer_stats(key, {{steps, 0, -1, "cv", 0.1}, {steps, 0, 2, "load", 1.0 / 3}});
    store.append_evals(key, {{"val", "loss", val_loss, 4096, kNaN, kNaN, kNaN, std::nullopt, steps},
                             {"imdb", "acc", 0.5, 200, 0.43, 0.57, 0.5, 1.2, steps}});
    if (status != RunStatus::kRunning) store.finish_run(key, status, steps, 12.5);
  }

  fs::path dir_;
};

// Every row of every table (leases aside) in a fixed order, for row-for-row comparisons.
std::vector<QueryResult> dump(Store& store) {
  constexpr const char* kKernelBenchSql =
      "SELECT name, shape, backend, dtype, metric, value, git_commit, device, created_at "
      "FROM kernel_bench ORDER BY created_at, rowid";
  std::vector<QueryResult> out;
  for (const char* sql :
       {"SELECT * FROM runs ORDER BY run_key", "SELECT * FROM steps ORDER BY run_key, step",
        "SELECT * FROM layer_stats ORDER BY run_key, step, layer, expert, metric",
        "SELECT * FROM evals ORDER BY run_key, step, task, metric, theta", kKernelBenchSql,
        "SELECT * FROM env ORDER BY key, recorded_at"}) {
    out.push_back(store.query(sql));
  }
  return out;
}

// Cell by cell; doubles by their bits.
void expect_same_rows(const std::vector<QueryResult>& a, const std::vector<QueryResult>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t t = 0; t < a.size(); ++t) {
    ASSERT_EQ(a[t].columns, b[t].columns);
    ASSERT_EQ(a[t].rows.size(), b[t].rows.size()) << "table " << t;
    for (size_t r = 0; r < a[t].rows.size(); ++r) {
      for (size_t c = 0; c < a[t].columns.size(); ++c) {
        const Value& x = a[t].rows[r][c];
        const Value& y = b[t].rows[r][c];
        ASSERT_EQ(x.index(), y.index()) << a[t].columns[c] << " row " << r;
        if (std::holds_alternative<double>(x)) {
          EXPECT_EQ(bits(std::get<double>(x)), bits(std::get<double>(y)))
              << a[t].columns[c] << " row " << r;
        } else {
          EXPECT_EQ(to_string(x), to_string(y)) << a[t].columns[c] << " row " << r;
        }
      }
    }
  }
}

int64_t count(Store& store, const std::string& table) {
  return std::get<int64_t>(store.query("SELECT count(*) FROM " + table).rows.at(0).at(0));
}

TEST_F(ExchangeTest, CsvFieldsAreQuotedOnlyWhenNeededAndParseBack) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");

  const std::vector<std::string> fields = {"plain",          "",         "a,b", "say \"hi\"",
                                           "two\nlines\r\n", " padded ", "λ"};
  std::string text;
  for (int row = 0; row < 2; ++row) {
    for (size_t i = 0; i < fields.size(); ++i) text += (i ? "," : "") + csv_field(fields[i]);
    text += row == 0 ? "\n" : "\r\n";  // either line end
  }
  text += "\nlast,\"\"\n\n";  // a blank line, an empty quoted field, a trailing blank line
  const auto records = parse_csv(text, "t.csv");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].fields, fields);
  EXPECT_EQ(records[1].fields, fields);
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].line, 4);  // the first record spans three lines
  EXPECT_EQ(records[2].line, 8);  // after the second record and a blank line
  EXPECT_EQ(records[2].fields, (std::vector<std::string>{"last", ""}));
  EXPECT_EQ(parse_csv("a,b", "t.csv").at(0).fields, (std::vector<std::string>{"a", "b"}));

  EXPECT_NE(error_of([] { parse_csv("a\n\"open,b\n", "t.csv"); }).find("t.csv line 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("\"x\"y,z\n", "t.csv"); }).find("after a closing quote"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("ab\"c\n", "t.csv"); }).find("unquoted field"),
            std::string::npos);
}

TEST_F(ExchangeTest, NumbersReadBackBitForBit) {
  for (const double x :
       {0.0, -0.0, 0.1, 1.0 / 3, -2.5, 1e-300, 5e-324, std::numeric_limits<double>::min(),
        std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(), 123456789.0,
        1e21, kInf, -kInf, 0.1 + 0.2}) {
    const std::string text = format_number(x);
    EXPECT_EQ(bits(parse_number(text)), bits(x)) << text;
  }
  EXPECT_EQ(format_number(0.1), "0.1");  // shortest, not 0.10000000000000001
  EXPECT_EQ(format_number(kInf), "inf");
  EXPECT_EQ(format_number(-kInf), "-inf");
  EXPECT_EQ(format_number(kNaN), "nan");
  EXPECT_EQ(format_number(-kNaN), "nan");
  EXPECT_TRUE(std::isnan(parse_number("nan")));
  for (const char* bad : {"", "1.5x", " 1", "abc", "1e999"}) {
    EXPECT_THROW(parse_number(bad), std::invalid_argument) << bad;
  }
}

TEST_F(ExchangeTest, ExportImportRoundTripIsRowForRow) {
  Store source(db("source"));
  // A run whose text needs every kind of quoting and whose numbers need every spelling.
  RunRow odd = make_run("odd", "routing_free", 7);
  odd.config_json = "{\n  \"note\": \"a, \\\"quoted\\\" value\",\r\n  \"x\": [1, 2]\n}";
  odd.notes = "line one\nline \"two\", with a comma";
  odd.dirty = true;
  source.begin_run(odd);
  source.append_steps("odd", {{1, 100, 0.1, 1.0 / 3, -0.0, kNaN, 5e-324, 1e-300,
                               std::numeric_limits<double>::max(), kInf, -kInf},
                              {2, 200, 0.1 + 0.2, 2.0 / 3, 1e21, 0.5, 0.25, 0.125, 1, 2, 3}});
  source.append_layer_stats("odd", {{2, 0, -1, "entropy λ", 0.7}, {2, 1, 3, "load", kNaN}});
  source.append_evals("odd", {{"val", "loss", 2.0 / 3, 10, kNaN, kNaN, kNaN, std::nullopt, 2},
                              {"val", "loss", 0.7, 10, kNaN, kNaN, kNaN, 1.2, 2},
                              {"cloze", "acc", 0.25, 40, 0.1, 0.4, 0.0, std::nullopt, 2}});
  source.finish_run("odd", RunStatus::kDiverged, 2, 3.25, 200);
  add_run(source, "plain", "topk", 1, RunStatus::kDone, 2.5);
  add_run(source, "open", "topk", 2, RunStatus::kRunning, 2.6);
  source.insert_kernel_bench({{"expert_block", "tokens:64", "cpu", "f32", "real_time_ms", 1.0 / 7,
                               "abc", "host/cpu", "2025-01-01T00:00:00.000Z"}});
  source.record_env({{"cpu", "Xeon, 2 cores"}, {"note", "has \"quotes\"\nand lines"}});

  const fs::path out = dir_ / "export";
  const ExportSummary summary = export_store(source, out);
  EXPECT_EQ(summary.runs(), 3);
  EXPECT_EQ(summary.rows.at(kStepsFile), 2 + 4 + 4);
  for (const char* name : {kManifestFile, kRunsFile, kStepsFile, kEvalsFile, kLayerStatsFile,
                           kKernelBenchFile, kEnvFile}) {
    EXPECT_TRUE(fs::is_regular_file(out / name)) << name;
  }
  const nlohmann::json manifest = nlohmann::json::parse(read_text(out / kManifestFile));
  EXPECT_EQ(manifest["format"], kExportFormat);
  EXPECT_EQ(manifest["schema_version"], Store::kSchemaVersion);
  EXPECT_EQ(manifest["files"][kRunsFile]["rows"], 3);
  EXPECT_EQ(manifest["files"][kStepsFile]["sha256"], sha256_hex(read_text(out / kStepsFile)));
  EXPECT_EQ(read_text(out / kStepsFile).substr(0, 14), "run_key,step,t");

  // The same store exports to the same bytes (what makes the folder git-friendly).
  const std::string runs_text = read_text(out / kRunsFile);
  export_store(source, out);
  EXPECT_EQ(read_text(out / kRunsFile), runs_text);

  Store target(db("target"));
  const MergeReport report = import_export(out, target);
  EXPECT_EQ(report.copied, 3);
  EXPECT_TRUE(report.conflicts.empty());
  EXPECT_EQ(report.kernel_bench_added, 1);
  EXPECT_EQ(report.env_added, 2);
  expect_same_rows(dump(source), dump(target));
  EXPECT_EQ(target.find_run("odd")->config_json, odd.config_json);
  EXPECT_EQ(target.steps("odd").at(0).tokens_per_s, kInf);
  EXPECT_EQ(target.steps("odd").at(0).lr, 1e-300);

  // Importing again changes nothing.
  const MergeReport again = import_export(out, target);
  EXPECT_EQ(again.identical, 3);
  EXPECT_EQ(again.copied + again.updated + again.kernel_bench_added + again.env_added, 0);
  expect_same_rows(dump(source), dump(target));
}

TEST_F(ExchangeTest, ExportSelectsRunsByKeyAndStatus) {
  Store source(db("source"));
  add_run(source, "a", "topk", 1, RunStatus::kDone, 2.5);
  add_run(source, "b", "topk", 2, RunStatus::kInterrupted, 2.6);
  add_run(source, "c", "switch", 1, RunStatus::kDone, 2.7);
  const fs::path out = dir_ / "export";

  ExportOptions done;
  done.statuses = {RunStatus::kDone};
  EXPECT_EQ(export_store(source, out, done).runs(), 2);
  ExportOptions keys;
  keys.run_keys = {"b", "c"};
  EXPECT_EQ(export_store(source, out, keys).runs(), 2);
  keys.statuses = {RunStatus::kDone};
  EXPECT_EQ(export_store(source, out, keys).runs(), 1);
  const ExportContents contents = read_export(out);
  ASSERT_EQ(contents.runs.size(), 1u);
  EXPECT_EQ(contents.runs[0].run.run_key, "c");
  EXPECT_EQ(contents.runs[0].steps.size(), 4u);
  // No kernel_bench or env rows: no such files.
  EXPECT_FALSE(fs::exists(out / kKernelBenchFile));
  EXPECT_FALSE(fs::exists(out / kEnvFile));

  keys.run_keys = {"a", "nope"};
  EXPECT_NE(error_of([&] { export_store(source, out, keys); }).find("no run nope"),
            std::string::npos);
}

TEST_F(ExchangeTest, MergeIntoAnEmptyDatabaseCopiesRunsButNotLeases) {
  Store job(db("job"));
  add_run(job, "a", "topk", 1, RunStatus::kDone, 2.5);
  add_run(job, "b", "routing_free", 1, RunStatus::kRunning, 2.4);
  ASSERT_FALSE(job.acquire_lease("b", Store::kLeaseStaleSeconds));  // the job trains b
  job.insert_kernel_bench({{"bench", "s", "cpu", "f32", "ms", 1.5, "c", "d", "t1"},
                           {"bench", "s", "cpu", "f32", "ms", 1.5, "c", "d", "t1"}});
  job.record_env({{"host", "node7"}});

  Store out(db("out"));
  const MergeReport report = merge_store(job, out);
  EXPECT_EQ(report.copied, 2);
  EXPECT_EQ(report.kernel_bench_added, 2);  // identical rows keep their count
  EXPECT_EQ(report.env_added, 1);
  EXPECT_TRUE(report.conflicts.empty());
  EXPECT_EQ(report.summary(),
            "2 copied, 0 updated, 0 identical, 0 superseded, 0 conflicts; kernel_bench +2 rows, "
            "env +1 rows");
  expect_same_rows(dump(job), dump(out));
  EXPECT_EQ(count(out, "leases"), 0);
  EXPECT_FALSE(out.lease_of("b"));
}

TEST_F(ExchangeTest, MergingTwiceChangesNothing) {
  Store job(db("job"));
  add_run(job, "a", "topk", 1, RunStatus::kDone, 2.5);
  add_run(job, "b", "topk", 2, RunStatus::kFailed, 2.6);
  job.insert_kernel_bench({{"bench", "s", "cpu", "f32", "ms", kNaN, "c", "d", "t1"}});
  job.record_env({{"host", "node7"}});
  Store out(db("out"));
  merge_store(job, out);
  const std::vector<QueryResult> before = dump(out);

  const MergeReport again = merge_store(job, out);
  EXPECT_EQ(again.identical, 2);
  EXPECT_EQ(again.copied + again.updated + again.superseded, 0);
  EXPECT_EQ(again.kernel_bench_added + again.env_added, 0);
  EXPECT_TRUE(again.conflicts.empty());
  expect_same_rows(before, dump(out));
}

TEST_F(ExchangeTest, OverlappingDatabasesShareIdenticalRunsOnce) {
  Store job1(db("job1"));
  Store job2(db("job2"));
  add_run(job1, "shared", "topk", 1, RunStatus::kDone, 2.5);
  add_run(job2, "shared", "topk", 1, RunStatus::kDone, 2.5);  // the same run, trained twice
  add_run(job1, "only1", "switch", 1, RunStatus::kDone, 2.7);
  add_run(job2, "only2", "routing_free", 1, RunStatus::kDone, 2.3);

  Store out(db("out"));
  MergeReport total = merge_store(job1, out);
  total += merge_store(job2, out);
  EXPECT_EQ(total.copied, 3);
  EXPECT_EQ(total.identical, 1);
  EXPECT_TRUE(total.conflicts.empty());
  EXPECT_EQ(out.runs().size(), 3u);
  EXPECT_EQ(count(out, "steps"), 3 * 4);
  EXPECT_EQ(out.steps("only2").size(), 4u);
}

TEST_F(ExchangeTest, ConflictIsReportedAndTheTargetKeepsItsRows) {
  Store job(db("job"));
  Store out(db("out"));
  add_run(job, "k", "topk", 3, RunStatus::kDone, 2.5);
  add_run(out, "k", "topk", 3, RunStatus::kDone, 2.75);
  add_run(job, "fresh", "topk", 4, RunStatus::kDone, 2.5);
  const std::vector<QueryResult> before = dump(out);

  const MergeReport report = merge_store(job, out);
  EXPECT_EQ(report.copied, 1);  // everything else still merged
  ASSERT_EQ(report.conflicts.size(), 1u);
  const std::string& line = report.conflicts[0];
  for (const char* part : {"run k ", "method topk", "size micro", "seed 3",
                           "final val loss: source 2.5 (step 4), target 2.75 (step 4)", "evals"}) {
    EXPECT_NE(line.find(part), std::string::npos) << part << " in: " << line;
  }
  EXPECT_EQ(out.last_eval("k", {"val", "loss", true})->value, 2.75);
  EXPECT_EQ(out.evals("k").size(), 2u);
  // The conflicting run is exactly as it was.
  const std::vector<QueryResult> after = dump(out);
  for (size_t t = 0; t < 4; ++t) {
    const QueryResult& a = before[t];
    QueryResult b = after[t];
    const auto drop_fresh = [](QueryResult& q) {
      q.rows.erase(std::remove_if(q.rows.begin(), q.rows.end(),
                                  [](const auto& row) { return to_string(row[0]) == "fresh"; }),
                   q.rows.end());
    };
    drop_fresh(b);
    expect_same_rows({a}, {b});
  }

  // A different config under the same key is a conflict whatever the statuses.
  Store job2(db("job2"));
  RunRow other = make_run("u", "topk", 1);
  other.config_json = "{\"other\":true}";
  job2.begin_run(other);
  job2.finish_run("u", RunStatus::kDone, 0, 1);
  out.begin_run(make_run("u", "topk", 1));  // unfinished in the target
  const MergeReport config = merge_store(job2, out);
  ASSERT_EQ(config.conflicts.size(), 1u);
  EXPECT_NE(config.conflicts[0].find("config_json differs"), std::string::npos);
  EXPECT_EQ(out.find_run("u")->status, RunStatus::kRunning);
}

TEST_F(ExchangeTest, UnfinishedTargetRunIsReplacedByTheFinishedOne) {
  Store job(db("job"));
  Store out(db("out"));
  add_run(out, "k", "remoe", 1, RunStatus::kInterrupted, 3.0, 2);  // stopped at step 2
  add_run(job, "k", "remoe", 1, RunStatus::kDone, 2.5, 6);

  const MergeReport report = merge_store(job, out);
  EXPECT_EQ(report.updated, 1);
  EXPECT_TRUE(report.conflicts.empty());
  expect_same_rows(dump(job), dump(out));
  EXPECT_EQ(out.find_run("k")->status, RunStatus::kDone);
  EXPECT_EQ(out.steps("k").size(), 6u);

  // The other way round the finished copy stays (the order of the inputs does not matter).
  Store stale(db("stale"));
  add_run(stale, "k", "remoe", 1, RunStatus::kInterrupted, 3.0, 2);
  const MergeReport kept = merge_store(stale, out);
  EXPECT_EQ(kept.superseded, 1);
  EXPECT_TRUE(kept.conflicts.empty());
  expect_same_rows(dump(job), dump(out));
}

TEST_F(ExchangeTest, RunBeingTrainedInTheTargetIsNotReplaced) {
  Store job(db("job"));
  Store out(db("out"));
  add_run(out, "k", "aoe", 1, RunStatus::kRunning, 3.0, 2);
  ASSERT_FALSE(out.acquire_lease("k", Store::kLeaseStaleSeconds));  // a live trainer
  add_run(job, "k", "aoe", 1, RunStatus::kDone, 2.5, 6);

  const MergeReport report = merge_store(job, out);
  ASSERT_EQ(report.conflicts.size(), 1u);
  EXPECT_NE(report.conflicts[0].find("being trained"), std::string::npos);
  EXPECT_EQ(out.find_run("k")->status, RunStatus::kRunning);
  EXPECT_EQ(out.steps("k").size(), 2u);
  EXPECT_TRUE(out.lease_of("k"));
}

TEST_F(ExchangeTest, DamagedExportIsRefusedWithNoRowsWritten) {
  Store source(db("source"));
  add_run(source, "a", "topk", 1, RunStatus::kDone, 2.5);
  add_run(source, "b", "topk", 2, RunStatus::kDone, 2.6);
  const fs::path out = dir_ / "export";
  export_store(source, out);
  Store target(db("target"));

  // One digit of the last steps row changed: the checksum no longer matches.
  const std::string steps = read_text(out / kStepsFile);
  std::string edited = steps;
  edited[edited.size() - 3] = edited[edited.size() - 3] == '1' ? '2' : '1';
  write_text(out / kStepsFile, edited);
  std::string message = error_of([&] { import_export(out, target); });
  EXPECT_NE(message.find("steps.csv"), std::string::npos) << message;
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
  EXPECT_EQ(count(target, "runs") + count(target, "steps") + count(target, "evals") +
                count(target, "layer_stats"),
            0);
  write_text(out / kStepsFile, steps);

  // A missing file.
  fs::rename(out / kEvalsFile, dir_ / "aside.csv");
  message = error_of([&] { import_export(out, target); });
  EXPECT_NE(message.find("evals.csv is missing"), std::string::npos) << message;
  fs::rename(dir_ / "aside.csv", out / kEvalsFile);

  // A manifest from a newer moebench, and no manifest at all.
  const std::string manifest = read_text(out / kManifestFile);
  nlohmann::json newer = nlohmann::json::parse(manifest);
  newer["schema_version"] = Store::kSchemaVersion + 1;
  write_text(out / kManifestFile, newer.dump());
  message = error_of([&] { import_export(out, target); });
  EXPECT_NE(message.find("update moebench"), std::string::npos) << message;
  fs::remove(out / kManifestFile);
  message = error_of([&] { import_export(out, target); });
  EXPECT_NE(message.find("manifest.json is missing"), std::string::npos) << message;
  EXPECT_EQ(count(target, "runs"), 0);

  // Restored, it imports.
  write_text(out / kManifestFile, manifest);
  EXPECT_EQ(import_export(out, target).copied, 2);
}

TEST_F(ExchangeTest, RowsThatNameNoRunOrRepeatAKeyAreRefused) {
  Store source(db("source"));
  add_run(source, "a", "topk", 1, RunStatus::kDone, 2.5);
  const fs::path out = dir_ / "export";
  export_store(source, out);

  // Rewrites a file and its manifest entry together, as a careless hand edit would.
  const auto rewrite = [&](const char* name, const std::string& text) {
    write_text(out / name, text);
    nlohmann::json m = nlohmann::json::parse(read_text(out / kManifestFile));
    m["files"][name]["sha256"] = sha256_hex(text);
    int64_t rows = -1;
    for (const char c : text) rows += c == '\n';
    m["files"][name]["rows"] = rows;
    write_text(out / kManifestFile, m.dump());
  };
  const std::string steps = read_text(out / kStepsFile);
  const size_t begin = steps.find('\n') + 1;
  const std::string first_row = steps.substr(begin, steps.find('\n', begin) + 1 - begin);
  rewrite(kStepsFile, steps + first_row);
  EXPECT_NE(error_of([&] { read_export(out); }).find("appears twice"), std::string::npos);
  rewrite(kStepsFile, steps + "ghost" + first_row.substr(1));
  EXPECT_NE(error_of([&] { read_export(out); }).find("is not in runs.csv"), std::string::npos);
  rewrite(kStepsFile, steps + "a,9,x,1,1,1,1,1,1,1,1,1\n");
  EXPECT_NE(error_of([&] { read_export(out); }).find("column tokens: 'x' is not an integer"),
            std::string::npos);
}

TEST_F(ExchangeTest, InsertRunRecordKeepsEveryColumnOrNothing) {
  Store source(db("source"));
  add_run(source, "a", "topk", 1, RunStatus::kDiverged, 2.5);
  RunRecord record = *source.run_record("a");
  Store target(db("target"));
  target.insert_run_record(record);
  expect_same_rows(dump(source), dump(target));
  EXPECT_THROW(target.insert_run_record(record), std::runtime_error);  // the key exists

  record.run.run_key = "b";
  record.steps.push_back(record.steps.front());  // a repeated step: the whole run is refused
  EXPECT_THROW(target.insert_run_record(record), std::runtime_error);
  EXPECT_FALSE(target.find_run("b"));
  EXPECT_EQ(count(target, "steps"), 4);

  target.insert_env_rows({{"k", "v", "2025-01-01T00:00:00.000Z"}});
  EXPECT_EQ(target.env_rows().at(0).recorded_at, "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(target.env().at("k"), "v");
}

}  // namespace
}  // namespace moebench
