// Tokenizer and shard-preparation speed on the real corpus (Google Benchmark).
// Counters: bytes_per_second (MB/s of UTF-8 text); BM_Prepare times the whole `data prepare`.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <thread>

#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "datasets/prepare.h"
#include "datasets/vocab.h"

namespace moebench::data {
namespace {

// A fixed 8 MB slice of the corpus, every source represented (loaded once).
const std::vector<std::string>& sample_texts() {
  static const std::vector<std::string> texts = [] {
    const auto docs = load_corpus(default_data_dir());
    std::vector<std::string> out;
    size_t per_source[kNumSources] = {};
    for (const auto& d : docs) {
      auto& n = per_source[static_cast<int>(d.source)];
      if (n < 8'000'000 / kNumSources) {
        n += d.text.size();
        out.push_back(d.text);
      }
    }
    return out;
  }();
  return texts;
}

void BM_Encode(benchmark::State& state, const std::string& vocab) {
  const auto tok = load_vocab(default_data_dir(), vocab);
  const auto& texts = sample_texts();
  int64_t bytes = 0, tokens = 0;
  for (auto _ : state) {
    for (const auto& t : texts) {
      tokens += static_cast<int64_t>(tok.encode(t).size());
      bytes += static_cast<int64_t>(t.size());
    }
  }
  state.SetBytesProcessed(bytes);
  state.counters["bytes_per_token"] = double(bytes) / std::max<int64_t>(tokens, 1);
}

void BM_PreTokenize(benchmark::State& state) {
  PreTokenizer pre;
  const auto& texts = sample_texts();
  int64_t bytes = 0;
  for (auto _ : state) {
    for (const auto& t : texts) {
      benchmark::DoNotOptimize(pre.split(t).size());
      bytes += static_cast<int64_t>(t.size());
    }
  }
  state.SetBytesProcessed(bytes);
}

// The whole pipeline on the full corpus: load + clean + split + tokenize + write (rewrites the
// gpt2 shards in place with identical content).
void BM_Prepare(benchmark::State& state) {
  PrepareOptions opts;
  opts.data_dir = default_data_dir();
  opts.vocab = "gpt2";
  opts.threads = static_cast<int>(state.range(0));
  opts.force = true;
  double mb = 0;
  for (auto _ : state) {
    const auto m = prepare_shards(opts);
    mb = m["corpus_bytes"].get<double>() / 1e6;
    state.counters["encode_MB_per_s"] = m["encode_mb_per_s"].get<double>();
  }
  state.counters["corpus_MB"] = mb;
}

BENCHMARK_CAPTURE(BM_Encode, vocab_gpt2, std::string("gpt2"))->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PreTokenize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prepare)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace
}  // namespace moebench::data

BENCHMARK_MAIN();
