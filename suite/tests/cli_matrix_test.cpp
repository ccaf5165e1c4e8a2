// `moebench matrix --emit-slurm` through the real binary (path MOEBENCH_EXE): a 2-run plan gives
// runs.txt lines that `moebench train` accepts and that rebuild each run's key, an sbatch array
// job over them, and runs already done in the store are left out (DESIGN.md "Configs and the
// store"; scripts: SLURM emission).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "suite/config.h"
#include "suite/store.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

// Splits a POSIX shell line into words: single quotes (no escapes inside), '\'' as the way to
// write a quote, unquoted words ending at blanks. Anything else (double quotes, $, backslash
// outside quotes, ;) makes the test fail: the emitted lines must need nothing more.
std::vector<std::string> shell_words(const std::string& line) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) throw std::runtime_error("unterminated quote: " + line);
      cur += line.substr(i + 1, end - i - 1);
      in_word = true;
      i = end;
    } else if (c == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
      cur += '\'';
      in_word = true;
      ++i;
    } else if (c == ' ') {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
    } else if (std::string("\"$`;&|<>\\*?").find(c) != std::string::npos) {
      throw std::runtime_error(std::string("shell metacharacter '") + c + "' in: " + line);
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

// What a `moebench [--data D] [--threads N] train ...` line asks for.
struct TrainLine {
  std::string exe, data, config, db, checkpoints;
  std::vector<std::string> sets, flags;  // flags: every --option after `train`
  bool quiet = false;
};

TrainLine parse_train_line(const std::string& line) {
  const auto w = shell_words(line);
  TrainLine t;
  size_t i = 0;
  t.exe = w.at(i++);
  for (; i < w.size() && w[i] != "train"; ++i) {
    if (w[i] == "--data") t.data = w.at(++i);
  }
  EXPECT_LT(i, w.size()) << "no train subcommand: " << line;
  for (++i; i < w.size(); ++i) {
    const std::string& f = w[i];
    t.flags.push_back(f);
    if (f == "--quiet") {
      t.quiet = true;
      continue;
    }
    const std::string v = w.at(++i);
    if (f == "--config") t.config = v;
    if (f == "--set") t.sets.push_back(v);
    if (f == "--db") t.db = v;
    if (f == "--checkpoints") t.checkpoints = v;
  }
  return t;
}

class MatrixSlurm : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "moebench_cli_matrix_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // A 2-run plan whose size is a TOML file next to it (so the base path must be resolved).
    fs::create_directories(dir_ / "plans");
    std::ofstream(dir_ / "plans" / "small.toml") << "base = \"tiny\"\n[train]\nsteps = 4\n";
    std::ofstream(dir_ / "plans" / "two.toml")
        << "sizes = [\"small.toml\"]\nmethods = [\"topk\", \"switch\"]\nseeds = [3]\n"
           "set = [\"train.log_every=2\", \"eval.tasks=imdb,cloze\"]\n";
    for (const char* m : {"topk", "switch"}) {
      // The plan's meaning, written out by hand: base file, then method, seed, plan-wide sets.
      expected_[m] = load_config((dir_ / "plans" / "small.toml").string(),
                                 {std::string("moe.method=") + m, "train.seed=3",
                                  "train.log_every=2", "eval.tasks=imdb,cloze"});
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  int run(const std::string& args, const std::string& env = "") {
    const std::string cmd = env + " '" + std::string(MOEBENCH_EXE) + "' " + args + " >'" +
                            (dir_ / "stdout").string() + "' 2>'" + (dir_ / "stderr").string() + "'";
    const int status = std::system(cmd.c_str());
    out_ = read_text(dir_ / "stdout");
    err_ = read_text(dir_ / "stderr");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  int emit(const std::string& extra = "") {
    return run("--data '" + (dir_ / "data").string() + "' matrix --plan '" +
               (dir_ / "plans" / "two.toml").string() + "' --db '" + db() + "' --checkpoints '" +
               (dir_ / "ckpt").string() + "' --emit-slurm '" + (dir_ / "slurm").string() + "' " +
               extra);
  }

  std::string db() const { return (dir_ / "results.sqlite").string(); }
  fs::path slurm(const char* name) const { return dir_ / "slurm" / name; }

  void mark(const std::string& method, RunStatus status) {
    const RunConfig& cfg = expected_.at(method);
    Store store(db());
    RunRow row;
    row.run_key = run_key(cfg);
    row.config_json = to_canonical_json(cfg);
    row.method = method;
    row.size = "small";
    row.seed = 3;
    store.begin_run(row);
    store.finish_run(row.run_key, status, 4, 1.0);
  }

  fs::path dir_;
  std::string out_, err_;
  std::map<std::string, RunConfig> expected_;
};

TEST_F(MatrixSlurm, EmitsOneTrainLinePerRunAndAnArrayJob) {
  ASSERT_EQ(emit("--slurm-partition gpu --slurm-time 1-02:00:00 --slurm-gpus 2"), 0) << err_;
  const auto lines = lines_of(read_text(slurm("runs.txt")));
  ASSERT_EQ(lines.size(), 2u);

  // Every flag the lines give `train` must be one `moebench train --help` documents.
  ASSERT_EQ(run("train --help"), 0) << err_;
  const std::string help = out_;
  std::vector<std::string> keys;
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    const TrainLine t = parse_train_line(lines[i]);
    EXPECT_EQ(fs::canonical(t.exe), fs::canonical(MOEBENCH_EXE));
    EXPECT_EQ(t.data, (dir_ / "data").string());
    EXPECT_TRUE(t.db.empty()) << "the script gives each task its own --db";
    EXPECT_EQ(t.checkpoints, (dir_ / "ckpt").string());
    EXPECT_TRUE(t.quiet);
    EXPECT_TRUE(fs::path(t.config).is_absolute()) << t.config;
    EXPECT_EQ(fs::path(t.config).stem(), "small");  // train names the size after it
    for (const auto& f : t.flags) {
      EXPECT_NE(help.find(f), std::string::npos) << f << " is not a train flag";
    }
    // The line rebuilds the planned config exactly: same run key as the plan by hand.
    keys.push_back(run_key(load_config(t.config, t.sets)));
  }
  EXPECT_EQ(keys[0], run_key(expected_.at("topk")));
  EXPECT_EQ(keys[1], run_key(expected_.at("switch")));

  const std::string sb = read_text(slurm("matrix.sbatch"));
  for (const std::string& want :
       {std::string("#!/bin/bash\n"), std::string("#SBATCH --array=1-2\n"),
        std::string("#SBATCH --partition=gpu\n"), std::string("#SBATCH --time=1-02:00:00\n"),
        std::string("#SBATCH --gres=gpu:2\n"), std::string("SLURM_ARRAY_TASK_ID"),
        std::string("NFS"), std::string("task_${SLURM_ARRAY_TASK_ID}.sqlite"),
        slurm("runs.txt").string(), db()}) {
    EXPECT_NE(sb.find(want), std::string::npos) << want << "\n" << sb;
  }
  EXPECT_EQ(sb.find("srun"), std::string::npos);  // one process per run
  EXPECT_TRUE(fs::is_directory(dir_ / "slurm" / "logs"));
  const std::string merge = read_text(slurm("merge.sh"));
  EXPECT_NE(merge.find(" merge '" + db() + "'"), std::string::npos) << merge;
  // The scripts are valid shell.
  EXPECT_EQ(std::system(("bash -n '" + slurm("matrix.sbatch").string() + "'").c_str()), 0);
  EXPECT_EQ(std::system(("sh -n '" + slurm("merge.sh").string() + "'").c_str()), 0);
}

TEST_F(MatrixSlurm, ArrayTaskRunsItsLine) {
  // Task 2 of the script, with the binary replaced by a stub that prints its arguments: the
  // script picks line 2 and hands the words to the program unchanged.
  ASSERT_EQ(emit("--slurm-gpus 0"), 0) << err_;
  const std::string sb = read_text(slurm("matrix.sbatch"));
  EXPECT_EQ(sb.find("--gres"), std::string::npos);  // CPU-only tasks
  const fs::path stub = dir_ / "stub.sh";
  std::ofstream(stub) << "#!/bin/bash\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n";
  fs::permissions(stub, fs::perms::owner_all);
  const auto lines = lines_of(read_text(slurm("runs.txt")));
  ASSERT_EQ(lines.size(), 2u);
  std::string line2 = lines[1];
  line2.replace(0, line2.find(' '), "'" + stub.string() + "'");
  std::ofstream(slurm("runs.txt")) << lines[0] << "\n" << line2 << "\n";
  fs::create_directories(dir_ / "tmp");
  const std::string cmd = "env -u SLURM_TMPDIR TMPDIR='" + (dir_ / "tmp").string() +
                          "' SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=2 bash '" +
                          slurm("matrix.sbatch").string() + "' > '" + (dir_ / "task.out").string() +
                          "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto printed = lines_of(read_text(dir_ / "task.out"));
  ASSERT_FALSE(printed.empty());
  printed.erase(printed.begin());  // the script's "task 2 on host: ..." line
  auto words = shell_words(lines[1]);
  words.erase(words.begin());
  // ... plus the task's own store on the node's local disk.
  words.push_back("--db");
  words.push_back((dir_ / "tmp" / "moebench_77_2.sqlite").string());
  EXPECT_EQ(printed, words);
}

TEST_F(MatrixSlurm, TaskStoresSurviveTheTaskAndMergeIntoTheDb) {
  // Task 1's "training" (a stub) writes one run into the --db it is given, through the real
  // binary's merge from a store made here. After the task: the run is in slurm/db/task_1.sqlite,
  // a rerun of the task starts from that store, and merge.sh brings it into --db.
  ASSERT_EQ(emit("--slurm-gpus 0"), 0) << err_;
  const std::string fixture = (dir_ / "fixture.sqlite").string();
  {
    const std::string real_db = db();
    fs::rename(real_db, dir_ / "empty.sqlite");  // mark() writes to db(): point it elsewhere
    mark("topk", RunStatus::kDone);
    fs::rename(real_db, fixture);
    fs::rename(dir_ / "empty.sqlite", real_db);
  }
  const fs::path stub = dir_ / "stub.sh";
  std::ofstream(stub) << "#!/bin/bash\nwhile [ $# -gt 0 ]; do\n"
                         "  if [ \"$1\" = --db ]; then db=$2; fi\n  shift\ndone\n"
                         "exec '"
                      << MOEBENCH_EXE << "' merge \"$db\" '" << fixture << "' >/dev/null\n";
  fs::permissions(stub, fs::perms::owner_all);
  auto lines = lines_of(read_text(slurm("runs.txt")));
  ASSERT_EQ(lines.size(), 2u);
  lines[0].replace(0, lines[0].find(' '), "'" + stub.string() + "'");
  std::ofstream(slurm("runs.txt")) << lines[0] << "\n" << lines[1] << "\n";
  fs::create_directories(dir_ / "tmp");
  const std::string task = "env -u SLURM_TMPDIR TMPDIR='" + (dir_ / "tmp").string() +
                           "' SLURM_ARRAY_JOB_ID=9 SLURM_ARRAY_TASK_ID=1 bash '" +
                           slurm("matrix.sbatch").string() + "' > '" +
                           (dir_ / "task.out").string() + "' 2>&1";
  ASSERT_EQ(std::system(task.c_str()), 0) << read_text(dir_ / "task.out");
  const std::string key = run_key(expected_.at("topk"));
  ASSERT_TRUE(fs::exists(slurm("db") / "task_1.sqlite"));
  {
    Store task_store((slurm("db") / "task_1.sqlite").string(), Store::Mode::kReadOnly);
    EXPECT_TRUE(task_store.find_run(key).has_value());
  }
  // The rerun merges the saved store into its fresh local one first (no conflict, same rows).
  ASSERT_EQ(std::system(task.c_str()), 0) << read_text(dir_ / "task.out");
  {
    Store store(db());
    EXPECT_FALSE(store.find_run(key).has_value());
  }
  ASSERT_EQ(std::system(("sh '" + slurm("merge.sh").string() + "' >/dev/null").c_str()), 0);
  Store store(db());
  const auto row = store.find_run(key);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->status, RunStatus::kDone);
}

TEST_F(MatrixSlurm, DataParallelRunsStartOneRankPerTaskThroughSrun) {
  ASSERT_EQ(emit("--slurm-gpus 1 --slurm-ranks 4"), 0) << err_;
  const std::string sb = read_text(slurm("matrix.sbatch"));
  for (const std::string& want :
       {std::string("#SBATCH --ntasks=4\n"), std::string("#SBATCH --gpus-per-task=1\n"),
        std::string("export MASTER_ADDR\n"), std::string("export MASTER_PORT="),
        std::string("eval \"srun $line")}) {
    EXPECT_NE(sb.find(want), std::string::npos) << want << "\n" << sb;
  }
  EXPECT_EQ(sb.find("--gres"), std::string::npos) << sb;
  EXPECT_EQ(std::system(("bash -n '" + slurm("matrix.sbatch").string() + "'").c_str()), 0);
}

TEST_F(MatrixSlurm, RunsDoneInTheStoreAreNotEmitted) {
  mark("topk", RunStatus::kDone);
  mark("switch", RunStatus::kInterrupted);  // interrupted: still to run (it resumes)
  ASSERT_EQ(emit(), 0) << err_;
  auto lines = lines_of(read_text(slurm("runs.txt")));
  ASSERT_EQ(lines.size(), 1u);
  const TrainLine t = parse_train_line(lines[0]);
  EXPECT_EQ(run_key(load_config(t.config, t.sets)), run_key(expected_.at("switch")));
  EXPECT_NE(read_text(slurm("matrix.sbatch")).find("#SBATCH --array=1-1\n"), std::string::npos);
  EXPECT_NE(out_.find("1 already done"), std::string::npos) << out_;

  // Everything done: an empty runs.txt and no script (sbatch refuses --array=1-0).
  {
    Store store(db());
    store.delete_run(run_key(expected_.at("switch")));
  }
  mark("switch", RunStatus::kDone);
  ASSERT_EQ(emit(), 0) << err_;
  EXPECT_TRUE(lines_of(read_text(slurm("runs.txt"))).empty());
  EXPECT_FALSE(fs::exists(slurm("matrix.sbatch")));
}

TEST_F(MatrixSlurm, BadSlurmOptionsAreRefused) {
  EXPECT_NE(emit("--slurm-time 25h"), 0);
  EXPECT_NE(err_.find("--slurm-time '25h': expected HH:MM:SS"), std::string::npos) << err_;
  EXPECT_NE(emit("--slurm-gpus -1"), 0);
  EXPECT_NE(err_.find("--slurm-gpus -1"), std::string::npos) << err_;
  EXPECT_NE(emit("--slurm-ranks 0"), 0);
  EXPECT_NE(err_.find("--slurm-ranks 0"), std::string::npos) << err_;
  EXPECT_NE(emit("--slurm-partition 'a b'"), 0);
  EXPECT_NE(err_.find("one word"), std::string::npos) << err_;
  // --slurm-* without --emit-slurm is a usage error.
  EXPECT_NE(run("matrix --plan '" + (dir_ / "plans" / "two.toml").string() + "' --db '" + db() +
                "' --slurm-gpus 2"),
            0);
  EXPECT_NE(err_.find("--emit-slurm"), std::string::npos) << err_;
}

}  // namespace
}  // namespace moebench
