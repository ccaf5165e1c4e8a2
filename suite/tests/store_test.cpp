// Tests of the SQLite store: schema, round trips, all-or-nothing transactions, a writer killed
// mid-transaction, concurrent writers, run leases, read-only opening, the version-1 upgrade.
// Spec: shared/DESIGN.md "Configs and the store".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "suite/store.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moebench_store_" + std::to_string(std::random_device{}()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // A database in a folder that does not exist yet: the store must create it.
  std::string db_path() const { return (dir_ / "nested" / "results.db").string(); }

  static RunRow make_run(const std::string& key, const std::string& method = "routing_free") {
    RunRow r;
    r.run_key = key;
    r.config_json = "{\"key\":\"" + key + "\"}";
    r.method = method;
    r.size = "tiny";
    r.seed = 42;
    r.commit = "abc123";
    r.dirty = true;
    r.torch_version = "1.13.1";
    r.device = "cpu";
    r.backend = "reference";
    r.notes = "first";
    return r;
  }

  static std::vector<StepRow> make_steps(int64_t first, int64_t count) {
    std::vector<StepRow> rows;
    for (int64_t s = first; s < first + count; ++s) {
      const double x = static_cast<double>(s);
      rows.push_back({s, 1000 * s, 10 - x / 4, 9.875 - x / 4, 0.125, 1e-10 * x, 0.25, 1e-3, 0.5,
                      1234.5, x / 10});
    }
    return rows;
  }

  fs::path dir_;
};

TEST_F(StoreTest, CreatesFolderSchemaAndWal) {
  Store store(db_path());
  EXPECT_TRUE(fs::exists(db_path()));
  const QueryResult tables =
      store.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  std::vector<std::string> names;
  for (const auto& row : tables.rows) names.push_back(to_string(row[0]));
  EXPECT_EQ(names, (std::vector<std::string>{"env", "evals", "kernel_bench", "layer_stats",
                                             "leases", "runs", "steps"}));
  EXPECT_EQ(to_string(store.query("PRAGMA user_version").rows.at(0).at(0)),
            std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(to_string(store.query("PRAGMA foreign_keys").rows.at(0).at(0)), "1");
  // WAL is a property of the file: a plain connection sees it too.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  Store again(db_path());  // reopening an existing store is a no-op
  EXPECT_TRUE(again.runs().empty());
}

TEST_F(StoreTest, RunLifecycleRoundTrip) {
  Store store(db_path());
  const RunRow in = make_run("k1");
  const RunRow started = store.begin_run(in);
  EXPECT_EQ(started.run_key, "k1");
  EXPECT_EQ(started.config_json, in.config_json);
  EXPECT_EQ(started.method, "routing_free");
  EXPECT_EQ(started.size, "tiny");
  EXPECT_EQ(started.seed, 42);
  EXPECT_EQ(started.commit, "abc123");
  EXPECT_TRUE(started.dirty);
  EXPECT_EQ(started.torch_version, "1.13.1");
  EXPECT_EQ(started.device, "cpu");
  EXPECT_EQ(started.backend, "reference");
  EXPECT_EQ(started.notes, "first");
  EXPECT_EQ(started.status, RunStatus::kRunning);
  EXPECT_EQ(started.created_at.size(), 24u);  // 2025-01-31T12:00:00.000Z
  EXPECT_FALSE(started.started_at.empty());
  EXPECT_TRUE(started.finished_at.empty());

  // Interrupted, then resumed on another machine.
  store.finish_run("k1", RunStatus::kInterrupted, 10, 5.5);
  RunRow resumed_in = in;
  resumed_in.device = "cuda";
  const RunRow resumed = store.begin_run(resumed_in);
  EXPECT_EQ(resumed.status, RunStatus::kRunning);
  EXPECT_EQ(resumed.device, "cuda");
  EXPECT_EQ(resumed.status_step, 10);
  EXPECT_EQ(resumed.created_at, started.created_at);

  store.finish_run("k1", RunStatus::kDone, 30, 12.25, 30000);
  const RunRow done = *store.find_run("k1");
  EXPECT_EQ(done.status, RunStatus::kDone);
  EXPECT_EQ(done.status_step, 30);
  EXPECT_EQ(done.wall_s, 12.25);
  EXPECT_EQ(done.tokens, 30000);
  EXPECT_FALSE(done.finished_at.empty());

  EXPECT_THROW(store.begin_run(in), std::runtime_error);  // done runs are not restarted
  RunRow other_config = make_run("k2");
  store.begin_run(other_config);
  other_config.config_json = "{}";
  EXPECT_THROW(store.begin_run(other_config), std::runtime_error);
  EXPECT_THROW(store.finish_run("nope", RunStatus::kDone, 1, 1), std::runtime_error);
  EXPECT_THROW(store.finish_run("k2", RunStatus::kRunning, 1, 1), std::invalid_argument);

  store.begin_run(make_run("k3", "topk"));
  store.set_notes("k3", "second");
  EXPECT_EQ(store.find_run("k3")->notes, "second");
  EXPECT_EQ(store.runs().size(), 3u);
  EXPECT_EQ(store.runs({"topk", "", std::nullopt}).size(), 1u);
  EXPECT_EQ(store.runs({"", "tiny", RunStatus::kDone}).at(0).run_key, "k1");
  EXPECT_FALSE(store.find_run("missing").has_value());

  store.append_steps("k3", make_steps(0, 3));
  store.delete_run("k3");  // takes its rows along
  EXPECT_FALSE(store.find_run("k3").has_value());
  EXPECT_TRUE(store.steps("k3").empty());
}

TEST_F(StoreTest, StepsRoundTripAndUpsert) {
  Store store(db_path());
  store.begin_run(make_run("k"));
  std::vector<StepRow> in = make_steps(1, 5);
  in[2].loss = kNaN;  // a diverged step: stored as NULL, read back as NaN
  store.append_steps("k", in);
  std::vector<StepRow> out = store.steps("k");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].step, in[i].step);
    EXPECT_EQ(out[i].tokens, in[i].tokens);
    if (i == 2) {
      EXPECT_TRUE(std::isnan(out[i].loss));
    } else {
      EXPECT_EQ(out[i].loss, in[i].loss);
    }
    EXPECT_EQ(out[i].lm_loss, in[i].lm_loss);
    EXPECT_EQ(out[i].aux_loss, in[i].aux_loss);
    EXPECT_EQ(out[i].lambda, in[i].lambda);
    EXPECT_EQ(out[i].density, in[i].density);
    EXPECT_EQ(out[i].lr, in[i].lr);
    EXPECT_EQ(out[i].grad_norm, in[i].grad_norm);
    EXPECT_EQ(out[i].tokens_per_s, in[i].tokens_per_s);
    EXPECT_EQ(out[i].elapsed_s, in[i].elapsed_s);
  }
  EXPECT_EQ(store.find_run("k")->status_step, 5);
  EXPECT_EQ(store.find_run("k")->tokens, 5000);

  // A resume rewrites steps after its checkpoint: same keys, new values, no duplicates.
  std::vector<StepRow> again = make_steps(4, 3);
  again[0].loss = 9;
  store.append_steps("k", again);
  out = store.steps("k");
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[3].loss, 9);
  EXPECT_EQ(store.find_run("k")->status_step, 6);

  EXPECT_THROW(store.append_steps("unknown", make_steps(0, 1)), std::runtime_error);  // FK
}

TEST_F(StoreTest, LayerStatsEvalsKernelBenchEnvRoundTrip) {
  Store store(db_path());
  store.begin_run(make_run("k"));

  const std::vector<LayerStatRow> stats = {
      {10, 0, -1, "density", 0.25}, {10, 0, 3, "load", 0.125}, {20, 1, -1, "max_vio", kNaN}};
  store.append_layer_stats("k", stats);
  const std::vector<LayerStatRow> stats_out = store.layer_stats("k");
  ASSERT_EQ(stats_out.size(), 3u);
  EXPECT_EQ(stats_out[0].expert, -1);
  EXPECT_EQ(stats_out[1].metric, "load");
  EXPECT_EQ(stats_out[1].value, 0.125);
  EXPECT_EQ(stats_out[2].layer, 1);
  EXPECT_TRUE(std::isnan(stats_out[2].value));

  EvalRow val{"val", "loss", 3.5, 1000, kNaN, kNaN, kNaN, std::nullopt, 30};
  EvalRow imdb{"imdb", "acc", 0.55, 200, 0.48, 0.62, 0.5, std::nullopt, 30};
  EvalRow swept = imdb;
  swept.theta = 0.8;
  swept.value = 0.53;
  store.append_evals("k", {val, imdb, swept});
  imdb.value = 0.56;  // re-evaluated: replaces, does not duplicate
  store.append_evals("k", {imdb});
  const std::vector<EvalRow> evals = store.evals("k");
  ASSERT_EQ(evals.size(), 3u);
  EXPECT_EQ(evals[0].task, "imdb");
  EXPECT_FALSE(evals[0].theta.has_value());
  EXPECT_EQ(evals[0].value, 0.56);
  EXPECT_EQ(evals[0].n, 200);
  EXPECT_EQ(evals[0].ci_low, 0.48);
  EXPECT_EQ(evals[0].ci_high, 0.62);
  EXPECT_EQ(evals[0].chance, 0.5);
  ASSERT_TRUE(evals[1].theta.has_value());
  EXPECT_EQ(*evals[1].theta, 0.8);
  EXPECT_EQ(evals[1].value, 0.53);
  EXPECT_EQ(evals[2].task, "val");
  EXPECT_TRUE(std::isnan(evals[2].ci_low));
  EXPECT_EQ(evals[2].step, 30);

  store.insert_kernel_bench(
      {{"grouped_mm", "tokens:4096/experts:12", "cpu", "fp32", "tflops", 0.125, "abc", "cpu", ""},
       {"combine", "tokens:64", "cuda", "bf16", "gbps", 900, "abc", "H100",
        "2025-01-01T00:00:00.000Z"}});
  const std::vector<KernelBenchRow> bench = store.kernel_bench();
  ASSERT_EQ(bench.size(), 2u);
  EXPECT_EQ(bench[0].name, "combine");  // ordered by created_at
  EXPECT_EQ(bench[0].device, "H100");
  EXPECT_EQ(bench[1].shape, "tokens:4096/experts:12");
  EXPECT_EQ(bench[1].value, 0.125);
  EXPECT_EQ(bench[1].commit, "abc");
  EXPECT_FALSE(bench[1].created_at.empty());
  EXPECT_EQ(store.kernel_bench("grouped_mm").size(), 1u);

  store.record_env({{"cpu", "2 cores"}, {"torch", "1.13.1"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a later timestamp
  store.record_env({{"torch", "2.11"}});
  const auto env = store.env();
  EXPECT_EQ(env.at("cpu"), "2 cores");
  EXPECT_EQ(env.at("torch"), "2.11");
  EXPECT_EQ(to_string(store.query("SELECT count(*) FROM env").rows[0][0]), "3");  // history kept
}

// The typed reads the reports use instead of SQL: filtered evals, the latest eval, the last
// layer summaries.
TEST_F(StoreTest, FilteredEvalsLastEvalAndLastLayerSummaries) {
  Store store(db_path());
  store.begin_run(make_run("k"));
  store.begin_run(make_run("other"));
  store.append_evals(
      "k", {{"val", "loss", 4.0, 1000, kNaN, kNaN, kNaN, std::nullopt, 10},
            {"val", "loss", 3.5, 1000, kNaN, kNaN, kNaN, std::nullopt, 30},
            {"val", "loss", 3.0, 1000, kNaN, kNaN, kNaN, 0.8, 40},  // θ sweep: not trained
            {"val", "ppl", 33.0, 1000, kNaN, kNaN, kNaN, std::nullopt, 30},
            {"imdb", "acc", 0.55, 200, 0.48, 0.62, 0.5, std::nullopt, 30},
            {"imdb", "acc", 0.51, 200, 0.44, 0.58, 0.5, 0.8, 30}});
  store.append_evals("other", {{"val", "loss", 2.0, 1000, kNaN, kNaN, kNaN, std::nullopt, 50}});

  EXPECT_EQ(store.evals("k").size(), 6u);
  const std::vector<EvalRow> losses = store.evals("k", {"val", "loss", false});
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_EQ(losses[0].step, 10);
  EXPECT_EQ(losses[2].step, 40);
  const std::vector<EvalRow> trained = store.evals("k", {"", "", true});
  ASSERT_EQ(trained.size(), 4u);
  for (const EvalRow& e : trained) EXPECT_FALSE(e.theta.has_value()) << e.task << " " << e.metric;
  EXPECT_EQ(store.evals("k", {"imdb", "", false}).size(), 2u);

  // The latest trained val loss is step 30 (the step 40 row is a sweep) and never another run's.
  const std::optional<EvalRow> last = store.last_eval("k", {"val", "loss", true});
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->value, 3.5);
  EXPECT_EQ(last->step, 30);
  const std::optional<EvalRow> last_any = store.last_eval("k", {"val", "loss", false});
  ASSERT_TRUE(last_any.has_value());
  EXPECT_EQ(last_any->step, 40);
  EXPECT_EQ(*last_any->theta, 0.8);
  EXPECT_FALSE(store.last_eval("k", {"val", "acc", true}).has_value());
  EXPECT_FALSE(store.last_eval("missing", {"val", "loss", true}).has_value());

  // Summaries (expert -1) of the last step that has any: step 20, whose per-expert rows and the
  // later step 30 with only per-expert rows do not count.
  store.append_layer_stats("k", {{10, -1, -1, "cv", 0.9},
                                 {20, 1, -1, "cv", 0.5},
                                 {20, -1, -1, "cv", 0.4},
                                 {20, 0, -1, "cv", 0.3},
                                 {20, 0, -1, "maxvio", kNaN},
                                 {20, 0, 2, "load", 0.1},
                                 {30, 0, 1, "load", 0.2}});
  store.append_layer_stats("other", {{50, -1, -1, "cv", 0.1}});
  const std::vector<LayerStatRow> summaries = store.last_layer_summaries("k");
  ASSERT_EQ(summaries.size(), 4u);
  // By layer, then metric.
  EXPECT_EQ(summaries[0].layer, -1);
  EXPECT_EQ(summaries[0].value, 0.4);
  EXPECT_EQ(summaries[1].layer, 0);
  EXPECT_EQ(summaries[1].metric, "cv");
  EXPECT_EQ(summaries[2].metric, "maxvio");
  EXPECT_TRUE(std::isnan(summaries[2].value));
  EXPECT_EQ(summaries[3].layer, 1);
  for (const LayerStatRow& r : summaries) {
    EXPECT_EQ(r.step, 20);
    EXPECT_EQ(r.expert, -1);
  }
  EXPECT_TRUE(store.last_layer_summaries("missing").empty());
}

TEST_F(StoreTest, QueryReturnsTypedCellsAndIsReadOnly) {
  Store store(db_path());
  store.begin_run(make_run("k"));
  store.append_steps("k", make_steps(1, 3));
  const QueryResult r = store.query(
      "SELECT step, loss, run_key, NULL AS empty FROM steps WHERE run_key = ? AND step >= ? "
      "ORDER BY step",
      {std::string("k"), int64_t{2}});
  EXPECT_EQ(r.columns, (std::vector<std::string>{"step", "loss", "run_key", "empty"}));
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(std::get<int64_t>(r.rows[0][0]), 2);
  EXPECT_EQ(std::get<double>(r.rows[0][1]), 9.5);
  EXPECT_EQ(std::get<std::string>(r.rows[0][2]), "k");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.rows[0][3]));
  EXPECT_EQ(to_string(r.rows[1][1]), "9.25");

  EXPECT_THROW(store.query("DELETE FROM steps"), std::runtime_error);
  EXPECT_THROW(store.query("SELECT 1; DELETE FROM steps"), std::runtime_error);
  try {
    store.query("SELECT no_such_column FROM steps");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(db_path()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such column"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, ThrowingTransactionLeavesNoRows) {
  Store store(db_path());
  EXPECT_THROW(store.write([&] {
    store.begin_run(make_run("k"));
    store.append_steps("k", make_steps(0, 5));
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_FALSE(store.find_run("k").has_value());
  EXPECT_TRUE(store.query("SELECT * FROM steps").rows.empty());

  // A failing inner batch rolls back alone; the outer transaction still commits its own rows.
  store.begin_run(make_run("k"));
  {
    Store::Transaction outer(store);
    store.append_steps("k", make_steps(0, 2));
    try {
      store.write([&] {
        store.append_steps("k", make_steps(2, 2));
        throw std::runtime_error("inner");
      });
    } catch (const std::runtime_error&) {
    }
    store.append_steps("k", make_steps(10, 1));
    outer.commit();
  }
  std::vector<int64_t> steps;
  for (const StepRow& s : store.steps("k")) steps.push_back(s.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 10}));

  // The final status goes in with the last batch, or not at all.
  EXPECT_THROW(store.write([&] {
    store.append_steps("k", make_steps(11, 1));
    store.finish_run("k", RunStatus::kDone, 11, 1.0);
    throw std::runtime_error("crash before commit");
  }),
               std::runtime_error);
  EXPECT_EQ(store.find_run("k")->status, RunStatus::kRunning);
  EXPECT_EQ(store.steps("k").size(), 3u);
}

// A child process commits two batches, then dies inside a third transaction. Only the committed
// rows survive and the file opens cleanly.
TEST_F(StoreTest, KilledWriterLeavesOnlyCommittedRows) {
  constexpr int64_t kDoomedRows = 50000;
  for (const bool use_sigkill : {false, true}) {
    SCOPED_TRACE(use_sigkill ? "SIGKILL" : "_exit");
    const std::string key = use_sigkill ? "killed" : "exited";
    {
      Store store(db_path());
      store.begin_run(make_run(key));
    }  // no connection crosses fork()
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        Store store(db_path());
        store.append_steps(key, make_steps(0, 10));
        store.append_steps(key, make_steps(10, 10));
        Store::Transaction doomed(store);
        // Enough rows (several MB) to overflow SQLite's page cache, so uncommitted frames really
        // reach the WAL file before the process dies, not only memory.
        store.append_steps(key, make_steps(20, kDoomedRows));
        store.finish_run(key, RunStatus::kDone, 30, 1.0);
        if (use_sigkill) kill(getpid(), SIGKILL);
        _exit(1);
      } catch (...) {
        _exit(2);  // the parent sees a wrong status and fails
      }
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (use_sigkill) {
      ASSERT_TRUE(WIFSIGNALED(status));
      EXPECT_EQ(WTERMSIG(status), SIGKILL);
    } else {
      ASSERT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 1);
    }

    EXPECT_GT(fs::file_size(db_path() + "-wal"), 1u << 20);  // the dead writer's frames

    Store store(db_path());
    EXPECT_EQ(to_string(store.query("PRAGMA integrity_check").rows.at(0).at(0)), "ok");
    const std::vector<StepRow> steps = store.steps(key);
    ASSERT_EQ(steps.size(), 20u);
    EXPECT_EQ(steps.front().step, 0);
    EXPECT_EQ(steps.back().step, 19);
    const RunRow run = *store.find_run(key);
    EXPECT_EQ(run.status, RunStatus::kRunning);
    EXPECT_EQ(run.status_step, 19);
    store.append_steps(key, make_steps(20, 1));  // and it takes writes again
    EXPECT_EQ(store.steps(key).size(), 21u);
  }
}

// Two connections (as two processes would have) write interleaved batches; one also holds the
// write lock for a while. The busy timeout makes the other wait instead of failing.
TEST_F(StoreTest, TwoConnectionsBothWrite) {
  {
    Store setup(db_path());
    setup.begin_run(make_run("a"));
    setup.begin_run(make_run("b"));
  }
  constexpr int kBatches = 40;
  auto writer = [&](const std::string& key, bool hold_lock) {
    Store store(db_path());
    for (int i = 0; i < kBatches; ++i) {
      store.write([&] {
        store.append_steps(key, make_steps(int64_t{5} * i, 5));
        if (hold_lock && i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      });
    }
  };
  std::exception_ptr error_a;
  std::exception_ptr error_b;
  std::thread a([&] {
    try {
      writer("a", true);
    } catch (...) {
      error_a = std::current_exception();
    }
  });
  std::thread b([&] {
    try {
      writer("b", false);
    } catch (...) {
      error_b = std::current_exception();
    }
  });
  a.join();
  b.join();
  EXPECT_FALSE(error_a);
  EXPECT_FALSE(error_b);
  Store store(db_path());
  EXPECT_EQ(store.steps("a").size(), 5u * kBatches);
  EXPECT_EQ(store.steps("b").size(), 5u * kBatches);
}

TEST_F(StoreTest, UnwritablePathErrorNamesThePath) {
  fs::create_directories(dir_);
  const fs::path blocker = dir_ / "a_file";
  std::ofstream(blocker) << "not a folder";
  // Root ignores permission bits, so use a path under a regular file instead.
  const std::string path = (blocker / "sub" / "results.db").string();
  try {
    Store store(path);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // A folder where the file should be: SQLite's own error, still naming the path.
  try {
    Store store(dir_.string());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, RefusesANewerSchema) {
  { Store store(db_path()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    Store store(db_path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

// --- raw SQL helpers for files the Store would not write itself ---

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

std::string this_host() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// A pid that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

// Writes a lease row by hand (as another process would have left it).
void put_lease(const std::string& path, const std::string& key, const std::string& owner,
               const std::string& host, int64_t pid, double heartbeat_age_s) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  raw_exec(path, "INSERT OR REPLACE INTO leases VALUES ('" + key + "', '" + owner + "', '" + host +
                     "', " + std::to_string(pid) + ", '2025-01-01T00:00:00.000Z', " +
                     std::to_string(now - heartbeat_age_s) + ")");
}

TEST_F(StoreTest, LeaseIsTakenOnceAndRefusedToAnotherOwner) {
  Store mine(db_path());
  Store other(db_path());  // another process, as far as the lease is concerned
  other.set_owner_for_testing("intruder");

  EXPECT_FALSE(mine.lease_of("k"));
  EXPECT_FALSE(mine.acquire_lease("k", Store::kLeaseStaleSeconds));
  EXPECT_FALSE(mine.acquire_lease("k", Store::kLeaseStaleSeconds));  // re-acquire: still mine
  const std::optional<LeaseHolder> lease = other.lease_of("k");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->owner, Store::process_owner());
  EXPECT_EQ(lease->host, this_host());
  EXPECT_EQ(lease->pid, getpid());
  EXPECT_TRUE(lease->alive);
  EXPECT_GE(lease->heartbeat_age_s, 0);
  EXPECT_LT(lease->heartbeat_age_s, 60);
  // The owner names host and pid and a token beyond them.
  EXPECT_EQ(Store::process_owner().rfind(this_host() + ":" + std::to_string(getpid()) + ":", 0),
            0u);

  const std::optional<LeaseHolder> refused = other.acquire_lease("k", Store::kLeaseStaleSeconds);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->owner, Store::process_owner());
  EXPECT_EQ(refused->pid, getpid());
  EXPECT_TRUE(refused->alive);
  EXPECT_FALSE(other.heartbeat_lease("k"));  // not its lease: nothing to refresh...
  other.release_lease("k");                  // ...or to release
  EXPECT_EQ(mine.lease_of("k")->owner, Store::process_owner());
  EXPECT_TRUE(mine.heartbeat_lease("k"));

  // Other keys are independent.
  EXPECT_FALSE(other.acquire_lease("k2", Store::kLeaseStaleSeconds));
  EXPECT_EQ(mine.lease_of("k2")->owner, "intruder");

  mine.release_lease("k");
  EXPECT_FALSE(mine.lease_of("k"));
  EXPECT_FALSE(mine.heartbeat_lease("k"));
  EXPECT_FALSE(other.acquire_lease("k", Store::kLeaseStaleSeconds));
  const std::optional<LeaseHolder> now_refused = mine.acquire_lease("k", Store::kLeaseStaleSeconds);
  ASSERT_TRUE(now_refused);
  EXPECT_EQ(now_refused->owner, "intruder");
}

TEST_F(StoreTest, StaleHeartbeatIsTakenOver) {
  Store mine(db_path());
  Store other(db_path());
  other.set_owner_for_testing("intruder");
  ASSERT_FALSE(other.acquire_lease("k", Store::kLeaseStaleSeconds));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // With stale_after_s = 0 any heartbeat in the past is too old.
  EXPECT_FALSE(mine.acquire_lease("k", 0));
  EXPECT_EQ(mine.lease_of("k")->owner, Store::process_owner());
  EXPECT_FALSE(other.heartbeat_lease("k"));  // the old holder learns it lost the lease

  // A backdated row of a live process on another host: its pid cannot be checked from here,
  // so only the heartbeat decides.
  put_lease(db_path(), "remote", "far:1:abc", "far-away-host", getpid(), 10);
  const std::optional<LeaseHolder> remote = mine.acquire_lease("remote", 60);
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->owner, "far:1:abc");
  EXPECT_EQ(remote->host, "far-away-host");
  EXPECT_NEAR(remote->heartbeat_age_s, 10, 5);
  put_lease(db_path(), "remote", "far:1:abc", "far-away-host", getpid(), 1000);
  const std::optional<LeaseHolder> old = mine.lease_of("remote");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->alive);  // 1000 s > kLeaseStaleSeconds
  EXPECT_FALSE(mine.acquire_lease("remote", 60));
  EXPECT_EQ(mine.lease_of("remote")->owner, Store::process_owner());

  // heartbeat_lease makes an old heartbeat fresh again.
  raw_exec(db_path(), "UPDATE leases SET heartbeat_at = heartbeat_at - 1000 WHERE run_key = 'k'");
  EXPECT_FALSE(mine.lease_of("k")->alive);
  EXPECT_TRUE(mine.heartbeat_lease("k"));
  EXPECT_TRUE(mine.lease_of("k")->alive);
  EXPECT_LT(mine.lease_of("k")->heartbeat_age_s, 60);
}

TEST_F(StoreTest, DeadPidOnThisHostIsTakenOver) {
  Store mine(db_path());
  const pid_t gone = dead_pid();
  ASSERT_GT(gone, 0);
  put_lease(db_path(), "k", "crashed", this_host(), gone, 0);  // a fresh heartbeat
  const std::optional<LeaseHolder> before = mine.lease_of("k");
  ASSERT_TRUE(before);
  EXPECT_FALSE(before->alive);
  EXPECT_EQ(before->pid, gone);
  EXPECT_FALSE(mine.acquire_lease("k", Store::kLeaseStaleSeconds));
  const std::optional<LeaseHolder> after = mine.lease_of("k");
  EXPECT_EQ(after->owner, Store::process_owner());
  EXPECT_EQ(after->pid, getpid());
  EXPECT_TRUE(after->alive);
  // The same dead pid on another host proves nothing: refused while its heartbeat is fresh.
  put_lease(db_path(), "k2", "elsewhere", "far-away-host", gone, 0);
  EXPECT_TRUE(mine.acquire_lease("k2", Store::kLeaseStaleSeconds));
}

TEST_F(StoreTest, DeletingARunDeletesItsLease) {
  Store store(db_path());
  store.begin_run(make_run("k"));
  ASSERT_FALSE(store.acquire_lease("k", Store::kLeaseStaleSeconds));
  store.delete_run("k");
  EXPECT_FALSE(store.lease_of("k"));
  EXPECT_FALSE(store.find_run("k"));
}

// Two processes race for one lease, 50 rounds each: while a process holds it, it owns a marker
// file created with O_EXCL, so two holders at once would show as a failed create.
TEST_F(StoreTest, TwoProcessesNeverHoldOneLeaseAtOnce) {
  { Store setup(db_path()); }  // no connection crosses fork()
  const std::string marker = (dir_ / "holder").string();
  const std::string wins_file = (dir_ / "wins").string();
  constexpr int kRounds = 50;
  std::vector<pid_t> children;
  for (int c = 0; c < 2; ++c) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        Store store(db_path());
        const std::string me = Store::process_owner();
        int wins = 0;
        for (int round = 0; round < kRounds; ++round) {
          const std::optional<LeaseHolder> holder =
              store.acquire_lease("race", Store::kLeaseStaleSeconds);
          if (holder) {
            if (holder->owner == me || !holder->alive) code = 3;  // refused by itself?
            std::this_thread::sleep_for(std::chrono::microseconds(300));
            continue;
          }
          ++wins;
          const int fd = open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
          if (fd < 0) {
            code = 4;  // the other process holds it too
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            close(fd);
            unlink(marker.c_str());
          }
          store.release_lease("race");  // after the marker is gone
        }
        std::ofstream(wins_file, std::ios::app) << wins << "\n";
      } catch (...) {
        code = 2;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);  // 2: error, 3: wrong holder, 4: two holders at once
  }
  std::ifstream in(wins_file);
  int total = 0;
  int n = 0;
  for (int wins = 0; in >> wins; ++n) total += wins;
  EXPECT_EQ(n, 2);
  EXPECT_GT(total, 0);
  EXPECT_LE(total, 2 * kRounds);
  Store store(db_path());
  EXPECT_FALSE(store.lease_of("race"));  // both released
}

// A version-1 file (today's schema minus the leases table) is upgraded in place by a
// read-write open, keeping its rows; a read-only open reads it as it is.
TEST_F(StoreTest, UpgradesAVersionOneFileInPlace) {
  {
    Store store(db_path());
    store.begin_run(make_run("old"));
    store.append_steps("old", make_steps(0, 5));
  }
  raw_exec(db_path(), "DROP TABLE leases; PRAGMA user_version = 1");
  {
    Store reader(db_path(), Store::Mode::kReadOnly);
    EXPECT_EQ(reader.schema_version(), 1);
    EXPECT_EQ(reader.find_run("old")->run_key, "old");
    EXPECT_FALSE(reader.lease_of("old"));  // no leases table: none known
  }
  {
    Store reader(db_path(), Store::Mode::kReadOnly);
    EXPECT_EQ(reader.schema_version(), 1);  // the read-only open did not upgrade it
  }
  Store store(db_path());
  EXPECT_EQ(store.schema_version(), 2);
  EXPECT_EQ(to_string(store.query("PRAGMA user_version").rows.at(0).at(0)), "2");
  EXPECT_EQ(store.steps("old").size(), 5u);
  EXPECT_EQ(store.find_run("old")->notes, "first");
  EXPECT_FALSE(store.acquire_lease("old", Store::kLeaseStaleSeconds));
  EXPECT_EQ(store.lease_of("old")->owner, Store::process_owner());
  Store again(db_path());  // a second open of the upgraded file changes nothing
  EXPECT_EQ(again.steps("old").size(), 5u);
  EXPECT_EQ(again.lease_of("old")->owner, Store::process_owner());
}

// --- read-only opening ---

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(StoreTest, ReadOnlyOpenReadsAndNeverWrites) {
  {
    Store store(db_path());
    store.begin_run(make_run("k"));
  }
  Store writer(db_path());
  Store reader(db_path(), Store::Mode::kReadOnly);
  EXPECT_EQ(reader.mode(), Store::Mode::kReadOnly);
  EXPECT_EQ(reader.schema_version(), Store::kSchemaVersion);
  EXPECT_EQ(reader.runs().size(), 1u);
  // A live writer's commits are visible (no snapshot of the file at open).
  writer.begin_run(make_run("k2"));
  ASSERT_FALSE(writer.acquire_lease("k2", Store::kLeaseStaleSeconds));
  EXPECT_EQ(reader.runs().size(), 2u);
  EXPECT_EQ(reader.lease_of("k2")->owner, Store::process_owner());
  const std::string error = error_of([&] { reader.begin_run(make_run("k3")); });
  EXPECT_NE(error.find(db_path()), std::string::npos) << error;
  EXPECT_FALSE(writer.find_run("k3"));
}

TEST_F(StoreTest, ReadOnlyOpenRefusesMissingEmptyForeignAndNewerFiles) {
  const std::string missing = (dir_ / "nope" / "missing.db").string();
  std::string error = error_of([&] { Store s(missing, Store::Mode::kReadOnly); });
  EXPECT_NE(error.find("no database at " + missing), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(dir_ / "nope"));

  fs::create_directories(dir_);
  error = error_of([&] { Store s(dir_.string(), Store::Mode::kReadOnly); });
  EXPECT_NE(error.find("no database at " + dir_.string()), std::string::npos) << error;

  // An empty file stays empty: no schema, no journal, no WAL.
  const std::string empty = (dir_ / "empty.db").string();
  std::ofstream(empty).close();
  error = error_of([&] { Store s(empty, Store::Mode::kReadOnly); });
  EXPECT_NE(error.find(empty + " is not a moebench database"), std::string::npos) << error;
  EXPECT_EQ(fs::file_size(empty), 0u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  const std::string text = (dir_ / "notes.txt").string();
  std::ofstream(text) << "not a database, just some text that is long enough for a header\n";
  error = error_of([&] { Store s(text, Store::Mode::kReadOnly); });
  EXPECT_NE(error.find(text + " is not a moebench database"), std::string::npos) << error;

  // Another program's SQLite database: refused by both modes, and left as it was.
  const std::string foreign = (dir_ / "foreign.db").string();
  raw_exec(foreign, "CREATE TABLE songs (title TEXT)");
  error = error_of([&] { Store s(foreign, Store::Mode::kReadOnly); });
  EXPECT_NE(error.find(foreign + " is not a moebench database"), std::string::npos) << error;
  error = error_of([&] { Store s(foreign); });
  EXPECT_NE(error.find(foreign + " is not a moebench database"), std::string::npos) << error;
  {
    Store check(empty);  // a read-write open does make a store of an empty file
    const QueryResult tables = check.query("SELECT count(*) FROM sqlite_master");
    EXPECT_GT(std::get<int64_t>(tables.rows.at(0).at(0)), 0);
  }

  { Store store(db_path()); }
  raw_exec(db_path(), "PRAGMA user_version = 99");
  error = error_of([&] { Store s(db_path(), Store::Mode::kReadOnly); });
  EXPECT_NE(error.find("schema version 99"), std::string::npos) << error;
  EXPECT_NE(error.find(db_path()), std::string::npos) << error;
}

// chmod 0444 file, 0555 folder: still readable, and nothing is left beside the file. Root
// ignores permission bits, so there the permission part is skipped (run the binary as another
// user to exercise it).
TEST_F(StoreTest, ReadOnlyOpenReadsReadOnlyFilesAndFolders) {
  {
    Store store(db_path());
    store.begin_run(make_run("k"));
    store.append_steps("k", make_steps(0, 3));
  }
  if (geteuid() == 0) GTEST_SKIP() << "root ignores permission bits";
  const fs::path folder = fs::path(db_path()).parent_path();
  auto listing = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(folder)) names.insert(e.path().filename());
    return names;
  };
  const std::set<std::string> before = listing();
  ASSERT_EQ(before, std::set<std::string>{"results.db"});

  ASSERT_EQ(chmod(db_path().c_str(), 0444), 0);
  {
    Store reader(db_path(), Store::Mode::kReadOnly);
    EXPECT_EQ(reader.steps("k").size(), 3u);
  }
  EXPECT_EQ(listing(), before);

  ASSERT_EQ(chmod(db_path().c_str(), 0644), 0);
  ASSERT_EQ(chmod(folder.c_str(), 0555), 0);
  std::string error;
  size_t steps = 0;
  try {
    Store reader(db_path(), Store::Mode::kReadOnly);
    steps = reader.steps("k").size();
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  chmod(folder.c_str(), 0755);  // before any assertion, so TearDown can delete it
  EXPECT_EQ(error, "");
  EXPECT_EQ(steps, 3u);
  EXPECT_EQ(listing(), before);
}

}  // namespace
}  // namespace moebench
