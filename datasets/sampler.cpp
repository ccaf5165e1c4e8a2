// Stateless seeded batch sampler (packed windows or padded documents) over a token shard.
// Padded mode follows the paper's recipe: truncate, right-pad, mask padding out of the loss.
#include "datasets/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace moebench::data {

BatchSampler::BatchSampler(const ShardReader& shard, SampleMode mode, int seq_len, int batch_size,
                           uint64_t seed)
    : shard_(shard), mode_(mode), seq_len_(seq_len), batch_size_(batch_size), seed_(seed) {
  if (seq_len < 1 || batch_size < 1) {
    throw std::invalid_argument(
        fmt::format("sampler: seq_len ({}) and batch_size ({}) must be "
                    "positive",
                    seq_len, batch_size));
  }
  num_samples_ =
      mode == SampleMode::kPacked
          ? static_cast<int64_t>(shard.num_tokens() > 0 ? (shard.num_tokens() - 1) / seq_len : 0)
          : static_cast<int64_t>(shard.num_docs());
  if (num_samples_ < batch_size) {
    throw std::runtime_error(
        fmt::format("sampler: shard {} holds {} samples of length {}, fewer than one batch of {}",
                    shard.path().string(), num_samples_, seq_len, batch_size));
  }
}

const std::vector<int64_t>& BatchSampler::permutation(int64_t epoch) const {
  if (epoch != cached_epoch_) {
    cached_perm_.resize(num_samples_);
    for (int64_t i = 0; i < num_samples_; ++i) cached_perm_[i] = i;
    uint64_t state = seed_ * 0x100000001B3ULL ^ (static_cast<uint64_t>(epoch) + 1) * 0x9E37ULL;
    for (int64_t i = num_samples_ - 1; i > 0; --i) {  // Fisher-Yates
      const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
      std::swap(cached_perm_[i], cached_perm_[j]);
    }
    cached_epoch_ = epoch;
  }
  return cached_perm_;
}

std::vector<int64_t> BatchSampler::sample_ids(int64_t step) const {
  if (step < 0) throw std::invalid_argument("sampler: negative step");
  std::vector<int64_t> ids(batch_size_);
  for (int b = 0; b < batch_size_; ++b) {
    const int64_t pos = step * batch_size_ + b;
    ids[b] = permutation(pos / num_samples_)[pos % num_samples_];
  }
  return ids;
}

Batch BatchSampler::make_batch(const std::vector<int64_t>& ids) const {
  Batch batch;
  batch.batch_size = static_cast<int>(ids.size());
  batch.seq_len = seq_len_;
  const size_t n = ids.size() * static_cast<size_t>(seq_len_);
  const auto pad = static_cast<int32_t>(shard_.header().eot_id);
  batch.inputs.assign(n, pad);
  batch.targets.assign(n, pad);
  batch.mask.assign(n, 0);
  const uint16_t* tok = shard_.tokens();
  const uint32_t vocab = shard_.header().vocab_size;
  for (size_t r = 0; r < ids.size(); ++r) {
    if (ids[r] < 0 || ids[r] >= num_samples_) {
      throw std::out_of_range(
          fmt::format("sampler: sample {} outside 0..{}", ids[r], num_samples_ - 1));
    }
    uint64_t begin, avail;  // a row needs seq_len + 1 tokens: inputs and shifted targets
    if (mode_ == SampleMode::kPacked) {
      begin = static_cast<uint64_t>(ids[r]) * seq_len_;
      avail = seq_len_ + 1;
    } else {
      const DocEntry& d = shard_.docs()[ids[r]];
      begin = d.begin;
      avail = std::min<uint64_t>(uint64_t{d.length} + 1, seq_len_ + 1);  // + its <|endoftext|>
    }
    const size_t row = r * static_cast<size_t>(seq_len_);
    uint16_t top = tok[begin];  // highest id of the row, inputs and targets together
    for (uint64_t t = 0; t + 1 < avail; ++t) {
      batch.inputs[row + t] = tok[begin + t];
      batch.targets[row + t] = tok[begin + t + 1];
      batch.mask[row + t] = 1;
      top = std::max(top, tok[begin + t + 1]);
    }
    // A shard opened without verify() may still hold ids past the vocabulary; caught here, they
    // name the file and document instead of failing deep inside the embedding lookup.
    if (top >= vocab) {
      const uint16_t* bad = std::find_if(tok + begin, tok + begin + avail,
                                         [vocab](uint16_t t) { return t >= vocab; });
      throw std::runtime_error(
          fmt::format("sampler: {}", shard_.bad_token_message(static_cast<uint64_t>(bad - tok))));
    }
    batch.real_tokens += static_cast<int64_t>(avail - 1);
  }
  return batch;
}

}  // namespace moebench::data
