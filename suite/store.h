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
// The one "done" rule: a finished run is never trained again (done, or diverged: a rerun would
// diverge the same way); running, interrupted and failed runs resume from their checkpoint.
bool is_finished(RunStatus status);

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

// A run with every row that belongs to it: what `moebench merge`, `export` and `import` move
// between stores (suite/exchange.h). Leases are not part of a run's record.
struct RunRecord {
  RunRow run;
  std::vector<StepRow> steps;
  std::vector<LayerStatRow> layer_stats;
  std::vector<EvalRow> evals;
};

// One row of the env table, which keeps history: the same key at several times.
struct EnvRow {
  std::string key;
  std::string value;
  std::string recorded_at;  // ISO-8601 UTC like RunRow's timestamps
};

// Which evals rows of a run to read; "" matches any task or metric.
struct EvalFilter {
  std::string task;
  std::string metric;
  bool trained_theta_only = false;  // only rows at the trained threshold, not the θ sweep
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

// Who holds a run's lease (Store::acquire_lease, Store::lease_of).
struct LeaseHolder {
  std::string owner;  // Store::process_owner() of the holder: "host:pid:token"
  std::string host;
  int64_t pid = 0;
  double heartbeat_age_s = 0;  // seconds since its last heartbeat (NaN: none recorded)
  bool alive = false;          // not stale: see Store::acquire_lease
};

// One connection to one database file. Not thread-safe: one Store per thread (any number of
// Stores, threads and processes may share the file; the busy timeout serialises writers).
// Every error is a std::runtime_error naming the database path and SQLite's message.
class Store {
 public:
  // PRAGMA user_version. 2 added the leases table; a version-1 file is upgraded in place when
  // opened for writing (read-only opens leave it as it is).
  static constexpr int kSchemaVersion = 2;
  static constexpr int kBusyTimeoutMs = 10000;
  // A lease whose heartbeat is older than this is stale (lease_of's `alive`): trainers
  // heartbeat far more often, so two minutes of silence means a hung or vanished process.
  static constexpr double kLeaseStaleSeconds = 120;

  enum class Mode {
    kReadWrite,  // creates the parent folder, the file and the schema as needed; upgrades it
    // Never creates or writes anything, so reports work on read-only files and folders and a
    // mistyped path or a stray empty file stays as it was. Throws when the file is missing
    // ("no database at PATH"), is not a moebench database, or has a newer schema.
    kReadOnly,
  };

  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;
  Mode mode() const;
  // The file's schema version as opened: kSchemaVersion, or an older one in read-only mode
  // (then tables added since, such as leases, may be missing: lease_of returns nullopt).
  int schema_version() const;

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
  // Deletes the run and all its rows (steps, layer stats, evals) and its lease.
  void delete_run(const std::string& run_key);

  std::optional<RunRow> find_run(const std::string& run_key);
  std::vector<RunRow> runs(const RunFilter& filter = {});             // by created_at, run_key
  std::vector<StepRow> steps(const std::string& run_key);             // by step
  std::vector<LayerStatRow> layer_stats(const std::string& run_key);  // by step, layer, expert
  // By step, task, metric, theta.
  std::vector<EvalRow> evals(const std::string& run_key, const EvalFilter& filter = {});
  // The last row evals(run_key, filter) would return (its latest step); nullopt when none.
  std::optional<EvalRow> last_eval(const std::string& run_key, const EvalFilter& filter);
  // The layer summaries (expert = -1) of the run's last step that has any, by layer and metric:
  // the balance figures a finished run ends with.
  std::vector<LayerStatRow> last_layer_summaries(const std::string& run_key);

  // The run with all its rows (in the orders of steps(), layer_stats() and evals()); nullopt
  // when the key is unknown.
  std::optional<RunRecord> run_record(const std::string& run_key);
  // Inserts a run exactly as another store holds it (merge, import): every column of the row
  // as given (status, timestamps and counters are neither stamped nor advanced; an empty
  // created_at alone is stamped now) and all its rows, in one transaction. Throws when the key
  // exists already or two rows share a key.
  void insert_run_record(const RunRecord& record);

  void insert_kernel_bench(const std::vector<KernelBenchRow>& rows);
  std::vector<KernelBenchRow> kernel_bench(const std::string& name = "");  // "" = all

  // Appends key/value pairs stamped with the time (the env table keeps history).
  void record_env(const std::map<std::string, std::string>& values);
  std::map<std::string, std::string> env();  // latest value of each key
  // Every env row, by recorded_at and key: the history env() condenses.
  std::vector<EnvRow> env_rows();
  // Inserts rows with their own recorded_at (merge, import), in one transaction; throws when a
  // (key, recorded_at) pair is stored already.
  void insert_env_rows(const std::vector<EnvRow>& rows);

  // --- leases: one process trains a run at a time ---
  // A lease row names the process that trains a run. The trainer takes it before begin_run,
  // heartbeats it while training and releases it at the end; a crashed trainer leaves a row
  // that goes stale, so the next trainer can take over without a manual unlock.

  // This process's identity: "host:pid:token" with a random token, so a new process that
  // happens to get a dead holder's pid is still a different owner. Regenerated after fork().
  static std::string process_owner();
  // Tests only: act as another owner (same host and pid), as a second process would.
  void set_owner_for_testing(const std::string& owner);

  // Takes the run's lease, in one write transaction, when nobody holds it, when this owner
  // already holds it (then it only heartbeats), or when the holder is stale: it runs on this
  // host and its pid is gone, or its heartbeat is older than stale_after_s (the only test
  // possible for another host's process). Returns nullopt when this owner holds the lease
  // now, else the live holder, for the caller to name.
  std::optional<LeaseHolder> acquire_lease(const std::string& run_key, double stale_after_s);
  // Refreshes the heartbeat if this owner holds the lease; false when it does not (never
  // taken, released, or taken over after going stale), so the caller can stop training.
  bool heartbeat_lease(const std::string& run_key);
  // Deletes the lease if this owner holds it (another owner's lease is left alone).
  void release_lease(const std::string& run_key);
  // The run's lease, if any; alive by the acquire_lease rule with kLeaseStaleSeconds.
  std::optional<LeaseHolder> lease_of(const std::string& run_key);

  // One read-only SQL statement with ?-parameters, for ad-hoc questions the typed reads above
  // do not answer.
  QueryResult query(const std::string& sql, const std::vector<Value>& params = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench
