// Prepared real shards: no held-out or validation document enters training, checked by id hash
// and, independently, by content (token sequences), plus manifest totals against the shards.
#include <gtest/gtest.h>

#include <unordered_set>

#include "datasets/hashing.h"
#include "datasets/prepare.h"
#include "datasets/shard.h"
#include "datasets/tests/test_util.h"

namespace moebench::data {
namespace {

uint64_t content_hash(const ShardReader& s, uint64_t d) {
  const DocEntry& e = s.docs()[d];
  return fnv1a64(s.tokens() + e.begin, e.length * sizeof(uint16_t), e.length);
}

TEST(PreparedShards, HeldoutAndValidationNeverInTrain) {
  const auto dir = shard_dir(testing::data_dir(), "gpt2");
  MOEBENCH_SKIP_WITHOUT_DATA(dir / "train.bin", "moebench data prepare --vocab gpt2");
  ShardReader train(dir / "train.bin"), val(dir / "val.bin"), held(dir / "heldout.bin");
  std::unordered_set<uint64_t> train_ids, train_content;
  for (uint64_t d = 0; d < train.num_docs(); ++d) {
    train_ids.insert(train.docs()[d].id_hash);
    train_content.insert(content_hash(train, d));
  }
  EXPECT_EQ(train_ids.size(), train.num_docs()) << "a document id repeats within train";
  for (const ShardReader* other : {&val, &held}) {
    ASSERT_GT(other->num_docs(), 0u);
    for (uint64_t d = 0; d < other->num_docs(); ++d) {
      EXPECT_EQ(train_ids.count(other->docs()[d].id_hash), 0u)
          << other->path() << " doc " << d << " id is also in train";
      EXPECT_EQ(train_content.count(content_hash(*other, d)), 0u)
          << other->path() << " doc " << d << " has the same tokens as a train document";
    }
  }
}

TEST(PreparedShards, ManifestAgreesWithShards) {
  const auto dir = shard_dir(testing::data_dir(), "gpt2");
  MOEBENCH_SKIP_WITHOUT_DATA(dir / "train.bin", "moebench data prepare --vocab gpt2");
  const auto m = read_manifest(testing::data_dir(), "gpt2");
  for (const char* split : {"train", "val", "heldout"}) {
    ShardReader s(dir / (std::string(split) + ".bin"));
    int64_t docs = 0, tokens = 0;
    for (auto& [src, v] : m["splits"][split].items()) {
      docs += v["docs"].get<int64_t>();
      tokens += v["tokens"].get<int64_t>();
    }
    EXPECT_EQ(static_cast<uint64_t>(docs), s.num_docs()) << split;
    EXPECT_EQ(static_cast<uint64_t>(tokens + docs), s.num_tokens()) << split << " (+1 eot per doc)";
  }
}

}  // namespace
}  // namespace moebench::data
