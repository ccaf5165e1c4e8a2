// SQLite results store: runs, per-step metrics, per-layer balance stats, evals, kernel benchmarks.
// Spec: shared/DESIGN.md "Configs and the store" (flat llama-bench-style tables, WAL, one
// transaction per write batch). Torch-free: callers hand it plain numbers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace moebench {

// Missing numbers (no CI for a perplexity, a NaN loss) are NaN in these rows and NULL in the db:
// SQLite cannot store NaN.

enum class RunStatus { kRunning, kDone, kDiverged, kFailed, kInterrupted };
std::string to_string(RunStatus status);              // "running", "done", ...
RunStatus parse_run_status(const std::string& text);  // throws std::invalid_argument

struct RunRow {
  std::string run_key;
  std::string config_json;
  std::string method;
  std::string size;  // named config the run came from ("S", "micro", or a file name)
  int64_t seed = 0;
  std::string commit;  // column git_commit ("commit" is an SQL keyword)
  bool dirty = false;
  std::string torch_version;
  std::string device;
  std::string backend;
  RunStatus status = RunStatus::kRunning;
  int64_t status_step = 0;  // last step written (append_steps) or given to finish_run
  // ISO-8601 UTC ("2025-01-31T12:00:00.000Z"), set by the store; "" = not yet.
  std::string created_at;
  std::string started_at;
  std::string finished_at;
  double wall_s = 0;
  int64_t tokens = 0;
  std::string notes;
};

struct StepRow {
  int64_t step = 0;
  int64_t tokens = 0;  // cumulative training tokens after this step
  double loss = 0;     // total: lm + aux terms
  double lm_loss = 0;
  double aux_loss = 0;
  double lambda = 0;   // the method's balance coefficient (RF / ReMoE lambda; NaN if none)
  double density = 0;  // active (token, expert) pairs / (tokens * experts)
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double elapsed_s = 0;
};

struct LayerStatRow {
  int64_t step = 0;
  int layer = 0;
  int expert = -1;  // -1 = the layer summary
  std::string metric;
  double value = 0;
};

struct EvalRow {
  std::string task;  // "val" for validation loss/perplexity, else the zero-shot task name
  std::string metric;
  double value = 0;
  int64_t n = 0;
  double ci_low = 0;  // 95% interval; NaN = none
  double ci_high = 0;
  double chance = 0;            // NaN = not a classification metric
  std::optional<double> theta;  // eval-time threshold (RF sweep); nullopt = the trained one
  int64_t step = 0;
};

struct KernelBenchRow {
  std::string name;
  std::string shape;  // google-benchmark style: "tokens:4096/experts:12"
  std::string backend;
  std::string dtype;
  std::string metric;
  double value = 0;
  std::string commit;
  std::string device;
  std::string created_at;  // "" = now
};

struct RunFilter {  // empty = any
  std::string method;
  std::string size;
  std::optional<RunStatus> status;
};

// One cell of a query result.
using Value = std::variant<std::monostate, int64_t, double, std::string>;
std::string to_string(const Value& v);  // NULL -> "", doubles shortest round-trip

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

// One connection to one database file. Not thread-safe: one Store per thread (any number of
// Stores, threads and processes may share the file; the busy timeout serialises writers).
// Every error is a std::runtime_error naming the database path and SQLite's message.
class Store {
 public:
  static constexpr int kSchemaVersion = 1;  // PRAGMA user_version
  static constexpr int kBusyTimeoutMs = 10000;

  // Opens (creating the parent folder, the file and the schema as needed).
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;

  // All writes in its scope commit together or not at all: commit() ends it, and destruction
  // without commit() (an exception, an early return) rolls back. Nests (inner ones are
  // savepoints). The outermost takes the write lock at once (BEGIN IMMEDIATE), so two writers
  // wait on the busy timeout instead of failing on a lock upgrade.
  class Transaction {
   public:
    explicit Transaction(Store& store);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

   private:
    Store& store_;
    int depth_;
    bool open_ = true;
  };

  // Runs fn() in one transaction; an exception rolls it back and propagates.
  template <class Fn>
  void write(Fn&& fn) {
    Transaction transaction(*this);
    fn();
    transaction.commit();
  }

  // Inserts the run as 'running', or, when the key exists (a resume), sets it back to
  // 'running' with the new started_at, commit, device and versions. Throws if the stored run is
  // 'done' (delete it first) or its config differs (a hash collision or a bug). Returns the row.
  RunRow begin_run(const RunRow& run);
  // Upserts (a resumed run rewrites the steps after its checkpoint) and advances status_step and
  // tokens of the run.
  void append_steps(const std::string& run_key, const std::vector<StepRow>& steps);
  void append_layer_stats(const std::string& run_key, const std::vector<LayerStatRow>& stats);
  // Upserts on (task, metric, step, theta).
  void append_evals(const std::string& run_key, const std::vector<EvalRow>& evals);
  // Final status (not kRunning), the step reached and the wall time; tokens < 0 leaves them.
  // Call it after the run's last write (or inside the same transaction): 'done' means complete.
  void finish_run(const std::string& run_key, RunStatus status, int64_t step, double wall_s,
                  int64_t tokens = -1);
  void set_notes(const std::string& run_key, const std::string& notes);
  // Deletes the run and all its rows (steps, layer stats, evals).
  void delete_run(const std::string& run_key);

  std::optional<RunRow> find_run(const std::string& run_key);
  std::vector<RunRow> runs(const RunFilter& filter = {});             // by created_at, run_key
  std::vector<StepRow> steps(const std::string& run_key);             // by step
  std::vector<LayerStatRow> layer_stats(const std::string& run_key);  // by step, layer, expert
  std::vector<EvalRow> evals(const std::string& run_key);  // by step, task, metric, theta

  void insert_kernel_bench(const std::vector<KernelBenchRow>& rows);
  std::vector<KernelBenchRow> kernel_bench(const std::string& name = "");  // "" = all

  // Appends key/value pairs stamped with the time (the env table keeps history).
  void record_env(const std::map<std::string, std::string>& values);
  std::map<std::string, std::string> env();  // latest value of each key

  // One read-only SQL statement with ?-parameters, for the table and report commands.
  QueryResult query(const std::string& sql, const std::vector<Value>& params = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench
