// Token shards (round trip, corruption, truncation, vocabulary checks) and the batch sampler
// (determinism, exact resume, epoch coverage, packed/padded row contents checked by hand).
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "datasets/sampler.h"
#include "datasets/shard.h"
#include "datasets/tests/test_util.h"

namespace moebench::data {
namespace {

const VocabInfo kVocab{"toy", 0x1234, 1000, 999};

std::vector<std::vector<int32_t>> random_docs(uint32_t seed, int n, int max_len) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> docs(n);
  for (auto& d : docs) {
    d.resize(rng() % (max_len + 1));  // includes empty documents
    for (auto& t : d) t = static_cast<int32_t>(rng() % 999);
  }
  return docs;
}

std::filesystem::path write_shard(const std::filesystem::path& dir,
                                  const std::vector<std::vector<int32_t>>& docs) {
  const auto path = dir / "s.bin";
  ShardWriter w(path, kVocab);
  for (size_t i = 0; i < docs.size(); ++i) w.add_document(docs[i], 1000 + i, i % 3);
  w.finish();
  return path;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Shard, RoundTripKeepsEveryTokenAndDocument) {
  const auto docs = random_docs(7, 200, 50);
  const auto path = write_shard(testing::temp_dir("shard"), docs);
  ShardReader r(path);
  ASSERT_EQ(r.num_docs(), docs.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const DocEntry& e = r.docs()[i];
    EXPECT_EQ(e.begin, pos);
    EXPECT_EQ(e.length, docs[i].size());
    EXPECT_EQ(e.id_hash, 1000 + i);
    EXPECT_EQ(e.source, i % 3);
    for (size_t t = 0; t < docs[i].size(); ++t) ASSERT_EQ(r.tokens()[pos + t], docs[i][t]);
    EXPECT_EQ(r.tokens()[pos + docs[i].size()], kVocab.eot_id) << "separator after doc " << i;
    pos += docs[i].size() + 1;
  }
  EXPECT_EQ(r.num_tokens(), pos);
  EXPECT_EQ(r.vocab_name(), "toy");
}

TEST(Shard, CorruptByteIsAChecksumError) {
  const auto path = write_shard(testing::temp_dir("shard"), random_docs(8, 50, 40));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(sizeof(ShardHeader) + 10);
    f.put('\x7f');
  }
  const std::string err = error_of([&] { ShardReader r(path); });
  EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
  EXPECT_NE(err.find("data prepare"), std::string::npos) << err;
}

TEST(Shard, TruncatedFileIsAClearError) {
  const auto path = write_shard(testing::temp_dir("shard"), random_docs(9, 50, 40));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
  EXPECT_NE(error_of([&] { ShardReader r(path); }).find("truncated"), std::string::npos);
  std::filesystem::resize_file(path, 20);  // shorter than the header
  EXPECT_NE(error_of([&] { ShardReader r(path); }).find("truncated"), std::string::npos);
}

TEST(Shard, VocabularyMismatchNamesBoth) {
  const auto path = write_shard(testing::temp_dir("shard"), random_docs(10, 5, 10));
  ShardReader r(path);
  EXPECT_NO_THROW(r.require_vocab(kVocab));
  const std::string err = error_of([&] { r.require_vocab({"gpt2", 0x99, 50257, 50256}); });
  EXPECT_NE(err.find("'toy'"), std::string::npos) << err;
  EXPECT_NE(err.find("'gpt2'"), std::string::npos) << err;
  VocabInfo same_name_other_files = kVocab;
  same_name_other_files.identity ^= 1;
  EXPECT_THROW(r.require_vocab(same_name_other_files), std::runtime_error);
}

TEST(Shard, UnfinishedWriterLeavesNoShard) {
  const auto dir = testing::temp_dir("shard");
  {
    ShardWriter w(dir / "x.bin", kVocab);
    w.add_document({1, 2, 3}, 1, 0);
  }  // destroyed without finish(), as when an exception unwinds
  EXPECT_FALSE(std::filesystem::exists(dir / "x.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir / "x.bin.tmp"));
  EXPECT_THROW(ShardWriter(dir / "y.bin", kVocab).add_document({1000}, 1, 0), std::out_of_range);
}

TEST(Sampler, SameSeedSameBatchesAndResumeIsExact) {
  const auto path = write_shard(testing::temp_dir("sampler"), random_docs(11, 300, 60));
  ShardReader r(path);
  for (SampleMode mode : {SampleMode::kPacked, SampleMode::kPadded}) {
    BatchSampler a(r, mode, 16, 8, 42), b(r, mode, 16, 8, 42), c(r, mode, 16, 8, 43);
    std::vector<Batch> straight;
    for (int s = 0; s < 60; ++s) straight.push_back(a.batch(s));  // crosses epoch boundaries
    bool differs = false;
    for (int s = 59; s >= 0; --s) {  // a resumed run asks for steps in any order
      const Batch x = b.batch(s);
      EXPECT_EQ(x.inputs, straight[s].inputs);
      EXPECT_EQ(x.targets, straight[s].targets);
      EXPECT_EQ(x.mask, straight[s].mask);
      differs |= c.batch(s).inputs != x.inputs;
    }
    EXPECT_TRUE(differs) << "another seed gave the same batches";
  }
}

TEST(Sampler, EachSampleOncePerEpoch) {
  const auto path = write_shard(testing::temp_dir("sampler"), random_docs(12, 96, 30));
  ShardReader r(path);
  BatchSampler s(r, SampleMode::kPadded, 8, 8, 5);
  ASSERT_EQ(s.num_samples(), 96);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    for (int step = 0; step < 12; ++step) {
      for (int64_t id : s.sample_ids(epoch * 12 + step)) seen.insert(id);
    }
    for (int64_t i = 0; i < 96; ++i) EXPECT_EQ(seen.count(i), 1u) << "epoch " << epoch;
  }
}

TEST(Sampler, PaddedRowsByHand) {
  // doc0 = [5, 6, 7] (+ eot 999), doc1 = 12 tokens 100..111 (longer than seq_len 4).
  std::vector<std::vector<int32_t>> docs = {{5, 6, 7}, {}};
  for (int i = 0; i < 12; ++i) docs[1].push_back(100 + i);
  ShardReader r(write_shard(testing::temp_dir("sampler"), docs));
  BatchSampler s(r, SampleMode::kPadded, 4, 1, 0);
  const Batch b = s.make_batch({0, 1});
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{5, 6, 7, 999, 100, 101, 102, 103}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{6, 7, 999, 999, 101, 102, 103, 104}));
  EXPECT_EQ(b.mask, (std::vector<uint8_t>{1, 1, 1, 0, 1, 1, 1, 1}));
  EXPECT_EQ(b.real_tokens, 7);
}

TEST(Sampler, PackedRowsByHand) {
  // Stream: 1 2 3 E 4 5 E 6 7 8 9 E (E = 999), 12 tokens -> (12 - 1) / 3 = 3 windows.
  ShardReader r(write_shard(testing::temp_dir("sampler"), {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}}));
  BatchSampler s(r, SampleMode::kPacked, 3, 1, 0);
  ASSERT_EQ(s.num_samples(), 3);
  const Batch b = s.make_batch({1, 2});
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{999, 4, 5, 999, 6, 7}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{4, 5, 999, 6, 7, 8}));
  EXPECT_EQ(b.real_tokens, 6);
}

}  // namespace
}  // namespace moebench::data
