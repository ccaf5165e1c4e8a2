// SQLite results store: schema, transactions, prepared statements, typed rows and raw queries.
// Spec: shared/DESIGN.md "Configs and the store".
#include "suite/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace moebench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Millisecond ISO-8601 UTC, computed by SQLite so every writer (any process) uses one clock.
constexpr const char* kNowSql = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

// Flat tables, one row per fact, so `moebench table` and plain sqlite3 can group by any column.
// "commit" is an SQL keyword, hence git_commit. Rows of a run go when the run goes (CASCADE).
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE runs (
  run_key       TEXT PRIMARY KEY NOT NULL,
  config_json   TEXT NOT NULL,
  method        TEXT NOT NULL,
  size          TEXT NOT NULL,
  seed          INTEGER NOT NULL,
  git_commit    TEXT NOT NULL DEFAULT '',
  dirty         INTEGER NOT NULL DEFAULT 0,
  torch_version TEXT NOT NULL DEFAULT '',
  device        TEXT NOT NULL DEFAULT '',
  backend       TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL
                CHECK (status IN ('running', 'done', 'diverged', 'failed', 'interrupted')),
  status_step   INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL,
  started_at    TEXT,
  finished_at   TEXT,
  wall_s        REAL NOT NULL DEFAULT 0,
  tokens        INTEGER NOT NULL DEFAULT 0,
  notes         TEXT NOT NULL DEFAULT ''
);
CREATE TABLE steps (
  run_key      TEXT NOT NULL REFERENCES runs (run_key) ON DELETE CASCADE,
  step         INTEGER NOT NULL,
  tokens       INTEGER,
  loss         REAL,
  lm_loss      REAL,
  aux_loss     REAL,
  lambda       REAL,
  density      REAL,
  lr           REAL,
  grad_norm    REAL,
  tokens_per_s REAL,
  elapsed_s    REAL,
  PRIMARY KEY (run_key, step)
) WITHOUT ROWID;
CREATE TABLE layer_stats (
  run_key TEXT NOT NULL REFERENCES runs (run_key) ON DELETE CASCADE,
  step    INTEGER NOT NULL,
  layer   INTEGER NOT NULL,
  expert  INTEGER NOT NULL,
  metric  TEXT NOT NULL,
  value   REAL,
  PRIMARY KEY (run_key, step, layer, expert, metric)
) WITHOUT ROWID;
CREATE TABLE evals (
  run_key TEXT NOT NULL REFERENCES runs (run_key) ON DELETE CASCADE,
  task    TEXT NOT NULL,
  metric  TEXT NOT NULL,
  value   REAL,
  n       INTEGER,
  ci_low  REAL,
  ci_high REAL,
  chance  REAL,
  theta   REAL,
  step    INTEGER NOT NULL
);
-- NULL theta (the trained threshold) must count as one value for the upsert, hence ifnull.
CREATE UNIQUE INDEX evals_key ON evals (run_key, task, metric, step, ifnull(theta, 'trained'));
CREATE TABLE kernel_bench (
  name       TEXT NOT NULL,
  shape      TEXT NOT NULL,
  backend    TEXT NOT NULL,
  dtype      TEXT NOT NULL,
  metric     TEXT NOT NULL,
  value      REAL,
  git_commit TEXT NOT NULL,
  device     TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX kernel_bench_name ON kernel_bench (name, shape, backend);
CREATE TABLE env (
  key         TEXT NOT NULL,
  value       TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (key, recorded_at)
);
)sql";

// Version 2. IF NOT EXISTS: the same statement creates it in a new file and adds it to a
// version-1 file. No foreign key to runs: the trainer takes the lease before begin_run
// creates the row (delete_run removes it explicitly).
constexpr const char* kLeasesSql = R"sql(
CREATE TABLE IF NOT EXISTS leases (
  run_key      TEXT PRIMARY KEY NOT NULL,
  owner        TEXT NOT NULL,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  acquired_at  TEXT NOT NULL,
  heartbeat_at REAL NOT NULL
);
)sql";

constexpr const char* kRunColumns =
    "run_key, config_json, method, size, seed, git_commit, dirty, torch_version, device, "
    "backend, status, status_step, created_at, started_at, finished_at, wall_s, tokens, notes";

std::string format_double(double x) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

// kill(pid, 0) probes without signalling; EPERM means it exists but belongs to another user.
// pid <= 0 would address process groups, so such a row counts as dead.
bool pid_alive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

// The one staleness rule of acquire_lease and lease_of. A NaN age (no heartbeat) is stale.
bool lease_stale(const LeaseHolder& h, double stale_after_s) {
  if (h.host == host_name() && !pid_alive(h.pid)) return true;
  return !(h.heartbeat_age_s <= stale_after_s);
}

// "file:" URI of a path (for immutable=1): only the characters URIs give a meaning to are
// escaped.
std::string file_uri(const std::string& path) {
  std::string out = "file:";
  for (const char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// SQLite's message, with the operating system's reason when there is one: "disk I/O error" is
// SQLite's word for a full disk, "No space left on device" the one a user can act on.
std::string sqlite_message(sqlite3* handle, const char* message) {
  std::string text = message != nullptr ? message : "unknown error";
  const int os_errno = handle != nullptr ? sqlite3_system_errno(handle) : 0;
  if (os_errno != 0) text += std::string(" (") + std::strerror(os_errno) + ")";
  return text;
}

// The connection and its name, for error messages.
struct Db {
  std::string path;
  sqlite3* handle = nullptr;

  [[noreturn]] void fail(const std::string& what) const {
    const std::string message =
        handle != nullptr ? sqlite_message(handle, sqlite3_errmsg(handle)) : "out of memory";
    throw std::runtime_error("store: " + path + ": " + what + ": " + message);
  }

  void exec(const std::string& sql) const {
    char* error = nullptr;
    if (sqlite3_exec(handle, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = sqlite_message(handle, error);
      sqlite3_free(error);
      throw std::runtime_error("store: " + path + ": " + sql.substr(0, 40) + ": " + message);
    }
  }
};

// A borrowed prepared statement: binds in order, steps, reads columns; on destruction it is reset
// so the cache can hand it out again.
class Statement {
 public:
  Statement(const Db& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  template <class... Args>
  Statement& bind(const Args&... args) {
    sqlite3_reset(stmt_);
    int index = 0;
    (bind_one(++index, args), ...);
    return *this;
  }

  // One parameter by its 1-based index (for parameter lists known only at run time).
  Statement& bind_at(int index, const Value& value) {
    bind_one(index, value);
    return *this;
  }

  // True while a row is ready; false once the statement is done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(sqlite3_sql(stmt_));
  }
  void run() {
    while (step()) {
    }
  }

  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return is_null(col) ? kNaN : sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, sqlite3_column_bytes(stmt_, col)) : std::string();
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) db_.fail(std::string("bind: ") + sqlite3_sql(stmt_));
  }
  void bind_one(int i, std::nullptr_t) { check(sqlite3_bind_null(stmt_, i)); }
  void bind_one(int i, int64_t v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind_one(int i, int v) { bind_one(i, static_cast<int64_t>(v)); }
  void bind_one(int i, bool v) { bind_one(i, static_cast<int64_t>(v)); }
  void bind_one(int i, double v) {  // NaN would become NULL anyway; say so explicitly
    check(std::isnan(v) ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_double(stmt_, i, v));
  }
  void bind_one(int i, const std::optional<double>& v) {
    if (v)
      bind_one(i, *v);
    else
      bind_one(i, nullptr);
  }
  void bind_one(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_one(int i, const char* v) { bind_one(i, std::string(v)); }
  void bind_one(int i, const Value& v) {
    std::visit(
        [&](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) {
            bind_one(i, nullptr);
          } else {
            bind_one(i, x);
          }
        },
        v);
  }

  const Db& db_;
  sqlite3_stmt* stmt_;
};

RunRow read_run(const Statement& s) {
  RunRow r;
  r.run_key = s.text(0);
  r.config_json = s.text(1);
  r.method = s.text(2);
  r.size = s.text(3);
  r.seed = s.int64(4);
  r.commit = s.text(5);
  r.dirty = s.int64(6) != 0;
  r.torch_version = s.text(7);
  r.device = s.text(8);
  r.backend = s.text(9);
  r.status = parse_run_status(s.text(10));
  r.status_step = s.int64(11);
  r.created_at = s.text(12);
  r.started_at = s.text(13);
  r.finished_at = s.text(14);
  r.wall_s = s.real(15);
  r.tokens = s.int64(16);
  r.notes = s.text(17);
  return r;
}

constexpr const char* kLayerStatColumns = "step, layer, expert, metric, value";

LayerStatRow read_layer_stat(const Statement& s) {
  return {s.int64(0), static_cast<int>(s.int64(1)), static_cast<int>(s.int64(2)), s.text(3),
          s.real(4)};
}

constexpr const char* kEvalColumns = "task, metric, value, n, ci_low, ci_high, chance, theta, step";
// The rows EvalFilter selects; parameters: run_key, task, metric, trained_theta_only.
constexpr const char* kEvalFilterSql =
    " FROM evals WHERE run_key = ?1 AND (?2 = '' OR task = ?2) AND (?3 = '' OR metric = ?3) AND "
    "(?4 = 0 OR theta IS NULL)";

EvalRow read_eval(const Statement& s) {
  EvalRow e;
  e.task = s.text(0);
  e.metric = s.text(1);
  e.value = s.real(2);
  e.n = s.int64(3);
  e.ci_low = s.real(4);
  e.ci_high = s.real(5);
  e.chance = s.real(6);
  if (!s.is_null(7)) e.theta = s.real(7);
  e.step = s.int64(8);
  return e;
}

}  // namespace

struct Store::Impl {
  Db db;
  Mode mode = Mode::kReadWrite;
  int schema_version = 0;
  bool has_leases = false;     // false only for a version-1 file opened read-only
  std::string owner_override;  // set_owner_for_testing
  int depth = 0;               // open Transactions
  std::unordered_map<std::string, sqlite3_stmt*> cache;

  std::string owner() const {
    return owner_override.empty() ? Store::process_owner() : owner_override;
  }

  ~Impl() {
    for (auto& [sql, stmt] : cache) sqlite3_finalize(stmt);
    sqlite3_close_v2(db.handle);
  }

  // Prepared once per connection; Statement resets it after use.
  Statement prepare(const std::string& sql) {
    auto it = cache.find(sql);
    if (it == cache.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db.handle, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
        db.fail("prepare: " + sql);
      }
      it = cache.emplace(sql, stmt).first;
    }
    return Statement(db, it->second);
  }
};

std::string to_string(RunStatus status) {
  switch (status) {
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kDone:
      return "done";
    case RunStatus::kDiverged:
      return "diverged";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

bool is_finished(RunStatus status) {
  return status == RunStatus::kDone || status == RunStatus::kDiverged;
}

RunStatus parse_run_status(const std::string& text) {
  for (RunStatus s : {RunStatus::kRunning, RunStatus::kDone, RunStatus::kDiverged,
                      RunStatus::kFailed, RunStatus::kInterrupted}) {
    if (to_string(s) == text) return s;
  }
  throw std::invalid_argument("unknown run status '" + text + "'");
}

std::string to_string(const Value& v) {
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return format_double(std::get<double>(v));
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  return "";
}

// --- opening ------------------------------------------------------------------------------------

namespace {

// The file's user_version; a file SQLite cannot read (not a database at all) is reported as
// not ours rather than with SQLite's bare "file is not a database".
int64_t read_user_version(Db& db) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db.handle, "PRAGMA user_version", -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const int64_t version = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return version;
  }
  const std::string message = sqlite_message(db.handle, sqlite3_errmsg(db.handle));
  const int code = sqlite3_errcode(db.handle);
  sqlite3_finalize(stmt);
  if (code == SQLITE_NOTADB) {
    throw std::runtime_error("store: " + db.path + " is not a moebench database (" + message + ")");
  }
  throw std::runtime_error("store: " + db.path + ": PRAGMA user_version: " + message);
}

bool has_table(Db& db, const char* name) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.handle, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    db.fail("sqlite_master");
  }
  sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) db.fail("sqlite_master");
  return rc == SQLITE_ROW;
}

bool has_any_table(Db& db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.handle, "SELECT 1 FROM sqlite_master LIMIT 1", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    db.fail("sqlite_master");
  }
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) db.fail("sqlite_master");
  return rc == SQLITE_ROW;
}

[[noreturn]] void throw_newer(const std::string& path, int64_t found) {
  throw std::runtime_error("store: " + path + ": schema version " + std::to_string(found) +
                           " is newer than this build's " + std::to_string(Store::kSchemaVersion) +
                           "; update moebench");
}

[[noreturn]] void throw_not_ours(const std::string& path) {
  throw std::runtime_error("store: " + path +
                           " is not a moebench database (no moebench schema version)");
}

// Whether to read through SQLite's immutable mode: when there is no WAL file (no writer is
// connected: a writer in WAL mode keeps one while connected) and we cannot write the file or
// its folder. A normal read-only open would then fail (it must create the -shm file beside the
// database) or leave -wal/-shm files there, with the file's read-only mode; immutable reads
// the file as it is, which is exact while no writer connects.
bool read_immutable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path + "-wal", ec)) return false;
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (folder.empty()) folder = ".";
  return access(path.c_str(), W_OK) != 0 || access(folder.c_str(), W_OK) != 0;
}

}  // namespace

Store::Store(const std::string& path, Mode mode) : impl_(std::make_unique<Impl>()) {
  Db& db = impl_->db;
  db.path = path;
  impl_->mode = mode;

  if (mode == Mode::kReadOnly) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw std::runtime_error("store: no database at " + path +
                               (std::filesystem::exists(path, ec)
                                    ? " (it is not a file)"
                                    : " (read-only opening never creates one)"));
    }
    const bool immutable = read_immutable(path);
    const std::string name = immutable ? file_uri(path) + "?immutable=1" : path;
    if (sqlite3_open_v2(name.c_str(), &db.handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
                        nullptr) != SQLITE_OK) {
      db.fail("cannot open read-only");
    }
    sqlite3_busy_timeout(db.handle, kBusyTimeoutMs);
    const int64_t found = read_user_version(db);
    if (found > kSchemaVersion) throw_newer(path, found);
    if (found == 0) throw_not_ours(path);  // empty, or another program's database
    impl_->schema_version = static_cast<int>(found);
    impl_->has_leases = found >= 2 || has_table(db, "leases");
    return;
  }

  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      throw std::runtime_error("store: " + path + ": cannot create folder " + parent.string() +
                               ": " + ec.message());
    }
  }
  if (sqlite3_open_v2(path.c_str(), &db.handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    db.fail("cannot open");  // Impl's destructor closes the half-open handle
  }
  sqlite3_busy_timeout(db.handle, kBusyTimeoutMs);
  // Before any write: a newer file must not be switched to WAL or touched otherwise.
  const int64_t seen = read_user_version(db);
  if (seen > kSchemaVersion) throw_newer(path, seen);
  // WAL: readers never block the writer and a killed writer leaves only uncommitted frames,
  // which the next open ignores. synchronous=NORMAL is durable against process crashes (not
  // power loss), which is what a killed training run needs.
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");

  // Create or upgrade the schema; version checked again inside the write lock, since two
  // processes may open (and upgrade) the same file at the same moment.
  Transaction transaction(*this);
  const int64_t found = read_user_version(db);
  if (found > kSchemaVersion) throw_newer(path, found);
  if (found == 0) {
    // Tables without our version: someone else's database; writing ours into it would mix
    // the two.
    if (has_any_table(db)) throw_not_ours(path);
    db.exec(kSchemaSql);
  }
  if (found < kSchemaVersion) {
    db.exec(kLeasesSql);  // version 2; keeps every existing row
    db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
  }
  transaction.commit();
  impl_->schema_version = kSchemaVersion;
  impl_->has_leases = true;
}

Store::~Store() = default;

const std::string& Store::path() const { return impl_->db.path; }

Store::Mode Store::mode() const { return impl_->mode; }

int Store::schema_version() const { return impl_->schema_version; }

// --- transactions -------------------------------------------------------------------------------

Store::Transaction::Transaction(Store& store) : store_(store), depth_(store.impl_->depth) {
  store_.impl_->db.exec(depth_ == 0 ? std::string("BEGIN IMMEDIATE")
                                    : "SAVEPOINT nested_" + std::to_string(depth_));
  ++store_.impl_->depth;
}

void Store::Transaction::commit() {
  if (!open_) throw std::logic_error("store: transaction committed twice");
  store_.impl_->db.exec(depth_ == 0 ? std::string("COMMIT")
                                    : "RELEASE nested_" + std::to_string(depth_));
  open_ = false;
  --store_.impl_->depth;
}

Store::Transaction::~Transaction() {
  if (!open_) return;
  // Errors are ignored: SQLite may already have rolled back (e.g. after SQLITE_FULL), and a
  // destructor has nobody to tell.
  sqlite3* handle = store_.impl_->db.handle;
  if (depth_ == 0) {
    sqlite3_exec(handle, "ROLLBACK", nullptr, nullptr, nullptr);
  } else {
    const std::string name = "nested_" + std::to_string(depth_);
    sqlite3_exec(handle, ("ROLLBACK TO " + name + "; RELEASE " + name).c_str(), nullptr, nullptr,
                 nullptr);
  }
  --store_.impl_->depth;
}

// --- runs ---------------------------------------------------------------------------------------

RunRow Store::begin_run(const RunRow& run) {
  write([&] {
    const std::optional<RunRow> existing = find_run(run.run_key);
    if (!existing) {
      impl_
          ->prepare(std::string("INSERT INTO runs (") + kRunColumns +
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 0, " + kNowSql + ", " +
                    kNowSql + ", NULL, 0, 0, ?)")
          .bind(run.run_key, run.config_json, run.method, run.size, run.seed, run.commit, run.dirty,
                run.torch_version, run.device, run.backend, run.notes)
          .run();
      return;
    }
    if (existing->status == RunStatus::kDone) {
      throw std::runtime_error("store: " + path() + ": run " + run.run_key +
                               " is already done; delete it to run it again");
    }
    if (existing->config_json != run.config_json) {
      throw std::runtime_error("store: " + path() + ": run " + run.run_key +
                               " is stored with a different config");
    }
    // A resume: the code and machine may have changed since the first attempt; record the
    // latest, which produced the rows that follow.
    impl_
        ->prepare(std::string("UPDATE runs SET status = 'running', started_at = ") + kNowSql +
                  ", finished_at = NULL, git_commit = ?, dirty = ?, torch_version = ?, "
                  "device = ?, backend = ? WHERE run_key = ?")
        .bind(run.commit, run.dirty, run.torch_version, run.device, run.backend, run.run_key)
        .run();
  });
  return *find_run(run.run_key);
}

void Store::append_steps(const std::string& run_key, const std::vector<StepRow>& steps) {
  if (steps.empty()) return;
  write([&] {
    int64_t last_step = 0;
    int64_t last_tokens = 0;
    for (const StepRow& s : steps) {
      impl_
          ->prepare(
              "INSERT OR REPLACE INTO steps (run_key, step, tokens, loss, lm_loss, aux_loss, "
              "lambda, density, lr, grad_norm, tokens_per_s, elapsed_s) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
          .bind(run_key, s.step, s.tokens, s.loss, s.lm_loss, s.aux_loss, s.lambda, s.density, s.lr,
                s.grad_norm, s.tokens_per_s, s.elapsed_s)
          .run();
      last_step = std::max(last_step, s.step);
      last_tokens = std::max(last_tokens, s.tokens);
    }
    impl_
        ->prepare(
            "UPDATE runs SET status_step = max(status_step, ?), tokens = max(tokens, ?) "
            "WHERE run_key = ?")
        .bind(last_step, last_tokens, run_key)
        .run();
  });
}

void Store::append_layer_stats(const std::string& run_key, const std::vector<LayerStatRow>& stats) {
  if (stats.empty()) return;
  write([&] {
    for (const LayerStatRow& s : stats) {
      impl_
          ->prepare(
              "INSERT OR REPLACE INTO layer_stats (run_key, step, layer, expert, metric, value) "
              "VALUES (?, ?, ?, ?, ?, ?)")
          .bind(run_key, s.step, s.layer, s.expert, s.metric, s.value)
          .run();
    }
  });
}

void Store::append_evals(const std::string& run_key, const std::vector<EvalRow>& evals) {
  if (evals.empty()) return;
  write([&] {
    for (const EvalRow& e : evals) {
      impl_
          ->prepare(
              "INSERT OR REPLACE INTO evals (run_key, task, metric, value, n, ci_low, ci_high, "
              "chance, theta, step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
          .bind(run_key, e.task, e.metric, e.value, e.n, e.ci_low, e.ci_high, e.chance, e.theta,
                e.step)
          .run();
    }
  });
}

void Store::finish_run(const std::string& run_key, RunStatus status, int64_t step, double wall_s,
                       int64_t tokens) {
  if (status == RunStatus::kRunning) {
    throw std::invalid_argument("store: finish_run needs a final status, not 'running'");
  }
  write([&] {
    impl_
        ->prepare(std::string("UPDATE runs SET status = ?, status_step = ?, wall_s = ?, "
                              "tokens = CASE WHEN ? >= 0 THEN ? ELSE tokens END, "
                              "finished_at = ") +
                  kNowSql + " WHERE run_key = ?")
        .bind(to_string(status), step, wall_s, tokens, tokens, run_key)
        .run();
    if (sqlite3_changes(impl_->db.handle) == 0) {
      throw std::runtime_error("store: " + path() + ": finish_run: no run " + run_key);
    }
  });
}

void Store::set_notes(const std::string& run_key, const std::string& notes) {
  write([&] {
    impl_->prepare("UPDATE runs SET notes = ? WHERE run_key = ?").bind(notes, run_key).run();
  });
}

void Store::delete_run(const std::string& run_key) {
  write([&] {
    impl_->prepare("DELETE FROM runs WHERE run_key = ?").bind(run_key).run();
    impl_->prepare("DELETE FROM leases WHERE run_key = ?").bind(run_key).run();
  });
}

std::optional<RunRow> Store::find_run(const std::string& run_key) {
  Statement s =
      impl_->prepare(std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_key = ?");
  s.bind(run_key);
  if (!s.step()) return std::nullopt;
  return read_run(s);
}

std::vector<RunRow> Store::runs(const RunFilter& filter) {
  Statement s = impl_->prepare(std::string("SELECT ") + kRunColumns +
                               " FROM runs WHERE (?1 = '' OR method = ?1) AND (?2 = '' OR size = "
                               "?2) AND (?3 IS NULL OR status = ?3) ORDER BY created_at, run_key");
  s.bind(filter.method, filter.size,
         filter.status ? Value(to_string(*filter.status)) : Value(std::monostate{}));
  std::vector<RunRow> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

std::vector<StepRow> Store::steps(const std::string& run_key) {
  Statement s = impl_->prepare(
      "SELECT step, tokens, loss, lm_loss, aux_loss, lambda, density, lr, grad_norm, "
      "tokens_per_s, elapsed_s FROM steps WHERE run_key = ? ORDER BY step");
  s.bind(run_key);
  std::vector<StepRow> out;
  while (s.step()) {
    out.push_back({s.int64(0), s.int64(1), s.real(2), s.real(3), s.real(4), s.real(5), s.real(6),
                   s.real(7), s.real(8), s.real(9), s.real(10)});
  }
  return out;
}

std::vector<LayerStatRow> Store::layer_stats(const std::string& run_key) {
  Statement s = impl_->prepare(std::string("SELECT ") + kLayerStatColumns +
                               " FROM layer_stats WHERE run_key = ? "
                               "ORDER BY step, layer, expert, metric");
  s.bind(run_key);
  std::vector<LayerStatRow> out;
  while (s.step()) out.push_back(read_layer_stat(s));
  return out;
}

std::vector<LayerStatRow> Store::last_layer_summaries(const std::string& run_key) {
  Statement s = impl_->prepare(std::string("SELECT ") + kLayerStatColumns +
                               " FROM layer_stats WHERE run_key = ?1 AND expert = -1 AND step = "
                               "(SELECT max(step) FROM layer_stats WHERE run_key = ?1 AND "
                               "expert = -1) ORDER BY layer, metric");
  s.bind(run_key);
  std::vector<LayerStatRow> out;
  while (s.step()) out.push_back(read_layer_stat(s));
  return out;
}

std::vector<EvalRow> Store::evals(const std::string& run_key, const EvalFilter& filter) {
  Statement s = impl_->prepare(std::string("SELECT ") + kEvalColumns + kEvalFilterSql +
                               " ORDER BY step, task, metric, theta");
  s.bind(run_key, filter.task, filter.metric, filter.trained_theta_only);
  std::vector<EvalRow> out;
  while (s.step()) out.push_back(read_eval(s));
  return out;
}

std::optional<EvalRow> Store::last_eval(const std::string& run_key, const EvalFilter& filter) {
  // evals()'s order reversed (NULL theta sorts first ascending, last descending).
  Statement s = impl_->prepare(std::string("SELECT ") + kEvalColumns + kEvalFilterSql +
                               " ORDER BY step DESC, task DESC, metric DESC, theta DESC LIMIT 1");
  s.bind(run_key, filter.task, filter.metric, filter.trained_theta_only);
  if (!s.step()) return std::nullopt;
  return read_eval(s);
}

std::optional<RunRecord> Store::run_record(const std::string& run_key) {
  std::optional<RunRow> run = find_run(run_key);
  if (!run) return std::nullopt;
  return RunRecord{std::move(*run), steps(run_key), layer_stats(run_key), evals(run_key)};
}

void Store::insert_run_record(const RunRecord& record) {
  const RunRow& r = record.run;
  // The row keeps NULL for timestamps a run has not reached, as begin_run leaves them.
  const auto nullable = [](const std::string& text) {
    return text.empty() ? Value(std::monostate{}) : Value(text);
  };
  write([&] {
    if (find_run(r.run_key)) {
      throw std::runtime_error("store: " + path() + ": run " + r.run_key + " is stored already");
    }
    impl_
        ->prepare(std::string("INSERT INTO runs (") + kRunColumns +
                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ifnull(nullif(?, ''), " + kNowSql +
                  "), ?, ?, ?, ?, ?)")
        .bind(r.run_key, r.config_json, r.method, r.size, r.seed, r.commit, r.dirty,
              r.torch_version, r.device, r.backend, to_string(r.status), r.status_step,
              r.created_at, nullable(r.started_at), nullable(r.finished_at), r.wall_s, r.tokens,
              r.notes)
        .run();
    // Plain INSERTs, unlike the append_* upserts: a repeated key in a copied run is damage to
    // report, not a later write that supersedes an earlier one.
    for (const StepRow& s : record.steps) {
      impl_
          ->prepare(
              "INSERT INTO steps (run_key, step, tokens, loss, lm_loss, aux_loss, lambda, "
              "density, lr, grad_norm, tokens_per_s, elapsed_s) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
          .bind(r.run_key, s.step, s.tokens, s.loss, s.lm_loss, s.aux_loss, s.lambda, s.density,
                s.lr, s.grad_norm, s.tokens_per_s, s.elapsed_s)
          .run();
    }
    for (const LayerStatRow& s : record.layer_stats) {
      impl_
          ->prepare(
              "INSERT INTO layer_stats (run_key, step, layer, expert, metric, value) "
              "VALUES (?, ?, ?, ?, ?, ?)")
          .bind(r.run_key, s.step, s.layer, s.expert, s.metric, s.value)
          .run();
    }
    for (const EvalRow& e : record.evals) {
      impl_
          ->prepare(
              "INSERT INTO evals (run_key, task, metric, value, n, ci_low, ci_high, chance, "
              "theta, step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
          .bind(r.run_key, e.task, e.metric, e.value, e.n, e.ci_low, e.ci_high, e.chance, e.theta,
                e.step)
          .run();
    }
  });
}

// --- kernel benchmarks, environment -------------------------------------------------------------

void Store::insert_kernel_bench(const std::vector<KernelBenchRow>& rows) {
  if (rows.empty()) return;
  write([&] {
    for (const KernelBenchRow& r : rows) {
      impl_
          ->prepare(std::string("INSERT INTO kernel_bench (name, shape, backend, dtype, metric, "
                                "value, git_commit, device, created_at) VALUES (?, ?, ?, ?, ?, "
                                "?, ?, ?, ifnull(nullif(?, ''), ") +
                    kNowSql + "))")
          .bind(r.name, r.shape, r.backend, r.dtype, r.metric, r.value, r.commit, r.device,
                r.created_at)
          .run();
    }
  });
}

std::vector<KernelBenchRow> Store::kernel_bench(const std::string& name) {
  Statement s = impl_->prepare(
      "SELECT name, shape, backend, dtype, metric, value, git_commit, device, created_at "
      "FROM kernel_bench WHERE (?1 = '' OR name = ?1) ORDER BY created_at, rowid");
  s.bind(name);
  std::vector<KernelBenchRow> out;
  while (s.step()) {
    out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.real(5), s.text(6),
                   s.text(7), s.text(8)});
  }
  return out;
}

void Store::record_env(const std::map<std::string, std::string>& values) {
  write([&] {
    for (const auto& [key, value] : values) {
      impl_
          ->prepare(std::string("INSERT OR REPLACE INTO env (key, value, recorded_at) "
                                "VALUES (?, ?, ") +
                    kNowSql + ")")
          .bind(key, value)
          .run();
    }
  });
}

std::map<std::string, std::string> Store::env() {
  Statement s = impl_->prepare("SELECT key, value FROM env ORDER BY recorded_at, rowid");
  std::map<std::string, std::string> out;
  while (s.step()) out[s.text(0)] = s.text(1);  // later rows overwrite earlier ones
  return out;
}

std::vector<EnvRow> Store::env_rows() {
  Statement s = impl_->prepare("SELECT key, value, recorded_at FROM env ORDER BY recorded_at, key");
  std::vector<EnvRow> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

void Store::insert_env_rows(const std::vector<EnvRow>& rows) {
  if (rows.empty()) return;
  write([&] {
    for (const EnvRow& r : rows) {
      impl_
          ->prepare(std::string("INSERT INTO env (key, value, recorded_at) VALUES (?, ?, "
                                "ifnull(nullif(?, ''), ") +
                    kNowSql + "))")
          .bind(r.key, r.value, r.recorded_at)
          .run();
    }
  });
}

// --- leases -------------------------------------------------------------------------------------

std::string Store::process_owner() {
  // Cached per pid: a forked child is another process and must not inherit the parent's
  // identity (or it would share its leases).
  static std::mutex mutex;
  static pid_t cached_pid = -1;
  static std::string cached;
  const std::lock_guard<std::mutex> lock(mutex);
  if (cached_pid != getpid()) {
    std::random_device random;
    const uint64_t token = (static_cast<uint64_t>(random()) << 32) ^ random();
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(token));
    cached_pid = getpid();
    cached = host_name() + ":" + std::to_string(cached_pid) + ":" + hex;
  }
  return cached;
}

void Store::set_owner_for_testing(const std::string& owner) { impl_->owner_override = owner; }

namespace {

constexpr const char* kLeaseSelectSql =
    "SELECT owner, host, pid, heartbeat_at FROM leases WHERE run_key = ?";

LeaseHolder read_lease(const Statement& s, double stale_after_s) {
  LeaseHolder h;
  h.owner = s.text(0);
  h.host = s.text(1);
  h.pid = s.int64(2);
  h.heartbeat_age_s = unix_now() - s.real(3);  // NaN stays NaN
  h.alive = !lease_stale(h, stale_after_s);
  return h;
}

}  // namespace

std::optional<LeaseHolder> Store::acquire_lease(const std::string& run_key, double stale_after_s) {
  const std::string me = impl_->owner();
  std::optional<LeaseHolder> holder;
  // One write transaction (BEGIN IMMEDIATE): the look and the take cannot interleave with
  // another process's, so two racers cannot both see the lease free.
  write([&] {
    {
      Statement s = impl_->prepare(kLeaseSelectSql);
      s.bind(run_key);
      if (s.step()) holder = read_lease(s, stale_after_s);
    }
    if (holder && holder->owner == me) {
      holder.reset();
      heartbeat_lease(run_key);
      return;
    }
    if (holder && holder->alive) return;  // refused: the caller names the holder
    holder.reset();
    impl_
        ->prepare(std::string("INSERT OR REPLACE INTO leases (run_key, owner, host, pid, "
                              "acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ") +
                  kNowSql + ", ?)")
        .bind(run_key, me, host_name(), static_cast<int64_t>(getpid()), unix_now())
        .run();
  });
  return holder;
}

bool Store::heartbeat_lease(const std::string& run_key) {
  const std::string me = impl_->owner();
  bool held = false;
  write([&] {
    impl_->prepare("UPDATE leases SET heartbeat_at = ? WHERE run_key = ? AND owner = ?")
        .bind(unix_now(), run_key, me)
        .run();
    held = sqlite3_changes(impl_->db.handle) > 0;
  });
  return held;
}

void Store::release_lease(const std::string& run_key) {
  const std::string me = impl_->owner();
  write([&] {
    impl_->prepare("DELETE FROM leases WHERE run_key = ? AND owner = ?").bind(run_key, me).run();
  });
}

std::optional<LeaseHolder> Store::lease_of(const std::string& run_key) {
  if (!impl_->has_leases) return std::nullopt;  // a version-1 file opened read-only
  Statement s = impl_->prepare(kLeaseSelectSql);
  s.bind(run_key);
  if (!s.step()) return std::nullopt;
  return read_lease(s, kLeaseStaleSeconds);
}

// --- raw queries --------------------------------------------------------------------------------

QueryResult Store::query(const std::string& sql, const std::vector<Value>& params) {
  const Db& db = impl_->db;
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db.handle, sql.c_str(), -1, &raw, &tail) != SQLITE_OK) {
    db.fail("query: " + sql);
  }
  // Owns `raw` (not cached: ad-hoc SQL would grow the cache without bound).
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(raw, sqlite3_finalize);
  if (raw == nullptr) throw std::runtime_error("store: " + db.path + ": query: empty SQL");
  if (std::string(tail).find_first_not_of(" \t\r\n;") != std::string::npos) {
    throw std::runtime_error("store: " + db.path + ": query: one statement only: " + sql);
  }
  if (!sqlite3_stmt_readonly(raw)) {
    throw std::runtime_error("store: " + db.path + ": query: read-only SQL only: " + sql);
  }
  Statement s(db, raw);
  for (size_t i = 0; i < params.size(); ++i) s.bind_at(static_cast<int>(i) + 1, params[i]);
  QueryResult result;
  const int n = sqlite3_column_count(raw);
  for (int c = 0; c < n; ++c) result.columns.emplace_back(sqlite3_column_name(raw, c));
  while (s.step()) {
    std::vector<Value>& row = result.rows.emplace_back();
    for (int c = 0; c < n; ++c) {
      switch (sqlite3_column_type(raw, c)) {
        case SQLITE_INTEGER:
          row.emplace_back(s.int64(c));
          break;
        case SQLITE_FLOAT:
          row.emplace_back(s.real(c));
          break;
        case SQLITE_NULL:
          row.emplace_back(std::monostate{});
          break;
        default:  // TEXT, BLOB
          row.emplace_back(s.text(c));
      }
    }
  }
  return result;
}

}  // namespace moebench
