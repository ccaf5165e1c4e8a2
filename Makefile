# moebench: thin wrapper over scripts/ and CMake. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what they need first (scripts/setup.sh, idempotent).
BUILD ?= build
JOBS ?= $(shell nproc)
MOEBENCH := $(BUILD)/moebench
CMAKE_FLAGS ?=
export MOEBENCH_DATA ?= $(CURDIR)/data

.PHONY: all setup configure build data test run smoke matrix tables bench format clean

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
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

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

# kernel benchmarks (MOEBENCH_BENCH_FULL=1 adds the 8192-token micro-batches) into $(DB)
bench: build
	$(BUILD)/bench_tokenizer --benchmark_counters_tabular=true
	$(BUILD)/bench_kernels --benchmark_out=$(BUILD)/bench_kernels.json \
	  --benchmark_out_format=json --benchmark_counters_tabular=true
	$(MOEBENCH) bench import --json $(BUILD)/bench_kernels.json --db $(DB)
	$(MOEBENCH) bench show --db $(DB)

format:
	find suite models baselines kernels datasets \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 | xargs -0 -r clang-format -i

clean:
	rm -rf $(BUILD)
