// Tests of the comparison tables on hand-made runs, checked against hand-computed values.
// Spec: shared/DESIGN.md "Configs and the store" (mean ± std, baseline delta, published rows).
#include "suite/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "suite/tests/store_fixture.h"

namespace moebench::report {
namespace {

namespace fs = std::filesystem;
using test_support::parse_csv;

// csv rows as maps keyed by header name.
std::vector<std::map<std::string, std::string>> csv_records(const std::string& text) {
  const auto rows = parse_csv(text);
  std::vector<std::map<std::string, std::string>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    EXPECT_EQ(rows[r].size(), rows[0].size()) << "csv row " << r;
    std::map<std::string, std::string> rec;
    for (size_t c = 0; c < rows[0].size() && c < rows[r].size(); ++c) rec[rows[0][c]] = rows[r][c];
    out.push_back(rec);
  }
  return out;
}

const std::map<std::string, std::string>& find_record(
    const std::vector<std::map<std::string, std::string>>& records, const std::string& method,
    const std::string& size, const std::string& status_prefix = "") {
  for (const auto& r : records) {
    if (r.at("method") == method && r.at("size") == size &&
        r.at("status").rfind(status_prefix, 0) == 0) {
      return r;
    }
  }
  ADD_FAILURE() << "no csv row " << method << " " << size;
  static const std::map<std::string, std::string> none;
  return none;
}

double num(const std::map<std::string, std::string>& r, const std::string& key) {
  return std::stod(r.at(key));
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test_support::make_temp_dir("moebench_report_"); }
  void TearDown() override { test_support::remove_temp_dir(dir_); }
  std::string db_path() const { return (dir_ / "results.sqlite").string(); }

  // One run as the trainer writes it: an early eval (must not count), the final eval, a θ-sweep
  // row at the final step (must not count), and its final status.
  static void add_run(Store& store, const std::string& method, const std::string& size,
                      int64_t seed, RunStatus status, std::optional<double> val_loss,
                      double wall_s = 60, const std::string& config_json = "{}") {
    const RunRow r = test_support::test_run_row(method, size, seed, config_json);
    store.begin_run(r);
    std::vector<EvalRow> evals;
    evals.push_back({"val", "loss", 9.5, 1000, 0, 0, 0, std::nullopt, 50});
    if (val_loss) {
      evals.push_back({"val", "loss", *val_loss, 1000, 0, 0, 0, std::nullopt, 100});
      evals.push_back({"val", "ppl", std::exp(*val_loss), 1000, 0, 0, 0, std::nullopt, 100});
      evals.push_back({"val", "loss", 1.0, 1000, 0, 0, 0, 0.8, 100});
    }
    store.append_evals(r.run_key, evals);
    if (status != RunStatus::kRunning) store.finish_run(r.run_key, status, 100, wall_s);
  }

  // topk seeds 1, 2 (3.0, 3.2), routing_free seeds 1, 2 (2.9, 3.1), one diverged topk (3.6).
  void fill_standard(Store& store) {
    add_run(store, "topk", "micro", 1, RunStatus::kDone, 3.0);
    add_run(store, "topk", "micro", 2, RunStatus::kDone, 3.2);
    add_run(store, "routing_free", "micro", 1, RunStatus::kDone, 2.9);
    add_run(store, "routing_free", "micro", 2, RunStatus::kDone, 3.1);
    add_run(store, "topk", "micro", 3, RunStatus::kDiverged, 3.6);
  }

  fs::path dir_;
};

TEST_F(ReportTest, MeanStdPerplexityAndDeltaAgainstTopk) {
  Store store(db_path());
  fill_standard(store);
  const Table table = comparison_table(store);
  const auto records = csv_records(render(table, Format::kCsv));
  ASSERT_EQ(records.size(), 2u);
  // Baseline method first.
  EXPECT_EQ(records[0].at("method"), "topk");
  EXPECT_EQ(records[1].at("method"), "routing_free");

  const auto& topk = find_record(records, "topk", "micro");
  EXPECT_EQ(topk.at("runs"), "2");
  EXPECT_EQ(topk.at("status"), "2 done");
  EXPECT_NEAR(num(topk, "val_loss_mean"), 3.1, 1e-12);
  EXPECT_NEAR(num(topk, "val_loss_std"), 0.14142135623730951, 1e-12);  // sqrt(0.02)
  // Perplexity is exp(mean loss) = exp(3.1), not the mean of exp(3.0) and exp(3.2) (22.243).
  EXPECT_NEAR(num(topk, "ppl"), 22.197951281441636, 1e-9);
  EXPECT_EQ(num(topk, "delta_val_loss"), 0.0);

  const auto& rf = find_record(records, "routing_free", "micro");
  EXPECT_NEAR(num(rf, "val_loss_mean"), 3.0, 1e-12);
  EXPECT_NEAR(num(rf, "val_loss_std"), 0.14142135623730951, 1e-12);
  EXPECT_NEAR(num(rf, "ppl"), 20.085536923187668, 1e-9);
  EXPECT_NEAR(num(rf, "delta_val_loss"), -0.1, 1e-12);

  const std::string term = render(table, Format::kTerm);
  EXPECT_NE(term.find("3.100 ± 0.141"), std::string::npos) << term;
  EXPECT_NE(term.find("3.000 ± 0.141"), std::string::npos) << term;
  EXPECT_NE(term.find("-0.100"), std::string::npos) << term;
  EXPECT_NE(term.find("22.20"), std::string::npos) << term;
  EXPECT_NE(term.find("Δ vs topk"), std::string::npos) << term;
  EXPECT_NE(term.find("base"), std::string::npos) << term;
}

TEST_F(ReportTest, DivergedRunExcludedByDefaultIncludedWithAll) {
  Store store(db_path());
  fill_standard(store);
  const Table plain = comparison_table(store);
  const std::string plain_term = render(plain, Format::kTerm);
  EXPECT_NE(plain_term.find("left out 1 run that is not 'done' (1 diverged); --all includes it"),
            std::string::npos)
      << plain_term;
  EXPECT_EQ(plain_term.find("†"), std::string::npos);

  TableOptions all;
  all.all = true;
  const Table table = comparison_table(store, all);
  const auto records = csv_records(render(table, Format::kCsv));
  const auto& topk = find_record(records, "topk", "micro");
  EXPECT_EQ(topk.at("runs"), "3");
  EXPECT_EQ(topk.at("status"), "2 done, 1 diverged");
  EXPECT_NEAR(num(topk, "val_loss_mean"), 3.2666666666666666, 1e-12);  // (3.0 + 3.2 + 3.6) / 3
  EXPECT_NEAR(num(topk, "val_loss_std"), 0.3055050463303894, 1e-12);
  EXPECT_NEAR(num(find_record(records, "routing_free", "micro"), "delta_val_loss"),
              3.0 - 3.2666666666666666, 1e-12);
  const std::string term = render(table, Format::kTerm);
  EXPECT_NE(term.find("3†"), std::string::npos) << term;
  EXPECT_NE(term.find("† the row includes runs that are not 'done'"), std::string::npos) << term;
  EXPECT_EQ(term.find("left out"), std::string::npos) << term;
}

TEST_F(ReportTest, CsvParsesBackToTheSameNumbers) {
  Store store(db_path());
  fill_standard(store);
  TableOptions all;
  all.all = true;
  const Table table = comparison_table(store, all);
  const std::string csv = render(table, Format::kCsv);
  const auto rows = parse_csv(csv);
  ASSERT_EQ(rows.size(), 1 + table.rows.size());
  EXPECT_EQ(rows[0].front(), "method");
  EXPECT_EQ(rows[0][rows[0].size() - 1], "wall_s");
  // "2 done, 1 diverged" holds a comma: quoted, it stays one field.
  for (size_t r = 1; r < rows.size(); ++r) EXPECT_EQ(rows[r].size(), rows[0].size());
  // Every csv field is the exact (round-trip) value behind its cell: re-rendering the parsed
  // numbers at the table's precision gives the term text again.
  const auto records = csv_records(csv);
  char buf[64];
  for (size_t r = 0; r < records.size(); ++r) {
    const auto& rec = records[r];
    std::snprintf(buf, sizeof(buf), "%.3f ± %.3f", num(rec, "val_loss_mean"),
                  num(rec, "val_loss_std"));
    EXPECT_EQ(table.rows[r][4].text, buf);
    std::snprintf(buf, sizeof(buf), "%.2f", num(rec, "ppl"));
    EXPECT_EQ(table.rows[r][6].text, buf);
    EXPECT_EQ(num(rec, "wall_s"), 60.0);
  }
  // No footnotes inside the csv.
  EXPECT_EQ(csv.find("left out"), std::string::npos);
  EXPECT_EQ(csv.find("val loss:"), std::string::npos);
}

TEST_F(ReportTest, MarkdownHasHeaderSeparatorRow) {
  Store store(db_path());
  fill_standard(store);
  const std::string md = render(comparison_table(store), Format::kMarkdown);
  std::istringstream in(md);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 4u) << md;
  const auto cells = [](const std::string& line) {
    return std::count(line.begin(), line.end(), '|') - 1;
  };
  EXPECT_EQ(lines[0].rfind("| method | size | runs |", 0), 0u) << md;
  // Text columns left-aligned (---), numbers right-aligned (---:).
  EXPECT_EQ(lines[1].rfind("|---|---|---:|---|---:|", 0), 0u) << md;
  EXPECT_EQ(lines[1].find_first_not_of("|-:"), std::string::npos) << md;
  EXPECT_EQ(cells(lines[1]), cells(lines[0]));
  EXPECT_EQ(cells(lines[2]), cells(lines[0]));
  EXPECT_EQ(cells(lines[3]), cells(lines[0]));
  EXPECT_NE(md.find("| topk | micro | 2 | 2 done | 3.100 ± 0.141 | base |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("\n- val loss: mean ± sample std"), std::string::npos) << md;
}

// A method whose file states a caveat (Self-Routing: our reading of the abstract) is marked in
// every table that names it, with the caveat once as a footnote; the csv keeps the plain name.
TEST_F(ReportTest, MethodCaveatIsMarkedWhereverTheMethodIsShown) {
  Store store(db_path());
  fill_standard(store);
  add_run(store, "self_routing", "micro", 1, RunStatus::kDone, 3.05);
  add_run(store, "self_routing", "micro", 2, RunStatus::kDone, 3.15);
  const std::string md = render(comparison_table(store), Format::kMarkdown);
  EXPECT_NE(md.find("| self_routing‡ | micro | 2 |"), std::string::npos) << md;
  const std::string note = "‡ self_routing: our reading of the abstract";
  ASSERT_NE(md.find(note), std::string::npos) << md;
  EXPECT_EQ(md.find(note), md.rfind(note)) << "one footnote per method\n" << md;
  EXPECT_EQ(md.find("topk‡"), std::string::npos) << md;
  const std::string csv = render(comparison_table(store), Format::kCsv);
  EXPECT_NE(csv.find("\nself_routing,micro,"), std::string::npos) << csv;
  const std::string runs = render(runs_table(store), Format::kTerm);
  EXPECT_NE(runs.find("self_routing‡"), std::string::npos) << runs;
  EXPECT_NE(runs.find(note), std::string::npos) << runs;
}

TEST_F(ReportTest, TermColumnsAreAligned) {
  Store store(db_path());
  fill_standard(store);
  TableOptions all;
  all.all = true;
  const std::string term = render(comparison_table(store, all), Format::kTerm);
  std::istringstream in(term);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 4u);
  // The last column (wall) is right-aligned, so header, rule and rows all end in one column,
  // counted in code points ("±", "Δ", "λ" and "†" are multi-byte).
  const size_t width = code_points(lines[1]);
  EXPECT_EQ(lines[1].find_first_not_of("- "), std::string::npos) << term;
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(code_points(lines[i]), width) << term;
  // The status column starts at the same position in every row.
  const size_t status_at = lines[0].find("status");
  EXPECT_EQ(lines[3].find("2 done"), status_at) << term;  // only ASCII before it in that row
}

TEST_F(ReportTest, MissingBaselineGivesFootnoteNotFailure) {
  Store store(db_path());
  fill_standard(store);
  TableOptions options;
  options.baseline = "switch";
  const Table table = comparison_table(store, options);
  const std::string term = render(table, Format::kTerm);
  EXPECT_NE(term.find("baseline 'switch' absent"), std::string::npos) << term;
  for (const auto& rec : csv_records(render(table, Format::kCsv))) {
    EXPECT_EQ(rec.at("delta_val_loss"), "");
  }

  // Present for one size, absent for another: a footnote names the size without it.
  add_run(store, "routing_free", "tiny", 1, RunStatus::kDone, 4.0);
  const std::string partial = render(comparison_table(store), Format::kTerm);
  EXPECT_NE(partial.find("no baseline 'topk' runs for size=tiny"), std::string::npos) << partial;

  // Grouping without method: no delta, said so.
  TableOptions by_size;
  by_size.group_by = {"size"};
  const std::string no_method = render(comparison_table(store, by_size), Format::kTerm);
  EXPECT_NE(no_method.find("Δ needs 'method'"), std::string::npos) << no_method;
}

TEST_F(ReportTest, EmptyOrMissingDatabaseIsAnErrorNamingTheTrainCommand) {
  const std::string missing = (dir_ / "nope" / "missing.sqlite").string();
  try {
    open_results(missing);
    FAIL() << "no error for a missing database";
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find("moebench train --config micro"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(missing));  // a typo in --db must not create a database

  { Store create(db_path()); }
  const auto store = open_results(db_path());
  try {
    comparison_table(*store);
    FAIL() << "no error for an empty database";
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find("no runs in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("moebench train --config micro"), std::string::npos);
  }
  EXPECT_THROW(runs_table(*store), ReportError);
}

TEST_F(ReportTest, OnlyUnfinishedRunsNeedAll) {
  Store store(db_path());
  add_run(store, "topk", "micro", 1, RunStatus::kRunning, std::nullopt);
  try {
    comparison_table(store);
    FAIL() << "no error without done runs";
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find("1 running"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--all"), std::string::npos) << e.what();
  }
  TableOptions all;
  all.all = true;
  const Table table = comparison_table(store, all);
  const std::string term = render(table, Format::kTerm);
  // Only the early eval (step 50) exists: it is the run's last one.
  EXPECT_NE(term.find("9.500"), std::string::npos) << term;
}

TEST_F(ReportTest, SpeedDensityLambdaBalanceAndWall) {
  Store store(db_path());
  add_run(store, "routing_free", "micro", 1, RunStatus::kDone, 3.0, 100);
  add_run(store, "routing_free", "micro", 2, RunStatus::kDone, 3.0, 200);
  std::vector<StepRow> steps1, steps2;
  for (int64_t s = 1; s <= 9; ++s) {
    // Run 1 speeds 10..90: the last third (steps 7, 8, 9) averages 80.
    steps1.push_back({s, 100 * s, 3, 3, 0, 1e-9 * s, 0.1 * s, 1e-3, 1, 10.0 * s, double(s)});
    steps2.push_back({s, 100 * s, 3, 3, 0, 3e-9, 0.5, 1e-3, 1, 100, double(s)});
  }
  store.append_steps("routing_free-micro-1", steps1);
  store.append_steps("routing_free-micro-2", steps2);
  // Run 1: layer -1 summaries at steps 5 and 9 (the last counts); run 2: per-layer rows only.
  store.append_layer_stats("routing_free-micro-1", {{5, -1, -1, "cv", 0.9},
                                                    {9, -1, -1, "cv", 0.2},
                                                    {9, -1, -1, "maxvio", 1.0},
                                                    {9, -1, -1, "entropy", 0.95},
                                                    {9, 0, -1, "cv", 7.0},
                                                    {9, 0, 3, "load", 0.5}});
  store.append_layer_stats("routing_free-micro-2", {{9, 0, -1, "cv", 0.3},
                                                    {9, 1, -1, "cv", 0.5},
                                                    {9, 0, -1, "maxvio", 2.0},
                                                    {9, 1, -1, "maxvio", 4.0},
                                                    {9, 0, -1, "entropy", 0.85}});
  const auto records = csv_records(render(comparison_table(store), Format::kCsv));
  ASSERT_EQ(records.size(), 1u);
  const auto& r = records[0];
  EXPECT_NEAR(num(r, "tokens_per_s"), 90.0, 1e-9);  // (80 + 100) / 2
  EXPECT_NEAR(num(r, "density"), 0.7, 1e-9);        // (0.9 + 0.5) / 2
  EXPECT_NEAR(num(r, "lambda"), 6e-9, 1e-18);       // (9e-9 + 3e-9) / 2
  EXPECT_NEAR(num(r, "cv"), 0.3, 1e-12);            // (0.2 + (0.3 + 0.5) / 2) / 2
  EXPECT_NEAR(num(r, "maxvio"), 2.0, 1e-12);        // (1.0 + 3.0) / 2
  EXPECT_NEAR(num(r, "entropy"), 0.9, 1e-12);       // (0.95 + 0.85) / 2
  EXPECT_NEAR(num(r, "wall_s"), 150.0, 1e-12);
  const std::string term = render(comparison_table(store), Format::kTerm);
  EXPECT_NE(term.find("2.5 min"), std::string::npos) << term;
  EXPECT_NE(term.find("6.00e-09"), std::string::npos) << term;
}

TEST_F(ReportTest, PublishedRowsBesideOursNeverInOurMeans) {
  Store store(db_path());
  fill_standard(store);
  add_run(store, "topk", "S", 1, RunStatus::kDone, 3.5);
  TableOptions options;
  options.published = true;
  const Table table = comparison_table(store, options);
  const auto records = csv_records(render(table, Format::kCsv));
  ASSERT_EQ(records.size(), 3u + 8u);
  const auto& ours_s = find_record(records, "topk", "S", "1 done");
  EXPECT_NEAR(num(ours_s, "val_loss_mean"), 3.5, 1e-12);  // the published 31.22 stays apart
  EXPECT_EQ(ours_s.at("runs"), "1");
  const auto& pub_topk = find_record(records, "topk", "S", "published");
  EXPECT_EQ(num(pub_topk, "ppl"), 31.22);
  EXPECT_EQ(pub_topk.at("val_loss_mean"), "");
  EXPECT_EQ(pub_topk.at("runs"), "");
  const auto& pub_rf = find_record(records, "routing_free", "S", "published");
  EXPECT_EQ(num(pub_rf, "ppl"), 27.42);
  EXPECT_NEAR(num(pub_rf, "delta_val_loss"), -0.1297862409531176, 1e-12);  // ln(27.42 / 31.22)
  EXPECT_NEAR(num(find_record(records, "routing_free", "M", "published"), "delta_val_loss"),
              -0.1242036034593062, 1e-12);  // ln(22.08 / 25.00)
  EXPECT_EQ(num(find_record(records, "aoe", "S", "published"), "ppl"), 30.00);
  EXPECT_EQ(num(find_record(records, "remoe", "S", "published"), "ppl"), 29.60);
  EXPECT_EQ(num(find_record(records, "routing_free", "L", "published"), "ppl"), 19.97);
  // Our topk S row comes right before the published one.
  for (size_t i = 0; i + 1 < records.size(); ++i) {
    if (records[i].at("method") == "topk" && records[i].at("size") == "S" &&
        records[i].at("status") == "1 done") {
      EXPECT_EQ(records[i + 1].at("status"), "published");
    }
  }
  TableOptions by_size;
  by_size.group_by = {"size"};
  by_size.published = true;
  EXPECT_THROW(comparison_table(store, by_size), ReportError);
}

TEST_F(ReportTest, GroupByConfigKeyAndSeed) {
  Store store(db_path());
  add_run(store, "routing_free", "micro", 1, RunStatus::kDone, 3.0, 60,
          R"({"moe":{"theta":0.8},"train":{"seed":1}})");
  add_run(store, "routing_free", "micro", 2, RunStatus::kDone, 3.4, 60,
          R"({"moe":{"theta":1.0},"train":{"seed":2}})");
  add_run(store, "routing_free", "micro", 3, RunStatus::kDone, 3.2, 60,
          R"({"moe":{"theta":0.8},"train":{"seed":3}})");
  TableOptions by_theta;
  by_theta.group_by = {"method", "moe.theta"};
  const auto records = csv_records(render(comparison_table(store, by_theta), Format::kCsv));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].at("moe.theta"), "0.8");
  EXPECT_NEAR(num(records[0], "val_loss_mean"), 3.1, 1e-12);
  EXPECT_EQ(records[1].at("moe.theta"), "1.0");
  EXPECT_NEAR(num(records[1], "val_loss_mean"), 3.4, 1e-12);
  EXPECT_EQ(records[1].at("val_loss_std"), "");  // one run: no std

  TableOptions by_seed;
  by_seed.group_by = {"method", "seed"};
  EXPECT_EQ(comparison_table(store, by_seed).rows.size(), 3u);

  TableOptions bad;
  bad.group_by = {"method", "colour"};
  EXPECT_THROW(comparison_table(store, bad), ReportError);
}

// Only zero-shot tasks become columns: val has its own columns, routing rows are diagnostics, and
// a task evaluated only at a swept θ has no trained figure.
TEST_F(ReportTest, TaskColumnsLeaveOutValRoutingAndSweptRows) {
  Store store(db_path());
  add_run(store, "topk", "micro", 1, RunStatus::kDone, 3.0);
  store.append_evals("topk-micro-1", {{"val", "acc", 0.7, 10, 0, 0, 0.5, std::nullopt, 100},
                                      {"routing", "acc", 0.9, 10, 0, 0, 0.5, std::nullopt, 100},
                                      {"imdb", "acc", 0.6, 10, 0, 0, 0.5, std::nullopt, 100},
                                      {"cloze", "acc", 0.2, 10, 0, 0, 0.25, 0.8, 100}});
  const Table table = comparison_table(store);
  std::vector<std::string> task_columns;
  for (const auto& c : table.columns) {
    if (c.name.find("acc") != std::string::npos) task_columns.push_back(c.name);
  }
  EXPECT_EQ(task_columns, std::vector<std::string>{"imdb acc (chance 0.50)"});
  const auto records = csv_records(render(table, Format::kCsv));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(num(records[0], "imdb_acc_mean"), 0.6);
}

TEST_F(ReportTest, RunsListingHasOneLinePerRun) {
  Store store(db_path());
  fill_standard(store);
  const Table table = runs_table(store);
  ASSERT_EQ(table.rows.size(), 5u);
  // Runs created within one millisecond tie on created_at: look rows up by key.
  std::map<std::string, std::map<std::string, std::string>> by_key;
  for (const auto& rec : csv_records(render(table, Format::kCsv))) by_key[rec.at("run_key")] = rec;
  ASSERT_EQ(by_key.size(), 5u);
  const auto& diverged = by_key.at("topk-micro-3");
  EXPECT_EQ(diverged.at("method"), "topk");
  EXPECT_EQ(diverged.at("size"), "micro");
  EXPECT_EQ(diverged.at("seed"), "3");
  EXPECT_EQ(diverged.at("status"), "diverged");
  EXPECT_EQ(diverged.at("step"), "100");
  EXPECT_EQ(num(diverged, "wall_s"), 60.0);
  EXPECT_NEAR(num(diverged, "val_loss"), 3.6, 1e-12);
  EXPECT_EQ(by_key.at("routing_free-micro-2").at("status"), "done");
  const std::string term = render(table, Format::kTerm);
  EXPECT_NE(term.find("3.2000"), std::string::npos) << term;
  EXPECT_NE(term.find("5 runs in"), std::string::npos) << term;
}

TEST_F(ReportTest, FormatNames) {
  EXPECT_EQ(parse_format("term"), Format::kTerm);
  EXPECT_EQ(parse_format("md"), Format::kMarkdown);
  EXPECT_EQ(parse_format("csv"), Format::kCsv);
  EXPECT_THROW(parse_format("html"), ReportError);
}

}  // namespace
}  // namespace moebench::report
