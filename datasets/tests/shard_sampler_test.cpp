// Token shards (round trip, corruption, truncation, vocabulary checks, a catalogue of damaged
// shards that open or verify must refuse) and the batch sampler (determinism, exact resume, epoch
// coverage, packed/padded row contents checked by hand, ids outside the vocabulary).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "datasets/hashing.h"
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

// ---------------------------------------------------------------------------------------------
// Damaged shards. Each starts as a small valid shard under .../tokens/toy/ and gets exactly one
// kind of damage; the checksum is recomputed unless it is the damage, so the error has to come
// from the check meant to catch it.

// doc0 = 1 2 3 E, doc1 = 4 5 E, doc2 = 6 7 8 9 E, doc3 = E (empty document), doc4 = 10 E:
// documents begin at tokens 0, 4, 7, 12 and 13 of 15.
const std::vector<std::vector<int32_t>> kSmallDocs = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}, {}, {10}};

std::filesystem::path small_shard() {
  return write_shard(testing::temp_dir("damage") / "tokens" / "toy", kSmallDocs);
}

struct ShardParts {
  ShardHeader header{};
  std::vector<uint16_t> tokens;
  std::vector<DocEntry> docs;
};

// Reads a shard written by ShardWriter with plain file I/O (no checks: the parts are for damage).
ShardParts read_parts(const std::filesystem::path& path) {
  ShardParts p;
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(&p.header), sizeof p.header);
  p.tokens.resize(p.header.num_tokens);
  in.read(reinterpret_cast<char*>(p.tokens.data()),
          static_cast<std::streamsize>(p.tokens.size() * 2));
  in.ignore(static_cast<std::streamsize>((8 - p.tokens.size() * 2 % 8) % 8));
  p.docs.resize(p.header.num_docs);
  in.read(reinterpret_cast<char*>(p.docs.data()),
          static_cast<std::streamsize>(p.docs.size() * sizeof(DocEntry)));
  EXPECT_TRUE(in.good()) << path;
  return p;
}

// Writes the parts in shard layout. With `resync` the counts and checksum follow the parts, so
// only the damage done to them shows; without it the header is written exactly as given.
void write_parts(const std::filesystem::path& path, ShardParts p, bool resync = true) {
  if (resync) {
    p.header.num_tokens = p.tokens.size();
    p.header.num_docs = p.docs.size();
    p.header.checksum = fnv1a64(p.docs.data(), p.docs.size() * sizeof(DocEntry),
                                fnv1a64(p.tokens.data(), p.tokens.size() * 2));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&p.header), sizeof p.header);
  out.write(reinterpret_cast<const char*>(p.tokens.data()),
            static_cast<std::streamsize>(p.tokens.size() * 2));
  const char zeros[8] = {};
  out.write(zeros, static_cast<std::streamsize>((8 - p.tokens.size() * 2 % 8) % 8));
  out.write(reinterpret_cast<const char*>(p.docs.data()),
            static_cast<std::streamsize>(p.docs.size() * sizeof(DocEntry)));
  ASSERT_TRUE(out.good()) << path;
}

// Applies `edit` to the parts of the shard at `path` and writes them back.
void damage(const std::filesystem::path& path, const std::function<void(ShardParts&)>& edit,
            bool resync = true) {
  ShardParts p = read_parts(path);
  edit(p);
  write_parts(path, p, resync);
}

struct DamageCase {
  const char* name;
  std::function<void(const std::filesystem::path&)> apply;
  const char* problem;  // expected in the error message
  bool open_sees;       // false: the structure is fine and only verify() (a token scan) can tell
};

const std::vector<DamageCase>& damage_cases() {
  using Path = std::filesystem::path;
  static const std::vector<DamageCase> cases = {
      {"EmptyFile", [](const Path& p) { std::filesystem::resize_file(p, 0); }, "is empty", true},
      {"TruncatedHeader", [](const Path& p) { std::filesystem::resize_file(p, 60); },
       "smaller than its 128-byte header", true},
      {"TruncatedTokens",
       [](const Path& p) { std::filesystem::resize_file(p, sizeof(ShardHeader) + 6); },
       "is truncated", true},
      {"TruncatedTable",
       [](const Path& p) { std::filesystem::resize_file(p, std::filesystem::file_size(p) - 5); },
       "is truncated", true},
      {"TrailingBytes",
       [](const Path& p) { std::ofstream(p, std::ios::binary | std::ios::app) << "junkjunk"; },
       "has trailing bytes", true},
      {"NotAFile",
       [](const Path& p) {
         std::filesystem::remove(p);
         std::filesystem::create_directory(p);
       },
       "is a directory", true},
      {"Missing", [](const Path& p) { std::filesystem::remove(p); }, "not found", true},
      {"BadMagic", [](const Path& p) { damage(p, [](ShardParts& s) { s.header.magic[0] = 'X'; }); },
       "bad magic", true},
      {"BadVersion", [](const Path& p) { damage(p, [](ShardParts& s) { s.header.version = 2; }); },
       "format version 2", true},
      {"BadHeaderSize",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.header.header_bytes = 64; }); },
       "header size 64", true},
      {"VocabSizeZero",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.header.vocab_size = 0; }); },
       "vocabulary size 0 is impossible", true},
      {"VocabSizeOverUint16",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.header.vocab_size = 70000; }); },
       "vocabulary size 70000 is impossible", true},
      {"EotOutsideVocab",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.header.eot_id = 1000; }); },
       "<|endoftext|> id 1000 is outside", true},
      {"TokenCountHuge",
       [](const Path& p) {
         damage(
             p, [](ShardParts& s) { s.header.num_tokens = uint64_t{1} << 63; }, false);
       },
       "is truncated", true},
      // 2^61 more entries of 24 bytes wrap around 2^64 to the same file size.
      {"DocCountWrapsToTheFileSize",
       [](const Path& p) {
         damage(
             p, [](ShardParts& s) { s.header.num_docs += uint64_t{1} << 61; }, false);
       },
       "is truncated", true},
      {"DocumentPastTheTokens",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs[4].length += 5; }); },
       "document 4 of 5 (begin 13, length 6) runs past the end of the 15 tokens", true},
      {"LengthUint32Max",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs[1].length = UINT32_MAX; }); },
       "length 4294967295) runs past the end", true},
      {"BeginOverflows",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs[2].begin = UINT64_MAX - 1; }); },
       "document 2 of 5 (begin 18446744073709551614", true},
      {"OverlappingDocuments",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs[2].begin -= 2; }); },
       "document 2 begins at token 5 instead of 7", true},
      {"UnsortedDocuments",
       [](const Path& p) { damage(p, [](ShardParts& s) { std::swap(s.docs[1], s.docs[2]); }); },
       "not in token order (gap)", true},
      {"TableMissesTokens",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs.pop_back(); }); },
       "the document table covers 13 of the 15 tokens", true},
      {"EmptyTableWithTokens",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.docs.clear(); }); },
       "covers 0 of the 15 tokens (it is empty)", true},
      {"TokenIdEqualsVocab",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.tokens[5] = 1000; }); },
       "token id 1000 at token 5 (document 1, id hash 00000000000003e9) is not below the "
       "vocabulary size 1000",
       false},
      {"TokenId65535",
       [](const Path& p) { damage(p, [](ShardParts& s) { s.tokens[13] = 65535; }); },
       "token id 65535 at token 13 (document 4", false},
      {"ChecksumMismatchInTokens",
       [](const Path& p) {
         damage(
             p, [](ShardParts& s) { s.tokens[0] = 2; }, false);
       },
       "checksum mismatch", false},
      {"ChecksumMismatchInTable",
       [](const Path& p) {
         damage(
             p, [](ShardParts& s) { s.docs[0].id_hash ^= 1; }, false);
       },
       "checksum mismatch", false},
      {"ChecksumMismatchReportsBadId",
       [](const Path& p) {
         damage(
             p, [](ShardParts& s) { s.tokens[1] = 40000; }, false);
       },
       "outside the vocabulary: 40000 at token 1, document 0", false},
      {"MissingEndOfText", [](const Path& p) { damage(p, [](ShardParts& s) { s.tokens[3] = 7; }); },
       "document 0 is followed by token 7 at 3 instead of <|endoftext|> (999)", false},
  };
  return cases;
}

class DamagedShard : public ::testing::TestWithParam<size_t> {};

TEST_P(DamagedShard, IsRefusedWithFileProblemAndFix) {
  const DamageCase& c = damage_cases()[GetParam()];
  const auto path = small_shard();
  c.apply(path);
  // Opening without the token scan (cheap, O(documents)) must catch every structural problem and
  // let the rest through; the default open and verify() must catch them all.
  const std::string quick = error_of([&] { ShardReader r(path, /*verify_checksum=*/false); });
  std::string err = quick;
  if (c.open_sees) {
    EXPECT_FALSE(quick.empty()) << c.name << ": opened without complaint";
  } else {
    EXPECT_EQ(quick, "") << c.name << ": open should only check the structure";
    if (quick.empty()) {
      const ShardReader r(path, /*verify_checksum=*/false);
      err = error_of([&] { r.verify(); });
    }
  }
  EXPECT_EQ(error_of([&] { ShardReader r(path); }), err) << c.name;
  EXPECT_NE(err.find(path.string()), std::string::npos) << err;
  EXPECT_NE(err.find(c.problem), std::string::npos) << "expected '" << c.problem << "' in: " << err;
  EXPECT_NE(err.find("re-run `moebench data prepare --vocab toy --force`"), std::string::npos)
      << err;
  // `data verify` reports it as a failed shard with the same message instead of throwing.
  const std::vector<ShardCheck> checks = check_shards({path});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_FALSE(checks[0].ok);
  EXPECT_EQ(checks[0].detail, err);
}

INSTANTIATE_TEST_SUITE_P(Shard, DamagedShard, ::testing::Range<size_t>(0, damage_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return std::string(damage_cases()[info.param].name);
                         });

TEST(Shard, DamageCatalogueIsBroad) {
  EXPECT_GE(damage_cases().size(), 12u);
  size_t verify_only = 0;
  for (const auto& c : damage_cases()) verify_only += !c.open_sees;
  EXPECT_GE(verify_only, 4u) << "token ids, checksums and separators need verify()";
}

TEST(Shard, ValidShardsOpenAndVerify) {
  const auto path = small_shard();
  const ShardReader r(path, /*verify_checksum=*/false);
  EXPECT_NO_THROW(r.verify());
  EXPECT_EQ(r.document_of(0), 0u);
  EXPECT_EQ(r.document_of(3), 0u);  // doc0's <|endoftext|>
  EXPECT_EQ(r.document_of(11), 2u);
  EXPECT_EQ(r.document_of(12), 3u);  // the empty doc3 is only its <|endoftext|>
  EXPECT_EQ(r.document_of(14), 4u);
  // An empty split writes a shard with no documents: valid, the sampler refuses it itself.
  const auto dir = testing::temp_dir("damage");
  const auto empty = write_shard(dir, {});
  EXPECT_NO_THROW(ShardReader{empty});
  // A vocabulary that uses every uint16 id: 65535 is then a legal id.
  {
    ShardWriter w(dir / "full.bin", {"wide", 1, 65536, 0});
    w.add_document({65535, 1}, 1, 0);
    w.finish();
  }
  EXPECT_NO_THROW(ShardReader{dir / "full.bin"});
}

TEST(Shard, CheckShardsReportsEachShardOfAFolder) {
  const auto path = small_shard();
  const auto dir = path.parent_path();
  std::filesystem::copy_file(path, dir / "val.bin");
  damage(dir / "val.bin", [](ShardParts& s) { s.tokens[0] = 1000; });
  VocabInfo other = kVocab;
  other.identity ^= 1;
  const std::vector<ShardCheck> checks = check_shards({dir, dir / "missing.bin"});
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_TRUE(checks[0].ok) << checks[0].detail;  // s.bin
  EXPECT_EQ(checks[0].detail, "5 documents, 15 tokens, vocabulary 'toy' of 1000 ids");
  EXPECT_FALSE(checks[1].ok);  // val.bin
  EXPECT_NE(checks[1].detail.find("token id 1000 at token 0"), std::string::npos);
  EXPECT_FALSE(checks[2].ok);
  EXPECT_NE(checks[2].detail.find("not found"), std::string::npos);
  const std::vector<ShardCheck> vocab_checks = check_shards({path}, &other);
  ASSERT_EQ(vocab_checks.size(), 1u);
  EXPECT_FALSE(vocab_checks[0].ok);
  EXPECT_NE(vocab_checks[0].detail.find("vocabulary mismatch"), std::string::npos);
}

TEST(Sampler, IdOutsideTheVocabularyIsCaughtWhenTheBatchIsBuilt) {
  // A shard opened without verify() can still hold a bad id: the batch must stop it, naming the
  // file and the document, before it reaches the model's embedding.
  const auto path = small_shard();
  damage(path, [](ShardParts& s) { s.tokens[8] = 1000; });  // doc2 = 6 1000 8 9
  const ShardReader r(path, /*verify_checksum=*/false);
  BatchSampler padded(r, SampleMode::kPadded, 8, 1, 0);
  EXPECT_NO_THROW(padded.make_batch({0, 1, 3, 4}));
  std::string err = error_of([&] { padded.make_batch({0, 2}); });
  EXPECT_NE(err.find(path.string()), std::string::npos) << err;
  EXPECT_NE(err.find("token id 1000 at token 8 (document 2"), std::string::npos) << err;
  // Packed windows of 4 start at tokens 0, 4 and 8 and read one token further for the targets:
  // window 1 meets token 8 only as its last target, window 0 not at all.
  BatchSampler packed(r, SampleMode::kPacked, 4, 1, 0);
  EXPECT_NO_THROW(packed.make_batch({0}));
  for (int64_t window : {1, 2}) {
    err = error_of([&] { packed.make_batch({0, window}); });
    EXPECT_NE(err.find("token id 1000 at token 8 (document 2"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace moebench::data
