# moebench: thin wrapper over scripts/ and CMake. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what they need first (scripts/setup.sh, idempotent).
BUILD ?= build
JOBS ?= $(shell nproc)
MOEBENCH := $(BUILD)/moebench
CMAKE_FLAGS ?=
export MOEBENCH_DATA ?= $(CURDIR)/data

.PHONY: all setup configure build data test run smoke matrix tables report bench format format-check lint gpu-check golden clean

all: build

setup:
	bash scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# pinned tarballs (sha256-checked) and the derived token shards
data: build
	$(MOEBENCH) data fetch
	$(MOEBENCH) data prepare --vocab gpt2

test: setup build
	$(MOEBENCH) data fetch
	$(MOEBENCH) data prepare --vocab gpt2
	$(MOEBENCH) data prepare --vocab bpe8k
	rm -rf $(BUILD)/test-results
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS); rc=$$?; \
	  cd $(CURDIR) && bash scripts/test_summary.sh $(BUILD); exit $$rc

DB ?= results/moebench.sqlite

PLAN ?= suite/plans/micro.toml

# the main job: Routing-Free MoE and every baseline at the CPU reproduction size (one seed each,
# ~5 min per run on 2 cores), stored in $(DB), then the comparison table. Finished runs are
# skipped and interrupted ones resume, so re-running continues where it stopped.
run: setup build
	$(MOEBENCH) data fetch
	$(MOEBENCH) data prepare --vocab bpe8k
	$(MOEBENCH) env
	$(MOEBENCH) matrix --plan $(PLAN) --db $(DB)
	$(MOEBENCH) table --db $(DB)

# one tiny run end to end (seconds), in its own database
smoke: build
	$(MOEBENCH) data fetch
	$(MOEBENCH) data prepare --vocab bpe8k
	$(MOEBENCH) train --config tiny --db results/smoke.sqlite
	$(MOEBENCH) table --db results/smoke.sqlite

matrix: build
	$(MOEBENCH) matrix --plan $(PLAN) --db $(DB)

tables: build
	$(MOEBENCH) table --db $(DB) --format md

# the static HTML report of the micro runs in $(DB) (figures by gnuplot, which setup installs;
# a fresh machine first imports the committed runs of results/micro_export):
# results/micro_report/index.html, its SVGs and plot-data/
REPORT_DIR ?= results/micro_report
report: setup build
	[ -f $(DB) ] || $(MOEBENCH) import --db $(DB) results/micro_export
	$(MOEBENCH) report --db $(DB) --out $(REPORT_DIR) --size micro

# rewrites the golden curves (suite/tests/golden/<method>.csv: every method's tiny run, a row per
# step) after a change that moves them on purpose; the commit says why. Prints the float noise
# (reference vs cpu backend) beside the tolerance.
golden: build
	$(MOEBENCH) data fetch
	$(MOEBENCH) data prepare --vocab bpe8k
	MOEBENCH_GOLDEN_WRITE=1 $(BUILD)/golden_tests --gtest_filter='Methods/Golden.*'
	git diff --stat -- suite/tests/golden

# kernel benchmarks (MOEBENCH_BENCH_FULL=1 adds the 8192-token micro-batches) into $(DB)
bench: build
	$(BUILD)/bench_tokenizer --benchmark_counters_tabular=true
	$(BUILD)/bench_kernels --benchmark_out=$(BUILD)/bench_kernels.json \
	  --benchmark_out_format=json --benchmark_counters_tabular=true
	$(MOEBENCH) bench import --json $(BUILD)/bench_kernels.json --db $(DB)
	$(MOEBENCH) bench show --db $(DB)

# the GPU path (issue 14): build-gpu against a CUDA LibTorch, ctest -L gpu, CUDA benchmarks, S
# training, results/gpu/<device>.md; without a GPU it compiles the .cu files, self-tests and exits 0
gpu-check:
	bash scripts/gpu_check.sh

FORMAT_FILES = find suite models baselines kernels datasets \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0

format:
	$(FORMAT_FILES) | xargs -0 -r clang-format -i

# CI: fails, listing each offending line, when a source is not as `make format` would leave it
format-check:
	$(FORMAT_FILES) | xargs -0 -r clang-format --dry-run -Werror

# CI: clang-tidy (.clang-tidy) on the libraries' sources, $(JOBS) at a time, from
# $(BUILD)/compile_commands.json (configure only, no build needed). The CLI layer (suite/main.cpp,
# suite/cli_*.cpp), tests/ and bench/ are left out to stay within CI's time (each torch TU costs
# clang-tidy ~80 CPU-s parsing torch; the library set takes ~20 min on 2 cores); LINT_ALL=1 adds
# them. See scripts/lint.sh.
lint: configure
	bash scripts/lint.sh $(BUILD) $(JOBS)

clean:
	rm -rf $(BUILD)
