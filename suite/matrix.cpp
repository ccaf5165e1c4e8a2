// Plan expansion for `moebench matrix` (methods × sizes × seeds, with overrides).
// Every run is a full RunConfig; its run_key decides whether it is done, resumable or new.
#include "suite/matrix.h"

#include "baselines/registry.h"

#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <map>
#include <regex>

namespace moebench {
namespace {

std::vector<std::string> strings(const toml::node_view<const toml::node>& node,
                                 const std::string& what, const std::string& file) {
  std::vector<std::string> out;
  if (!node) return out;
  const auto* arr = node.as_array();
  if (!arr) throw ConfigError(fmt::format("plan {}: '{}' must be a list of strings", file, what));
  for (const auto& v : *arr) {
    const auto s = v.value<std::string>();
    if (!s) throw ConfigError(fmt::format("plan {}: '{}' must be a list of strings", file, what));
    out.push_back(*s);
  }
  return out;
}

}  // namespace

std::vector<PlannedRun> load_plan(const std::filesystem::path& plan) {
  const std::string file = plan.string();
  if (!std::filesystem::exists(plan)) {
    throw ConfigError(fmt::format("plan {} not found (see suite/plans/ for examples)", file));
  }
  toml::table t;
  try {
    t = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("plan {}:{}:{}: {}", file, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key != "sizes" && key != "methods" && key != "seeds" && key != "set" &&
        key != "method_set") {
      throw ConfigError(
          fmt::format("plan {}: unknown key '{}' (known: sizes, methods, seeds, set, "
                      "method_set)",
                      file, key));
    }
  }
  const auto tv = toml::node_view<const toml::node>(t);
  const auto sizes = strings(tv["sizes"], "sizes", file);
  const auto methods = strings(tv["methods"], "methods", file);
  const auto sets = strings(tv["set"], "set", file);
  std::vector<int64_t> seeds;
  if (const auto* arr = t["seeds"].as_array()) {
    for (const auto& v : *arr) {
      const auto s = v.value<int64_t>();
      if (!s) throw ConfigError(fmt::format("plan {}: 'seeds' must be a list of integers", file));
      seeds.push_back(*s);
    }
  }
  if (sizes.empty() || methods.empty() || seeds.empty()) {
    throw ConfigError(
        fmt::format("plan {}: 'sizes', 'methods' and 'seeds' must each list at "
                    "least one entry",
                    file));
  }
  std::map<std::string, std::vector<std::string>> per_method;
  if (const auto* tbl = t["method_set"].as_table()) {
    for (const auto& [k, v] : *tbl) {
      const std::string m(k.str());
      if (!baselines::has_method(m)) {
        std::string known;
        for (const auto& n : baselines::method_names()) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError(fmt::format("plan {}: [method_set] names unknown method '{}' (known: {})",
                                      file, m, known));
      }
      per_method[m] = strings(tv["method_set"][m], "method_set." + m, file);
    }
  }
  std::vector<PlannedRun> runs;
  for (const auto& size : sizes) {
    // Sizes that are not built-in names are TOML files next to the plan.
    const std::string base = is_named_config(size) ? size : (plan.parent_path() / size).string();
    // Seed-major: every method's run of one seed before the next seed, so a matrix stopped part
    // way holds complete paired sets (the verdicts compare methods within a seed).
    for (int64_t seed : seeds) {
      for (const auto& method : methods) {
        std::vector<std::string> o = {"moe.method=" + method, fmt::format("train.seed={}", seed)};
        o.insert(o.end(), sets.begin(), sets.end());
        if (auto it = per_method.find(method); it != per_method.end()) {
          o.insert(o.end(), it->second.begin(), it->second.end());
        }
        PlannedRun r;
        r.base = base;
        r.overrides = o;
        r.method = method;
        r.size = is_named_config(size) ? size : std::filesystem::path(size).stem().string();
        r.seed = seed;
        try {
          r.cfg = load_config(base, o);
        } catch (const ConfigError& e) {
          throw ConfigError(
              fmt::format("plan {} ({} {} seed {}): {}", file, method, size, seed, e.what()));
        }
        r.run_key = run_key(r.cfg);
        runs.push_back(std::move(r));
      }
    }
  }
  return runs;
}

namespace {

// Single-quoted for sh: 'it'\''s' reads back as it's, whatever the text holds.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

// The #SBATCH header carries these verbatim: a newline or space would end the directive.
void check_slurm_word(const std::string& what, const std::string& value) {
  if (value.find_first_of(" \t\n\r'\"") != std::string::npos) {
    throw ConfigError(
        fmt::format("--{} '{}': must be one word (no spaces or quotes)", what, value));
  }
}

}  // namespace

std::vector<bool> finished_in_store(const std::vector<PlannedRun>& runs, Store& store) {
  std::vector<bool> finished(runs.size(), false);
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto row = store.find_run(runs[i].run_key);
    finished[i] = row && is_finished(row->status);
  }
  return finished;
}

std::string train_command_line(const PlannedRun& run, const SlurmOptions& opts) {
  // A TOML base is made absolute so the line works from any folder of the cluster; moebench
  // train names the run's size after the file's stem, as the matrix does.
  const std::string base = is_named_config(run.base) ? run.base : absolute(run.base);
  std::string line = shell_quote(opts.moebench);
  if (!opts.data_dir.empty()) line += " --data " + shell_quote(absolute(opts.data_dir));
  if (opts.cpus > 0) line += fmt::format(" --threads {}", opts.cpus);
  line += " train --config " + shell_quote(base);
  for (const auto& o : run.overrides) line += " --set " + shell_quote(o);
  line += " --checkpoints " + shell_quote(absolute(opts.checkpoints));
  return line + " --quiet";
}

void emit_slurm(const std::vector<PlannedRun>& pending, const SlurmOptions& opts) {
  static const std::regex kTime(R"(^([0-9]+-)?[0-9]{1,2}:[0-9]{2}:[0-9]{2}$)");
  if (!std::regex_match(opts.time, kTime)) {
    throw ConfigError(fmt::format(
        "--slurm-time '{}': expected HH:MM:SS or D-HH:MM:SS (e.g. 24:00:00)", opts.time));
  }
  if (opts.gpus < 0) {
    throw ConfigError(fmt::format("--slurm-gpus {}: must be 0 (CPU tasks) or more", opts.gpus));
  }
  if (opts.ranks < 1) {
    throw ConfigError(fmt::format("--slurm-ranks {}: must be 1 or more", opts.ranks));
  }
  check_slurm_word("slurm-partition", opts.partition);
  namespace fs = std::filesystem;
  const fs::path dir = fs::absolute(opts.dir).lexically_normal();
  check_slurm_word("emit-slurm folder", dir.string());  // it appears in #SBATCH --output
  std::error_code ec;
  fs::create_directories(dir / "logs", ec);
  if (!ec) fs::create_directories(dir / "db", ec);
  if (ec) {
    throw ConfigError(
        fmt::format("--emit-slurm {}: cannot create the folder: {}", dir.string(), ec.message()));
  }
  auto write = [](const fs::path& file, const std::string& text) {
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) throw ConfigError(fmt::format("cannot write {}", file.string()));
  };
  std::string lines;
  for (const auto& r : pending) lines += train_command_line(r, opts) + "\n";
  write(dir / "runs.txt", lines);
  const fs::path sbatch = dir / "matrix.sbatch";
  const fs::path merge = dir / "merge.sh";
  if (pending.empty()) {  // sbatch refuses --array=1-0; a stale script would rerun old lines
    fs::remove(sbatch, ec);
    fs::remove(merge, ec);
    return;
  }
  std::string job = fs::path(opts.plan).stem().string();
  for (char& c : job) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  }
  const std::string exe = shell_quote(opts.moebench);
  std::string s;
  s += "#!/bin/bash\n";
  s += fmt::format(
      "# moebench matrix {}: {} runs not yet done when emitted, one array task per line of\n"
      "# runs.txt (task i runs line i){}. Submit with: sbatch {}\n"
      "# and when the array has ended: sh {}\n",
      opts.plan, pending.size(),
      opts.ranks > 1 ? fmt::format(", each data parallel over {} ranks", opts.ranks) : "",
      sbatch.string(), merge.string());
  s += fmt::format("#SBATCH --job-name=moebench-{}\n", job);
  s += fmt::format("#SBATCH --array=1-{}\n", pending.size());
  s += fmt::format("#SBATCH --time={}\n", opts.time);
  if (!opts.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", opts.partition);
  if (opts.ranks > 1) {
    s += fmt::format("#SBATCH --ntasks={}\n", opts.ranks);
    if (opts.gpus > 0) s += fmt::format("#SBATCH --gpus-per-task={}\n", opts.gpus);
  } else if (opts.gpus > 0) {
    s += fmt::format("#SBATCH --gres=gpu:{}\n", opts.gpus);
  }
  if (opts.cpus > 0) s += fmt::format("#SBATCH --cpus-per-task={}\n", opts.cpus);
  s += fmt::format("#SBATCH --output={}/%A_%a.out\n", (dir / "logs").string());
  s += fmt::format(
      "#\n"
      "# The store: SQLite's locks and its WAL mode do not hold on network file systems (NFS,\n"
      "# Lustre), so tasks never share one database. Task i trains into a store on the node's\n"
      "# local disk ($SLURM_TMPDIR, $TMPDIR or /tmp) and, when it ends for any reason, copies it\n"
      "# through `moebench merge` to {}/task_i.sqlite, where a rerun of the task\n"
      "# starts from. merge.sh then merges every task's store into {}\n"
      "# (idempotent, keyed by run key; conflicting duplicates are reported, not overwritten).\n"
      "# Checkpoints go to {}, which every rank and every rerun must see:\n"
      "# a rerun task resumes its run from there, a finished run is skipped.\n",
      (dir / "db").string(), absolute(opts.db), absolute(opts.checkpoints));
  s += "set -euo pipefail\n";
  s += fmt::format("moebench={}\n", exe);
  s += fmt::format("runs={}\n", shell_quote((dir / "runs.txt").string()));
  s += "line=$(sed -n \"${SLURM_ARRAY_TASK_ID}p\" \"$runs\")\n";
  s += "if [ -z \"$line\" ]; then\n";
  s += "  echo \"moebench: no line ${SLURM_ARRAY_TASK_ID} in $runs\" >&2\n";
  s += "  exit 1\n";
  s += "fi\n";
  s += fmt::format("shared={}/task_${{SLURM_ARRAY_TASK_ID}}.sqlite\n",
                   shell_quote((dir / "db").string()));
  s += "local_db=\"${SLURM_TMPDIR:-${TMPDIR:-/tmp}}/"
       "moebench_${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-0}}"
       "_${SLURM_ARRAY_TASK_ID}.sqlite\"\n";
  s += "rm -f \"$local_db\" \"$local_db-wal\" \"$local_db-shm\"\n";
  s += "if [ -f \"$shared\" ]; then \"$moebench\" merge \"$local_db\" \"$shared\" >/dev/null; fi\n";
  s += "save() {\n";
  s += "  [ -f \"$local_db\" ] || return 0\n";
  s += "  rm -f \"$shared.part\" \"$shared.part-wal\" \"$shared.part-shm\"\n";
  s += "  \"$moebench\" merge \"$shared.part\" \"$local_db\" >/dev/null && mv -f \"$shared.part\" "
       "\"$shared\"\n";
  s += "}\n";
  s += "trap save EXIT\n";
  s += "trap 'exit 143' TERM\n";
  s += "trap 'exit 130' INT\n";
  s += "echo \"task ${SLURM_ARRAY_TASK_ID} on $(hostname): $line\"\n";
  if (opts.ranks > 1) {
    s += "# Rank 0 runs on this (the first) node and writes the store; srun starts the ranks.\n";
    s += "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n";
    s += "export MASTER_ADDR\n";
    s += "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n";
    s += "eval \"srun $line --db '$local_db'\"\n";
  } else {
    s += "eval \"$line --db '$local_db'\"\n";
  }
  write(sbatch, s);
  std::string m;
  m += "#!/bin/sh\n";
  m += fmt::format(
      "# Merges the stores of the array tasks of {} into one (rerun it as more tasks end).\n",
      opts.plan);
  m += "set -eu\n";
  m += fmt::format("set -- {}/task_*.sqlite\n", shell_quote((dir / "db").string()));
  m += "if [ ! -e \"$1\" ]; then\n";
  m += "  echo \"merge.sh: no task stores yet in ${1%/*}\" >&2\n";
  m += "  exit 1\n";
  m += "fi\n";
  m += fmt::format("exec {} merge {} \"$@\"\n", exe, shell_quote(absolute(opts.db)));
  write(merge, m);
  fs::permissions(merge, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add, ec);
}

}  // namespace moebench
