// BPE trainer against a slow recount-everything reference, hand-worked merges, and the GPT-2
// file format (encoder.json + vocab.bpe) read back by BpeTokenizer.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "datasets/bpe.h"
#include "datasets/bpe_train.h"
#include "datasets/tests/test_util.h"

namespace moebench::data {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;
using WordCounts = std::unordered_map<std::string, int64_t>;

// The rules of bpe_train.h done the obvious way: tokens as byte strings, every pair of every
// word recounted before each merge.
Merges reference_train(const WordCounts& word_counts, int vocab_size, int64_t min_pair_count) {
  std::map<std::string, int> id;
  for (int b = 0; b < 256; ++b) id[std::string(1, static_cast<char>(b))] = b;
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, c] : word_counts) {
    std::vector<std::string> toks;
    for (char ch : w) toks.emplace_back(1, ch);
    words.emplace_back(std::move(toks), c);
  }
  Merges merges;
  while (static_cast<int>(merges.size()) < vocab_size - 257) {
    std::map<std::pair<int, int>, int64_t> counts;
    for (const auto& [toks, c] : words) {
      for (size_t i = 0; i + 1 < toks.size(); ++i) counts[{id[toks[i]], id[toks[i + 1]]}] += c;
    }
    // Highest count; std::map order makes the first strict maximum the smallest id pair.
    std::pair<int, int> best{-1, -1};
    int64_t best_count = 0;
    std::vector<std::string> spelling(id.size());
    for (const auto& [s, i] : id) spelling[i] = s;
    for (const auto& [p, c] : counts) {
      if (c <= best_count) continue;
      best = p;
      best_count = c;
    }
    if (best_count < min_pair_count) break;
    const std::string l = spelling[best.first], r = spelling[best.second];
    merges.emplace_back(l, r);
    EXPECT_EQ(id.count(l + r), 0u) << "reference: repeated spelling " << l + r;
    id[l + r] = static_cast<int>(id.size());
    for (auto& [toks, c] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < toks.size();) {
        if (i + 1 < toks.size() && toks[i] == l && toks[i + 1] == r) {
          out.push_back(l + r);
          i += 2;
        } else {
          out.push_back(toks[i++]);
        }
      }
      toks = std::move(out);
    }
  }
  return merges;
}

WordCounts random_corpus(uint32_t seed, const std::vector<std::string>& alphabet, int num_words,
                         int max_len, int max_count) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<int> len(1, max_len), count(1, max_count);
  WordCounts wc;
  for (int i = 0; i < num_words; ++i) {
    std::string w;
    const int n = len(rng);
    for (int j = 0; j < n; ++j) w += alphabet[pick(rng)];
    wc[w] += count(rng);
  }
  return wc;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(BpeTrain, MatchesReferenceOnRandomCorpora) {
  // Small alphabets force long repeated runs and many alternative splits of one string; the
  // multi-byte ones put bytes >= 0x80 (and 0x00 / 0xff) through the id order.
  const std::vector<std::vector<std::string>> alphabets = {
      {"a"},
      {"a", "b"},
      {"a", "b", "c"},
      {"a", "b", "c", "d", "e", "f", "g", "h"},
      {"\xc3\xa9", "e", " ", std::string(1, '\0'), "\xff"},
      {"\xe4\xb8\xad", "\xe6\x96\x87", "x"},
  };
  int total_merges = 0;
  for (size_t a = 0; a < alphabets.size(); ++a) {
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      const auto wc = random_corpus(seed * 7919 + static_cast<uint32_t>(a), alphabets[a],
                                    40 + 30 * static_cast<int>(seed), 4 + 2 * seed, 1 + 3 * seed);
      for (int64_t min_count : {int64_t{1}, int64_t{2}, int64_t{5}}) {
        const int vocab = 257 + 400;  // more than any of these corpora can fill
        const Merges want = reference_train(wc, vocab, min_count);
        const Merges got = train_byte_bpe(wc, vocab, {}, min_count).merges;
        ASSERT_EQ(got, want) << "alphabet " << a << " seed " << seed << " min " << min_count;
        total_merges += static_cast<int>(want.size());
        // A vocabulary cut short must be a prefix of the longer one.
        const int cut = 257 + static_cast<int>(want.size()) / 2;
        const Merges prefix(want.begin(), want.begin() + (cut - 257));
        ASSERT_EQ(train_byte_bpe(wc, cut, {}, min_count).merges, prefix);
      }
    }
  }
  EXPECT_GT(total_merges, 1000);
}

TEST(BpeTrain, HandComputedFirstMerges) {
  // hug 10, pug 5, pun 12, bun 4, hugs 5:
  //   u g = 10+5+5 = 20 (best); h u = 15, p u = 17, u n = 16.
  //   then u n = 16 (p u is down to 12, h ug is 15); then h ug = 15.
  const WordCounts wc = {{"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}};
  const Merges got = train_byte_bpe(wc, 257 + 3).merges;
  const Merges want = {{"u", "g"}, {"u", "n"}, {"h", "ug"}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(reference_train(wc, 257 + 3, 2), want);
}

TEST(BpeTrain, TiesGoToSmallestIdPair) {
  // All pairs have count 3: (a,b)=(97,98) < (a,z)=(97,122) < (b,a)=(98,97) < (c,d)=(99,100).
  const WordCounts wc = {{"cd", 3}, {"ba", 3}, {"az", 3}, {"ab", 3}};
  const Merges want = {{"a", "b"}, {"a", "z"}, {"b", "a"}, {"c", "d"}};
  EXPECT_EQ(train_byte_bpe(wc, 257 + 10).merges, want);
}

TEST(BpeTrain, RepeatedLettersMergeLeftToRight) {
  // "aaa" x5: (a,a) counts 2 per word = 10; left to right gives "aa a", so the next merge is
  // (aa, a), never (a, aa).
  EXPECT_EQ(train_byte_bpe({{"aaa", 5}}, 257 + 5).merges, (Merges{{"a", "a"}, {"aa", "a"}}));
  // "aaaa" x2: (a,a) = 3 per word, then "aa aa" -> (aa, aa) with count 2; "aaaaa" x1 adds
  // (a,a) 4 and leaves "aa aa a", so (aa,aa) = 3 and (aa,a) = 1 (below the minimum).
  EXPECT_EQ(train_byte_bpe({{"aaaa", 2}, {"aaaaa", 1}}, 257 + 5).merges,
            (Merges{{"a", "a"}, {"aa", "aa"}}));
  // With min count 1 the tail merges too: "aaaa a" -> (aaaa, a).
  EXPECT_EQ(train_byte_bpe({{"aaaa", 2}, {"aaaaa", 1}}, 257 + 5, {}, 1).merges,
            (Merges{{"a", "a"}, {"aa", "aa"}, {"aaaa", "a"}}));
}

TEST(BpeTrain, ContextDoesNotSplitATokenTwoWays) {
  // "xa" merges first, so in "xabc" the "b" pairs with "c" while a lone "abc" builds "ab" + "c";
  // "abcab" and "cab" add competing splits. Whatever the order, every token must be built by one
  // merge only (two merges spelling the same bytes would give encoder.json a repeated key).
  const WordCounts wc = {{"xa", 50},  {"ab", 40},   {"bc", 30}, {"xab", 1}, {"abc", 3},
                         {"xabc", 3}, {"abcab", 2}, {"cab", 7}, {"abca", 2}};
  const Merges got = train_byte_bpe(wc, 257 + 50, {}, 1).merges;
  EXPECT_EQ(got, reference_train(wc, 257 + 50, 1));
  EXPECT_GE(got.size(), 8u);
  std::set<std::string> spellings;
  for (const auto& [l, r] : got) EXPECT_TRUE(spellings.insert(l + r).second) << l + r;
}

TEST(BpeTrain, StopsWhenNoPairReachesMinCount) {
  // (a,b) 3 -> "ab"; then (ab,c) 1 and (c,d) 1 fall below 2.
  const WordCounts wc = {{"ab", 2}, {"abcd", 1}, {"e", 100}};
  EXPECT_EQ(train_byte_bpe(wc, 8192).merges, (Merges{{"a", "b"}}));
  EXPECT_EQ(train_byte_bpe(wc, 8192).vocab_size(), 258);
  EXPECT_EQ(train_byte_bpe(wc, 8192, {}, 1).merges.size(), 3u);
  EXPECT_TRUE(train_byte_bpe({}, 8192).merges.empty());
  EXPECT_TRUE(train_byte_bpe(wc, 257).merges.empty());
}

TEST(BpeTrain, RejectsBadArguments) {
  EXPECT_THROW(train_byte_bpe({{"ab", 2}}, 256), std::invalid_argument);
  EXPECT_THROW(train_byte_bpe({{"ab", 2}}, 300, {}, 0), std::invalid_argument);
  EXPECT_THROW(train_byte_bpe({{"ab", -1}}, 300), std::invalid_argument);
}

TEST(BpeTrain, ReportsProgress) {
  std::vector<std::pair<int, int>> calls;
  train_byte_bpe({{"abcdef", 5}}, 257 + 3,
                 [&](int done, int total) { calls.emplace_back(done, total); });
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{1, 3}, {2, 3}, {3, 3}}));
}

TEST(BpeTrain, WritesGpt2Format) {
  const WordCounts wc = {
      {" the", 30}, {"\n\n", 20}, {" then", 9}, {"\xc3\xa9t\xc3\xa9", 4}, {"\"q\\", 3}};
  const BpeTrainResult r = train_byte_bpe(wc, 257 + 20);
  ASSERT_GE(r.merges.size(), 6u);
  const auto dir = testing::temp_dir("bpe_train_format");
  write_gpt2_vocab_files(r, dir);

  const std::string enc_text = read_file(dir / "encoder.json");
  const auto enc = nlohmann::json::parse(enc_text);
  ASSERT_TRUE(enc.is_object());
  const int n = r.vocab_size();
  ASSERT_EQ(static_cast<int>(enc.size()), n);
  std::vector<std::string> by_id(n);
  for (const auto& [k, v] : enc.items()) {
    const int id = v.get<int>();
    ASSERT_GE(id, 0);
    ASSERT_LT(id, n);
    ASSERT_TRUE(by_id[id].empty()) << "id " << id << " twice";
    by_id[id] = k;
  }
  EXPECT_EQ(by_id[n - 1], "<|endoftext|>");
  EXPECT_EQ(by_id[32], "\xc4\xa0");  // U+0120 'Ġ'
  EXPECT_EQ(by_id[10], "\xc4\x8a");  // U+010A 'Ċ'
  EXPECT_EQ(by_id[0], "\xc4\x80");   // U+0100: the first remapped byte
  EXPECT_EQ(by_id[33], "!");
  EXPECT_EQ(by_id[34], "\"");
  EXPECT_EQ(by_id[92], "\\");
  EXPECT_EQ(by_id[0xe9], "\xc3\xa9");  // 233 maps to itself, U+00E9
  EXPECT_EQ(by_id[0xad], "\xc5\x83");  // 173 (soft hyphen) is remapped: U+0143
  EXPECT_EQ(by_id[127], "\xc4\xa1");   // DEL, the 34th remapped byte: U+0121
  // Ids in order in the file, as GPT-2's own encoder.json.
  EXPECT_EQ(enc_text.rfind("{\"\xc4\x80\":0,\"\xc4\x81\":1,", 0), 0u) << enc_text.substr(0, 40);

  const std::string bpe = read_file(dir / "vocab.bpe");
  std::istringstream lines(bpe);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(line, "#version: 0.2");
  for (size_t i = 0; i < r.merges.size(); ++i) {
    ASSERT_TRUE(std::getline(lines, line));
    const std::string want =
        bytes_to_symbols(r.merges[i].first) + " " + bytes_to_symbols(r.merges[i].second);
    EXPECT_EQ(line, want);
    EXPECT_EQ(by_id[256 + i], bytes_to_symbols(r.merges[i].first + r.merges[i].second));
  }
  EXPECT_FALSE(std::getline(lines, line));
  EXPECT_EQ(bpe.back(), '\n');
  EXPECT_EQ(r.merges[0], (std::pair<std::string, std::string>{" ", "t"}));
  EXPECT_NE(bpe.find("\n\xc4\xa0 t\n"), std::string::npos);
  EXPECT_NE(bpe.find("\n\xc4\x8a \xc4\x8a\n"), std::string::npos);

  // Byte-for-byte deterministic, also from a differently built (re-hashed) word map.
  WordCounts wc2;
  wc2.reserve(1000);
  for (auto it = wc.begin(); it != wc.end(); ++it) wc2.insert(*it);
  const auto dir2 = testing::temp_dir("bpe_train_format2");
  write_gpt2_vocab_files(train_byte_bpe(wc2, 257 + 20), dir2);
  EXPECT_EQ(read_file(dir2 / "encoder.json"), enc_text);
  EXPECT_EQ(read_file(dir2 / "vocab.bpe"), bpe);
}

TEST(BpeTrain, WriteRejectsInconsistentMerges) {
  const auto dir = testing::temp_dir("bpe_train_bad");
  BpeTrainResult undefined{{{"ab", "c"}}};
  EXPECT_THROW(write_gpt2_vocab_files(undefined, dir), std::invalid_argument);
  BpeTrainResult repeated{{{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "bc"}}};
  EXPECT_THROW(write_gpt2_vocab_files(repeated, dir), std::invalid_argument);
}

TEST(BpeTrain, RoundTripThroughTokenizer) {
  // Pre-tokenize a small corpus with the real GPT-2 splitter, train, load, encode.
  const std::string corpus =
      "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\n"
      "Il était une fois, à Paris, un café très célèbre. 東京は大きい都市です。\n"
      "Numbers 12345 and 2024, code: x = y + 3; // done!\n\n  indented   spaces\t\ttabs\n";
  PreTokenizer pre;
  WordCounts wc;
  for (int rep = 0; rep < 20; ++rep) {
    for (auto piece : pre.split(corpus)) ++wc[std::string(piece)];
  }
  const BpeTrainResult r = train_byte_bpe(wc, 600);
  const auto dir = testing::temp_dir("bpe_train_roundtrip");
  write_gpt2_vocab_files(r, dir);
  const BpeTokenizer tok = BpeTokenizer::load(dir, "test");
  EXPECT_EQ(tok.vocab_size(), r.vocab_size());
  EXPECT_EQ(tok.eot_id(), r.vocab_size() - 1);
  EXPECT_EQ(tok.name(), "test");

  for (const std::string& t :
       {corpus, std::string("the fox"), std::string("unseen wörds ✓ 🙂 zzz"), std::string(""),
        std::string("<|endoftext|>"), std::string("\x01\x7f tab\there"),
        std::string("aaaaaaaaaaaaaaaaaaaaaaaaaa")}) {
    EXPECT_EQ(tok.decode(tok.encode(t)), t) << t;
  }
  // A frequent word is one token, the id its merge created.
  const auto ids = tok.encode(" fox");
  ASSERT_EQ(ids.size(), 1u);
  int fox_merge = -1;
  for (size_t i = 0; i < r.merges.size(); ++i) {
    if (r.merges[i].first + r.merges[i].second == " fox") fox_merge = static_cast<int>(i);
  }
  EXPECT_EQ(ids[0], 256 + fox_merge);
  // Unknown text falls back to single bytes: "Q" never occurs in the corpus.
  EXPECT_EQ(tok.encode("Q"), (std::vector<int32_t>{'Q'}));
  // Each training word encodes as the trainer left it: its merges applied in rank order, each
  // left to right (GPT-2's encoder.py), so the loader's ranks agree with the trainer's order.
  for (const auto& [word, count] : wc) {
    std::vector<std::string> want;
    for (char ch : word) want.emplace_back(1, ch);
    for (const auto& [left, right] : r.merges) {
      std::vector<std::string> next;
      for (size_t i = 0; i < want.size();) {
        if (i + 1 < want.size() && want[i] == left && want[i + 1] == right) {
          next.push_back(left + right);
          i += 2;
        } else {
          next.push_back(want[i++]);
        }
      }
      want = std::move(next);
    }
    std::vector<std::string> got;
    for (int32_t id : tok.encode(word)) got.push_back(tok.decode({id}));
    EXPECT_EQ(got, want) << bytes_to_symbols(word);
  }
  EXPECT_LT(tok.encode(corpus).size() * 3, corpus.size());
}

}  // namespace
}  // namespace moebench::data
