// Shard preparation: clean corpus, split by id hash, tokenize in parallel, write shards.
// Implements the data flow of shared/DESIGN.md ("npm tarballs -> ... -> uint16 shards").
#include "datasets/prepare.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "datasets/bpe.h"
#include "datasets/bpe_train.h"
#include "datasets/corpus.h"
#include "datasets/hashing.h"
#include "datasets/shard.h"
#include "datasets/vocab.h"

namespace moebench::data {
namespace {

// Bump when cleaning, splitting or the shard layout changes: old shards are then rebuilt.
constexpr int kPrepareVersion = 2;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs fn(i) for i in [0, n) on `threads` threads, reporting progress on stderr.
void parallel_for(size_t n, int threads, const std::string& what,
                  const std::function<void(size_t)>& fn, const std::vector<size_t>* weights) {
  std::atomic<size_t> next{0};
  std::atomic<size_t> done_weight{0};
  size_t total_weight = 0;
  for (size_t i = 0; i < n; ++i) total_weight += weights ? (*weights)[i] : 1;
  const auto t0 = Clock::now();
  std::mutex print_mu;
  auto last_print = t0;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      fn(i);
      const size_t w =
          done_weight.fetch_add(weights ? (*weights)[i] : 1) + (weights ? (*weights)[i] : 1);
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lock(print_mu);
      if (now - last_print > std::chrono::seconds(2) || w == total_weight) {
        last_print = now;
        const double frac = total_weight ? double(w) / total_weight : 1.0;
        const double el = seconds_since(t0);
        fmt::print(stderr, "\r{}: {:5.1f}%  {:.1f} s elapsed, ETA {:.0f} s   ", what, 100.0 * frac,
                   el, frac > 0 ? el / frac - el : 0.0);
        if (w == total_weight) fmt::print(stderr, "\n");
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

std::string corpus_fingerprint() {
  std::string s = fmt::format("prepare-v{}", kPrepareVersion);
  for (const auto& p : pinned_packages()) s += ":" + p.sha256;
  return fmt::format("{:016x}", fnv1a64(s));
}

void train_vocab(const std::filesystem::path& data_dir, const std::string& name,
                 const std::vector<Document>& docs, const std::vector<Split>& splits, int threads) {
  const int size = trained_vocab_size(name);
  const auto t0 = Clock::now();
  PreTokenizer pre;
  std::vector<std::unordered_map<std::string, int64_t>> counts(threads);
  std::vector<size_t> train_idx, weights;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (splits[i] == Split::kTrain) {
      train_idx.push_back(i);
      weights.push_back(docs[i].text.size());
    }
  }
  // Each thread counts into its own map; chunks are strided by thread to keep them apart.
  std::atomic<int> next_slot{0};
  const size_t chunks = static_cast<size_t>(threads);
  parallel_for(
      chunks, threads, fmt::format("counting words for {}", name),
      [&](size_t c) {
        auto& local = counts[next_slot.fetch_add(1)];
        for (size_t k = c; k < train_idx.size(); k += chunks) {
          for (auto piece : pre.split(docs[train_idx[k]].text)) ++local[std::string(piece)];
        }
      },
      nullptr);
  for (int t = 1; t < threads; ++t) {
    for (auto& [w, c] : counts[t]) counts[0][w] += c;
    counts[t].clear();
  }
  fmt::print(stderr, "training byte-level BPE '{}' ({} ids) on {} distinct words\n", name, size,
             counts[0].size());
  const auto result = train_byte_bpe(counts[0], size, [&](int done, int total) {
    if (done % 500 == 0 || done == total) {
      fmt::print(stderr, "\rBPE merges: {}/{}  {:.1f} s   ", done, total, seconds_since(t0));
      if (done == total) fmt::print(stderr, "\n");
    }
  });
  const auto dir = vocab_dir(data_dir, name);
  const auto tmp = std::filesystem::path(dir.string() + ".tmp");
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  write_gpt2_vocab_files(result, tmp);
  std::filesystem::remove_all(dir);
  std::filesystem::rename(tmp, dir);
  fmt::print(stderr, "vocabulary '{}' written to {} in {:.1f} s\n", name, dir.string(),
             seconds_since(t0));
}

}  // namespace

std::filesystem::path shard_dir(const std::filesystem::path& data_dir, const std::string& vocab) {
  return data_dir / "tokens" / vocab;
}

nlohmann::json read_manifest(const std::filesystem::path& data_dir, const std::string& vocab) {
  const auto path = shard_dir(data_dir, vocab) / "manifest.json";
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(
        fmt::format("no prepared shards for vocabulary '{}' ({} missing); "
                    "run `moebench data prepare --vocab {}`",
                    vocab, path.string(), vocab));
  }
  return nlohmann::json::parse(in);
}

nlohmann::json prepare_shards(const PrepareOptions& opts) {
  const auto t_start = Clock::now();
  const auto out_dir = shard_dir(opts.data_dir, opts.vocab);
  if (opts.vocab != "gpt2" && trained_vocab_size(opts.vocab) == 0) {
    load_vocab(opts.data_dir, opts.vocab);  // throws the "unknown vocabulary" explanation
  }
  require_fetched(opts.data_dir);
  if (!opts.force && std::filesystem::exists(out_dir / "manifest.json")) {
    auto m = read_manifest(opts.data_dir, opts.vocab);
    const bool vocab_ok =
        std::filesystem::exists(vocab_dir(opts.data_dir, opts.vocab) / "encoder.json") &&
        m.value("vocab_identity", "") ==
            fmt::format("{:016x}", load_vocab(opts.data_dir, opts.vocab).identity());
    if (m.value("fingerprint", "") == corpus_fingerprint() && vocab_ok) {
      fmt::print(stderr, "shards for '{}' are current in {} (use --force to rebuild)\n", opts.vocab,
                 out_dir.string());
      return m;
    }
  }

  auto t0 = Clock::now();
  const std::vector<Document> docs = load_corpus(opts.data_dir);
  const std::vector<Split> splits = assign_splits(docs);
  const double t_load = seconds_since(t0);
  fmt::print(stderr, "corpus: {} documents loaded and split in {:.1f} s\n", docs.size(), t_load);

  t0 = Clock::now();
  if (opts.vocab != "gpt2" &&
      !std::filesystem::exists(vocab_dir(opts.data_dir, opts.vocab) / "encoder.json")) {
    train_vocab(opts.data_dir, opts.vocab, docs, splits, opts.threads);
  }
  const double t_vocab = seconds_since(t0);
  const BpeTokenizer tok = load_vocab(opts.data_dir, opts.vocab);

  t0 = Clock::now();
  std::vector<std::vector<int32_t>> ids(docs.size());
  std::vector<size_t> weights(docs.size());
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < docs.size(); ++i) total_bytes += (weights[i] = docs[i].text.size());
  parallel_for(
      docs.size(), opts.threads, fmt::format("tokenizing with {}", opts.vocab),
      [&](size_t i) { ids[i] = tok.encode(docs[i].text); }, &weights);
  const double t_encode = seconds_since(t0);

  t0 = Clock::now();
  const VocabInfo vinfo{tok.name(), tok.identity(), static_cast<uint32_t>(tok.vocab_size()),
                        static_cast<uint32_t>(tok.eot_id())};
  nlohmann::json stats = nlohmann::json::object();
  const Split all_splits[] = {Split::kTrain, Split::kVal, Split::kHeldout};
  // Remove the manifest first: if we die while writing shards, nothing claims to be current.
  std::filesystem::create_directories(out_dir);
  std::filesystem::remove(out_dir / "manifest.json");
  for (Split sp : all_splits) {
    ShardWriter writer(out_dir / fmt::format("{}.bin", split_name(sp)), vinfo);
    nlohmann::json per_source = nlohmann::json::object();
    for (size_t i = 0; i < docs.size(); ++i) {
      if (splits[i] != sp) continue;
      writer.add_document(ids[i], doc_id_hash(docs[i].id), static_cast<uint32_t>(docs[i].source));
      auto& s = per_source[source_name(docs[i].source)];
      if (s.is_null()) s = {{"docs", 0}, {"tokens", 0}, {"bytes", 0}};
      s["docs"] = s["docs"].get<int64_t>() + 1;
      s["tokens"] = s["tokens"].get<int64_t>() + static_cast<int64_t>(ids[i].size());
      s["bytes"] = s["bytes"].get<int64_t>() + static_cast<int64_t>(docs[i].text.size());
    }
    writer.finish();
    stats[split_name(sp)] = per_source;
  }
  const double t_write = seconds_since(t0);

  nlohmann::json m;
  m["vocab"] = opts.vocab;
  m["vocab_size"] = tok.vocab_size();
  m["vocab_identity"] = fmt::format("{:016x}", tok.identity());
  m["fingerprint"] = corpus_fingerprint();
  m["splits"] = stats;
  m["threads"] = opts.threads;
  m["corpus_bytes"] = total_bytes;
  m["seconds"] = {{"load_and_split", t_load},
                  {"train_vocab", t_vocab},
                  {"encode", t_encode},
                  {"write", t_write},
                  {"total", seconds_since(t_start)}};
  m["encode_mb_per_s"] = total_bytes / 1e6 / std::max(t_encode, 1e-9);
  const auto tmp = out_dir / "manifest.json.tmp";
  std::ofstream(tmp) << m.dump(2) << "\n";
  std::filesystem::rename(tmp, out_dir / "manifest.json");
  fmt::print(stderr,
             "prepared {} in {:.1f} s (tokenizing {:.1f} MB at {:.1f} MB/s on {} threads)\n",
             out_dir.string(), seconds_since(t_start), total_bytes / 1e6,
             m["encode_mb_per_s"].get<double>(), opts.threads);
  return m;
}

}  // namespace moebench::data
