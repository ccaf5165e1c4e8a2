// Byte-level BPE trainer: incremental pair counts, a lazily corrected max-heap and a pair ->
// words index, so each merge touches only the words that contain the merged pair.
#include "datasets/bpe_train.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_set>

#include "datasets/bpe.h"

namespace moebench::data {
namespace {

using PairKey = uint64_t;

PairKey pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t key_left(PairKey k) { return static_cast<int32_t>(k >> 32); }
int32_t key_right(PairKey k) { return static_cast<int32_t>(k & 0xffffffffu); }

// Heap entries may overestimate a pair's count (counts of existing pairs only ever fall after
// the pair is created); a popped entry whose count is stale is re-pushed with the true count.
// An overestimate only pops earlier, so the first entry that pops with its true count is the
// true maximum, and the key order among equal counts gives the documented tie-break.
struct HeapEntry {
  int64_t count;
  PairKey key;
};
struct HeapLess {
  bool operator()(const HeapEntry& a, const HeapEntry& b) const {
    if (a.count != b.count) return a.count < b.count;
    return a.key > b.key;  // smaller (left, right) first
  }
};

// Words as one flat symbol array; a merge shrinks a word in place.
struct Words {
  std::vector<int32_t> symbols;
  std::vector<size_t> begin;
  std::vector<int32_t> length;
  std::vector<int64_t> count;
};

Words build_words(const std::unordered_map<std::string, int64_t>& word_counts) {
  // Sorted so memory layout (and so the run time) does not depend on the hash-map order; the
  // merges would be identical either way.
  std::vector<const std::pair<const std::string, int64_t>*> sorted;
  sorted.reserve(word_counts.size());
  size_t total = 0;
  for (const auto& wc : word_counts) {
    if (wc.second < 0) {
      throw std::invalid_argument("train_byte_bpe: negative count for a word");
    }
    // Single-byte words hold no pair; they cannot influence any merge.
    if (wc.second == 0 || wc.first.size() < 2) continue;
    sorted.push_back(&wc);
    total += wc.first.size();
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });

  Words w;
  w.symbols.reserve(total);
  w.begin.reserve(sorted.size());
  w.length.reserve(sorted.size());
  w.count.reserve(sorted.size());
  for (const auto* wc : sorted) {
    w.begin.push_back(w.symbols.size());
    w.length.push_back(static_cast<int32_t>(wc->first.size()));
    w.count.push_back(wc->second);
    for (unsigned char c : wc->first) w.symbols.push_back(c);
  }
  return w;
}

void push_word(std::vector<int32_t>& list, int32_t word) {
  // A word adds itself once per occurrence; skipping the immediate repeat keeps lists short.
  if (list.empty() || list.back() != word) list.push_back(word);
}

void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp.string() + ": " + ec.message());
}

}  // namespace

BpeTrainResult train_byte_bpe(const std::unordered_map<std::string, int64_t>& word_counts,
                              int vocab_size, const BpeTrainProgress& progress,
                              int64_t min_pair_count) {
  if (vocab_size < 257) {
    throw std::invalid_argument("train_byte_bpe: vocab_size " + std::to_string(vocab_size) +
                                " < 257 (256 bytes + <|endoftext|>)");
  }
  if (min_pair_count < 1) throw std::invalid_argument("train_byte_bpe: min_pair_count < 1");
  const int merges_total = vocab_size - 257;

  Words words = build_words(word_counts);
  const auto num_words = static_cast<int32_t>(words.count.size());

  std::unordered_map<PairKey, int64_t> pair_count;
  std::unordered_map<PairKey, std::vector<int32_t>> pair_words;  // may hold stale words
  for (int32_t w = 0; w < num_words; ++w) {
    const int32_t* s = &words.symbols[words.begin[w]];
    for (int32_t i = 0; i + 1 < words.length[w]; ++i) {
      const PairKey k = pair_key(s[i], s[i + 1]);
      pair_count[k] += words.count[w];
      push_word(pair_words[k], w);
    }
  }
  std::vector<HeapEntry> heap;
  heap.reserve(pair_count.size());
  for (const auto& [k, c] : pair_count) heap.push_back({c, k});
  std::make_heap(heap.begin(), heap.end(), HeapLess{});

  std::vector<std::string> token_bytes(256);
  for (int b = 0; b < 256; ++b) token_bytes[b] = std::string(1, static_cast<char>(b));
  std::unordered_set<std::string> known(token_bytes.begin(), token_bytes.end());

  BpeTrainResult result;
  result.merges.reserve(merges_total);
  std::vector<int32_t> visited(num_words, -1);  // id of the last merge that rewrote the word
  std::vector<PairKey> created;

  auto pop = [&] {
    std::pop_heap(heap.begin(), heap.end(), HeapLess{});
    const HeapEntry e = heap.back();
    heap.pop_back();
    return e;
  };

  while (static_cast<int>(result.merges.size()) < merges_total && !heap.empty()) {
    const HeapEntry top = pop();
    auto it = pair_count.find(top.key);
    const int64_t actual = it == pair_count.end() ? 0 : it->second;
    if (actual != top.count) {
      if (actual > 0) {
        heap.push_back({actual, top.key});
        std::push_heap(heap.begin(), heap.end(), HeapLess{});
      }
      continue;
    }
    if (actual < min_pair_count) break;  // the true maximum: nothing left worth merging
    const int32_t left = key_left(top.key);
    const int32_t right = key_right(top.key);
    std::string merged = token_bytes[left] + token_bytes[right];
    if (!known.insert(merged).second) {
      throw std::logic_error("train_byte_bpe: merge " + std::to_string(result.merges.size()) +
                             " repeats the spelling of an earlier token");
    }

    const auto new_id = static_cast<int32_t>(token_bytes.size());
    result.merges.emplace_back(token_bytes[left], token_bytes[right]);
    token_bytes.push_back(std::move(merged));

    std::vector<int32_t> affected = std::move(pair_words[top.key]);
    pair_words.erase(top.key);
    created.clear();
    for (const int32_t w : affected) {
      if (visited[w] == new_id) continue;
      visited[w] = new_id;
      int32_t* s = &words.symbols[words.begin[w]];
      const int32_t len = words.length[w];
      const int64_t c = words.count[w];
      int32_t out = 0;
      int32_t i = 0;
      // In-place left-to-right rewrite: s[0, out) is the merged prefix, s[i, len) the untouched
      // rest. The previous token is read from the output (it may be new_id from the previous
      // match, whose (new_id, left) increment this match's decrement cancels), the next one from
      // the input.
      while (i < len) {
        if (i + 1 < len && s[i] == left && s[i + 1] == right) {
          pair_count[top.key] -= c;
          if (out > 0) {
            const int32_t prev = s[out - 1];
            pair_count[pair_key(prev, left)] -= c;
            const PairKey k = pair_key(prev, new_id);
            pair_count[k] += c;
            push_word(pair_words[k], w);
            created.push_back(k);
          }
          if (i + 2 < len) {
            const int32_t next = s[i + 2];
            pair_count[pair_key(right, next)] -= c;
            const PairKey k = pair_key(new_id, next);
            pair_count[k] += c;
            push_word(pair_words[k], w);
            created.push_back(k);
          }
          s[out++] = new_id;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      words.length[w] = out;
    }
    pair_count.erase(top.key);  // now zero: the pair exists nowhere

    // Only pairs containing new_id gained count; push each once with its final count.
    std::sort(created.begin(), created.end());
    created.erase(std::unique(created.begin(), created.end()), created.end());
    for (const PairKey k : created) {
      auto ci = pair_count.find(k);
      if (ci == pair_count.end()) continue;
      if (ci->second > 0) {
        heap.push_back({ci->second, k});
        std::push_heap(heap.begin(), heap.end(), HeapLess{});
      } else {
        // Created and consumed within this merge ((new, x) then (new, new) in "aaaa").
        pair_count.erase(ci);
        pair_words.erase(k);
      }
    }
    if (progress) progress(static_cast<int>(result.merges.size()), merges_total);
  }
  return result;
}

void write_gpt2_vocab_files(const BpeTrainResult& result, const std::filesystem::path& dir) {
  const auto& spell = byte_to_unicode();
  std::vector<std::string> token_bytes(256);
  for (int b = 0; b < 256; ++b) token_bytes[b] = std::string(1, static_cast<char>(b));
  std::unordered_set<std::string> known(token_bytes.begin(), token_bytes.end());

  std::string bpe = "#version: 0.2\n";
  for (size_t i = 0; i < result.merges.size(); ++i) {
    const auto& [left, right] = result.merges[i];
    if (!known.count(left) || !known.count(right)) {
      throw std::invalid_argument("write_gpt2_vocab_files: merge " + std::to_string(i) +
                                  " uses a token not defined before it");
    }
    std::string merged = left + right;
    if (!known.insert(merged).second) {
      throw std::invalid_argument("write_gpt2_vocab_files: merge " + std::to_string(i) +
                                  " repeats the spelling of an earlier token");
    }
    token_bytes.push_back(std::move(merged));
    bpe += bytes_to_symbols(left);
    bpe += ' ';
    bpe += bytes_to_symbols(right);
    bpe += '\n';
  }
  if (known.count(kEndOfText)) {
    throw std::invalid_argument("write_gpt2_vocab_files: a merge spells <|endoftext|>");
  }

  nlohmann::ordered_json encoder = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) encoder[spell[b]] = b;
  for (size_t id = 256; id < token_bytes.size(); ++id) {
    encoder[bytes_to_symbols(token_bytes[id])] = static_cast<int64_t>(id);
  }
  encoder[kEndOfText] = static_cast<int64_t>(token_bytes.size());

  std::filesystem::create_directories(dir);
  write_file_atomically(dir / "encoder.json", encoder.dump() + "\n");
  write_file_atomically(dir / "vocab.bpe", bpe);
}

}  // namespace moebench::data
