// Deterministic, stateless batch sampler over a token shard: batch(step) depends only on
// (shard, mode, seq_len, batch_size, seed, step), so resuming at any step is exact.
#pragma once

#include <cstdint>
#include <vector>

#include "datasets/shard.h"

namespace moebench::data {

enum class SampleMode {
  kPacked,  // consecutive windows of seq_len+1 tokens over documents joined by <|endoftext|>
  kPadded,  // the paper's: one document (+ <|endoftext|>) per row, truncated, right-padded
};

// Row-major [batch_size, seq_len] int32 arrays; mask[i] = 1 where targets[i] is a real token
// (padding positions are 0 and must not enter the loss).
struct Batch {
  int batch_size = 0;
  int seq_len = 0;
  std::vector<int32_t> inputs;
  std::vector<int32_t> targets;
  std::vector<uint8_t> mask;
  int64_t real_tokens = 0;  // sum of mask
};

class BatchSampler {
 public:
  BatchSampler(const ShardReader& shard, SampleMode mode, int seq_len, int batch_size,
               uint64_t seed);

  int64_t num_samples() const { return num_samples_; }
  int64_t steps_per_epoch() const { return num_samples_ / batch_size_; }

  // Shuffled without replacement within an epoch; epochs follow each other seamlessly.
  std::vector<int64_t> sample_ids(int64_t step) const;
  Batch batch(int64_t step) const { return make_batch(sample_ids(step)); }
  // Rows for explicit samples, in the given order (evaluation walks them sequentially).
  Batch make_batch(const std::vector<int64_t>& ids) const;

 private:
  const std::vector<int64_t>& permutation(int64_t epoch) const;

  const ShardReader& shard_;
  SampleMode mode_;
  int seq_len_, batch_size_;
  uint64_t seed_;
  int64_t num_samples_ = 0;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_perm_;
};

// splitmix64: a portable generator (std::shuffle and distributions differ between standard
// libraries, which would break cross-machine determinism).
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace moebench::data
