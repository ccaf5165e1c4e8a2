// Byte-level BPE trainer: learns GPT-2-style merges from pre-token counts and writes them as
// encoder.json + vocab.bpe in GPT-2's format, so BpeTokenizer::load reads a trained vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moebench::data {

// Pairs seen fewer times than this are never merged: a pair that occurs once in the whole
// training split is memorisation, not a reusable unit.
constexpr int64_t kDefaultMinPairCount = 2;

struct BpeTrainResult {
  // Raw bytes of the left and right token of each merge, in rank order. Merge i creates token
  // id 256 + i; ids 0..255 are the single bytes (id b = byte b); the last id is <|endoftext|>.
  std::vector<std::pair<std::string, std::string>> merges;

  // 256 bytes + merges + <|endoftext|>; below the requested size when training stopped early.
  int vocab_size() const { return 257 + static_cast<int>(merges.size()); }
};

// Called after every merge with (merges done, merges requested); throttle in the callback.
using BpeTrainProgress = std::function<void(int merges_done, int merges_total)>;

// Trains vocab_size - 257 merges on `word_counts` (pre-token raw bytes, as cut by the GPT-2
// pre-tokenizer -> occurrences); merges never cross pre-token boundaries.
//
// The rules, which the reference trainer in the tests repeats and which make the output a pure
// function of the word counts (independent of hash-map order):
//  - Each step merges the adjacent token pair with the highest count, a pair's count being the
//    sum over words of (occurrences in the word) x (word count).
//  - Ties go to the smallest (left id, right id), compared lexicographically.
//  - A merge is applied in every word left to right without overlap, as GPT-2 and HF do:
//    merging (a, a) turns "aaa" into "aa a" and "aaaa" into "aa aa".
//  - Every merge spells new bytes: wherever a token's bytes end up as that token, no merge
//    crossed their edges, so they went through the same merges as the bytes alone would, and
//    two different merges cannot produce the same bytes. The trainer checks this (an internal
//    error if broken), since encoder.json needs one id per spelling.
//  - Training stops early once the best remaining pair has count < min_pair_count.
// Throws std::invalid_argument on vocab_size < 257, min_pair_count < 1 or a negative count.
BpeTrainResult train_byte_bpe(const std::unordered_map<std::string, int64_t>& word_counts,
                              int vocab_size, const BpeTrainProgress& progress = {},
                              int64_t min_pair_count = kDefaultMinPairCount);

// Writes <dir>/encoder.json (spelling -> id, in id order) and <dir>/vocab.bpe ("#version: 0.2",
// then one "LEFT RIGHT" line per merge), spelled through bytes_to_symbols; creates `dir`.
// The output is byte-for-byte deterministic. Each file is written to a temporary name first and
// renamed, so a crash never leaves a half-written vocabulary behind. Throws
// std::invalid_argument when a merge uses a token not defined before it or repeats a spelling,
// std::runtime_error on I/O failure.
void write_gpt2_vocab_files(const BpeTrainResult& result, const std::filesystem::path& dir);

}  // namespace moebench::data
