// GPT-2 tokenizer against tiktoken: the committed fixture and, when node + npm tiktoken are
// installed (scripts/setup.sh), a live comparison on freshly generated random text.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "datasets/bpe.h"
#include "datasets/tests/test_util.h"
#include "datasets/vocab.h"

namespace moebench::data {
namespace {

using testing::data_dir;
using testing::fixture;

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  return nlohmann::json::parse(in);
}

const BpeTokenizer& gpt2() {
  static BpeTokenizer tok = [] {
    const auto dir = vocab_dir(data_dir(), "gpt2");
    if (!std::filesystem::exists(dir / "encoder.json")) {
      ADD_FAILURE() << "GPT-2 vocabulary missing in " << dir
                    << ": run `moebench data fetch` (make test does it)";
    }
    return load_vocab(data_dir(), "gpt2");
  }();
  return tok;
}

// The GPT-2 vocabulary comes from `moebench data fetch`; without it the tests that use it skip.
std::filesystem::path gpt2_encoder() { return vocab_dir(data_dir(), "gpt2") / "encoder.json"; }
#define SKIP_WITHOUT_GPT2() MOEBENCH_SKIP_WITHOUT_DATA(gpt2_encoder(), "moebench data fetch")

std::vector<int32_t> as_ids(const nlohmann::json& arr) {
  std::vector<int32_t> v;
  for (const auto& x : arr) v.push_back(x.get<int32_t>());
  return v;
}

TEST(Tokenizer, Gpt2VocabularyShape) {
  SKIP_WITHOUT_GPT2();
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eot_id(), 50256);
  EXPECT_EQ(gpt2().decode({50256}), "<|endoftext|>");
}

TEST(Tokenizer, HandCheckedIds) {
  SKIP_WITHOUT_GPT2();
  // Well-known GPT-2 ids: "Hello" 15496, "," 11, " world" 995, "!" 0.
  EXPECT_EQ(gpt2().encode("Hello, world!"), (std::vector<int32_t>{15496, 11, 995, 0}));
  EXPECT_TRUE(gpt2().encode("").empty());
}

TEST(Tokenizer, MatchesTiktokenFixture) {
  SKIP_WITHOUT_GPT2();
  const auto samples = read_json(fixture("tokenizer_samples.json"));
  const auto ref = read_json(fixture("tokenizer_gpt2_ids.json"));
  ASSERT_EQ(samples.size(), ref["ids"].size());
  ASSERT_GE(samples.size(), 30u);
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string text = samples[i].get<std::string>();
    EXPECT_EQ(gpt2().encode(text), as_ids(ref["ids"][i])) << "sample " << i << ": " << text;
  }
}

TEST(Tokenizer, DecodeInvertsEncode) {
  SKIP_WITHOUT_GPT2();
  const auto samples = read_json(fixture("tokenizer_samples.json"));
  for (const auto& s : samples) {
    const std::string text = s.get<std::string>();
    EXPECT_EQ(gpt2().decode(gpt2().encode(text)), text);
  }
}

TEST(Tokenizer, RejectsInvalidUtf8WithOffset) {
  SKIP_WITHOUT_GPT2();
  const std::string bad = std::string("caf") + '\xe9' + " au lait";  // Latin-1, not UTF-8
  try {
    gpt2().encode(bad);
    FAIL() << "invalid UTF-8 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt2().decode({50257}), std::out_of_range);
}

TEST(Tokenizer, Utf8ValidatorHandCases) {
  size_t off = 99;
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80 emoji"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf", &off));  // overlong '/'
  EXPECT_EQ(off, 0u);
  EXPECT_FALSE(is_valid_utf8("ok\xed\xa0\x80", &off));  // UTF-16 surrogate
  EXPECT_EQ(off, 2u);
  EXPECT_FALSE(is_valid_utf8("abcdefghij\xe2\x82", &off));  // truncated sequence
  EXPECT_EQ(off, 10u);
}

// Random text over an alphabet chosen to stress the pre-tokenizer: whitespace runs,
// apostrophes, digits, letters of several scripts, emoji with joiners, symbols.
std::vector<std::string> random_samples(uint32_t seed, int n) {
  const std::vector<std::string> atoms = {" ",
                                          "  ",
                                          "\t",
                                          "\n",
                                          "\r\n",
                                          "\u00a0",
                                          "'",
                                          "'s",
                                          "'ll",
                                          "'T",
                                          "a",
                                          "b",
                                          "The",
                                          "the",
                                          "ing",
                                          "0",
                                          "7",
                                          "42",
                                          "2024",
                                          ".",
                                          ",",
                                          "!",
                                          "?",
                                          "-",
                                          "_",
                                          "(",
                                          ")",
                                          "{",
                                          "}",
                                          "#",
                                          "é",
                                          "ß",
                                          "Ж",
                                          "中",
                                          "語",
                                          "ア",
                                          "😀",
                                          "👍🏽",
                                          "\u200d",
                                          "❤️",
                                          "∑",
                                          "ⅷ",
                                          "٣",
                                          "\u3000",
                                          "hello",
                                          "world",
                                          "don't",
                                          "<|endoftext|>",
                                          "http://x.y/z",
                                          "   \n",
                                          "...",
                                          "$",
                                          "%"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1), len(0, 40);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (size_t k = len(rng); k > 0; --k) s += atoms[pick(rng)];
    out.push_back(s);
  }
  return out;
}

TEST(Tokenizer, MatchesLiveTiktokenOnRandomText) {
  SKIP_WITHOUT_GPT2();
  const auto node_modules =
      std::filesystem::path(MOEBENCH_SOURCE_DIR) / "build" / "node" / "node_modules";
  if (!std::filesystem::exists(node_modules / "tiktoken") ||
      std::system("node -v >/dev/null 2>&1")) {
    GTEST_SKIP() << "node or npm tiktoken missing (scripts/setup.sh installs them); the fixture "
                    "test still compares against tiktoken";
  }
  const uint32_t seed = std::random_device{}();
  const auto samples = random_samples(seed, 300);
  const auto dir = testing::temp_dir("tiktoken");
  {
    std::ofstream out(dir / "samples.json");
    out << nlohmann::json(samples).dump();
  }
  const std::string cmd = "NODE_PATH='" + node_modules.string() + "' node '" +
                          std::string(MOEBENCH_SOURCE_DIR) + "/scripts/tiktoken_reference.js' '" +
                          (dir / "samples.json").string() + "' > '" + (dir / "ids.json").string() +
                          "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto ref = read_json(dir / "ids.json");
  ASSERT_EQ(ref["ids"].size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(gpt2().encode(samples[i]), as_ids(ref["ids"][i]))
        << "seed " << seed << " sample " << i << ": '" << samples[i] << "'";
  }
}

}  // namespace
}  // namespace moebench::data
