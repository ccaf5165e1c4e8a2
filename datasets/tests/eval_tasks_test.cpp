// Tests of the offline zero-shot task builders (shared/spec/DATA.md "Zero-shot evaluation
// available offline"): hand-made documents and a tiny WordNet with hand-checked items, plus the
// hold-out check against the real training shards when the data has been prepared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/corpus.h"
#include "datasets/eval_tasks.h"
#include "datasets/shard.h"
#include "datasets/tests/test_util.h"
#include "datasets/wordnet.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;
using testing::write_file;

const std::string kQuestion = "\nQuestion: Is this sentence positive or negative?\nAnswer:";

struct Corpus {
  std::vector<Document> docs;
  std::vector<Split> splits;
  void add(const std::string& id, Source source, int label, const std::string& text, Split split) {
    docs.push_back(Document{id, source, label, text});
    splits.push_back(split);
  }
  // The same corpus in reverse order (documents and splits together).
  Corpus reversed() const {
    Corpus r = *this;
    std::reverse(r.docs.begin(), r.docs.end());
    std::reverse(r.splits.begin(), r.splits.end());
    return r;
  }
};

bool same_items(const EvalTask& a, const EvalTask& b) {
  if (a.items.size() != b.items.size()) return false;
  for (size_t i = 0; i < a.items.size(); ++i) {
    const EvalItem& x = a.items[i];
    const EvalItem& y = b.items[i];
    if (x.context != y.context || x.choices != y.choices || x.answer != y.answer ||
        x.doc_id != y.doc_id) {
      return false;
    }
  }
  return true;
}

const EvalItem* item_of(const EvalTask& task, const std::string& doc_id) {
  for (const EvalItem& item : task.items) {
    if (item.doc_id == doc_id) return &item;
  }
  return nullptr;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// IMDB

Corpus imdb_corpus() {
  Corpus c;
  c.add("imdb/00001", Source::kImdb, 0, "Dull and far too long.", Split::kHeldout);
  c.add("imdb/00002", Source::kImdb, 1, "Great fun from start to finish.", Split::kHeldout);
  c.add("imdb/00003", Source::kImdb, 1, "A lovely film.", Split::kHeldout);
  c.add("imdb/00004", Source::kImdb, 0, "Training review, never asked.", Split::kTrain);
  c.add("imdb/00005", Source::kImdb, 1, "Validation review, never asked.", Split::kVal);
  c.add("gutenberg/x/0000", Source::kGutenberg, -1, "Not a review. It has no label.",
        Split::kHeldout);
  return c;
}

TEST(EvalTasksImdb, ExactItemsBalancedAndOnlyHeldout) {
  const Corpus c = imdb_corpus();
  const EvalTask task = build_eval_task("imdb", c.docs, c.splits, "/nonexistent", 0);
  EXPECT_EQ(task.name, "imdb");
  EXPECT_EQ(task.kind, TaskKind::kMultipleChoice);
  EXPECT_EQ(task.primary_metric, "acc");
  EXPECT_DOUBLE_EQ(task.chance, 0.5);
  // One held-out negative, two held-out positives: balancing keeps one pair, negative first.
  ASSERT_EQ(task.items.size(), 2u);
  const EvalItem& neg = task.items[0];
  EXPECT_EQ(neg.doc_id, "imdb/00001");
  EXPECT_EQ(neg.context,
            "Dull and far too long.\nQuestion: Is this sentence positive or negative?\nAnswer:");
  EXPECT_EQ(neg.choices, (std::vector<std::string>{" negative", " positive"}));
  EXPECT_EQ(neg.answer, 0);
  const EvalItem& pos = task.items[1];
  EXPECT_EQ(pos.answer, 1);
  EXPECT_EQ(pos.choices, (std::vector<std::string>{" negative", " positive"}));
  if (pos.doc_id == "imdb/00002") {
    EXPECT_EQ(pos.context, "Great fun from start to finish." + kQuestion);
  } else {
    EXPECT_EQ(pos.doc_id, "imdb/00003");
    EXPECT_EQ(pos.context, "A lovely film." + kQuestion);
  }

  const EvalTask one = build_eval_task("imdb", c.docs, c.splits, "/nonexistent", 1);
  ASSERT_EQ(one.items.size(), 1u);
  EXPECT_EQ(one.items[0].doc_id, "imdb/00001");
}

TEST(EvalTasksImdb, LongReviewKeepsItsEndFromAWordBoundary) {
  // 400 numbered words: "w0 w1 ... w399" is ~2290 bytes, longer than the context limit.
  std::string review;
  std::vector<std::string> words;
  for (int i = 0; i < 400; ++i) {
    words.push_back("w" + std::to_string(i));
    review += (i ? " " : "") + words.back();
  }
  Corpus c;
  c.add("imdb/1", Source::kImdb, 0, review, Split::kHeldout);
  c.add("imdb/2", Source::kImdb, 1, "Fine.", Split::kHeldout);
  const EvalTask task = build_eval_task("imdb", c.docs, c.splits, "/nonexistent", 0);
  const EvalItem* item = item_of(task, "imdb/1");
  ASSERT_NE(item, nullptr);
  // Reference: the most final words whose join fits the budget left by the question.
  const size_t budget = kEvalMaxContextBytes - kQuestion.size();
  std::string expected;
  for (int i = 399; i >= 0; --i) {
    const std::string longer = words[i] + (expected.empty() ? "" : " ") + expected;
    if (longer.size() > budget) break;
    expected = longer;
  }
  EXPECT_EQ(item->context, expected + kQuestion);
  EXPECT_LE(item->context.size(), kEvalMaxContextBytes);
  EXPECT_GT(expected.size(), budget - 5);  // words are <= 4 bytes: nearly the whole budget
}

// ---------------------------------------------------------------------------------------------
// Cloze

TEST(EvalTasksCloze, TargetMustOccurEarlierAndLatestSentenceWins) {
  Corpus c;
  // Qualifies at its last sentence.
  c.add("gutenberg/a/0000", Source::kGutenberg, -1,
        "The cat sat on the mat. Then the dog saw the cat.", Split::kHeldout);
  // "river" and "morning" never occur earlier: rejected.
  c.add("gutenberg/a/0001", Source::kGutenberg, -1,
        "Birds sing in the morning. Fish swim in the river.", Split::kHeldout);
  // The last sentence fails ("rained"), the one before qualifies ("Anna").
  c.add("sotu/b/0000", Source::kSotu, -1,
        "Anna met Bob at noon. Later Bob waved to Anna. It rained.", Split::kHeldout);
  // "Mrs." before a capital is no sentence end, so no "Mrs" item; "home" is not earlier.
  c.add("gutenberg/a/0002", Source::kGutenberg, -1, "I saw Mrs. Brown and then Mrs. Lee went home.",
        Split::kHeldout);
  // Case matters: "Rome" vs "rome"; and a hyphenated final word is not a whole word.
  c.add("gutenberg/a/0003", Source::kGutenberg, -1,
        "We went to rome by sea. Our trip was well-known. We loved Rome.", Split::kHeldout);
  // Would qualify, but is training / validation text.
  c.add("gutenberg/a/0004", Source::kGutenberg, -1, "A fox ran. The hound chased the fox.",
        Split::kTrain);
  c.add("sotu/b/0001", Source::kSotu, -1, "A fox ran. The hound chased the fox.", Split::kVal);
  c.add("imdb/7", Source::kImdb, 1, "The film was a film.", Split::kHeldout);

  const EvalTask task = build_eval_task("cloze", c.docs, c.splits, "/nonexistent", 0);
  EXPECT_EQ(task.kind, TaskKind::kGreedyTarget);
  EXPECT_EQ(task.primary_metric, "acc");
  EXPECT_DOUBLE_EQ(task.chance, 0.0);
  ASSERT_EQ(task.items.size(), 2u);
  const EvalItem* cat = item_of(task, "gutenberg/a/0000");
  ASSERT_NE(cat, nullptr);
  EXPECT_EQ(cat->context, "The cat sat on the mat. Then the dog saw the");
  EXPECT_EQ(cat->choices, (std::vector<std::string>{" cat"}));
  EXPECT_EQ(cat->answer, 0);
  const EvalItem* anna = item_of(task, "sotu/b/0000");
  ASSERT_NE(anna, nullptr);
  EXPECT_EQ(anna->context, "Anna met Bob at noon. Later Bob waved to");
  EXPECT_EQ(anna->choices, (std::vector<std::string>{" Anna"}));
  EXPECT_EQ(item_of(task, "gutenberg/a/0001"), nullptr);
  EXPECT_EQ(item_of(task, "gutenberg/a/0002"), nullptr);
  EXPECT_EQ(item_of(task, "gutenberg/a/0003"), nullptr);
}

TEST(EvalTasksCloze, LongContextIsCutAtAWordStart) {
  std::string text = "Tom walked.";
  for (int i = 0; i < 80; ++i) text += " The road was long and dusty.";
  text += " He kept to the road.";
  Corpus c;
  c.add("gutenberg/long/0000", Source::kGutenberg, -1, text, Split::kHeldout);
  const EvalTask task = build_eval_task("cloze", c.docs, c.splits, "/nonexistent", 0);
  ASSERT_EQ(task.items.size(), 1u);
  const std::string prefix = text.substr(0, text.size() - std::string(" road.").size());
  // Reference: the earliest word start (position 0 or after a space) leaving <= the limit.
  size_t start = std::string::npos;
  for (size_t s = 0; s < prefix.size(); ++s) {
    const bool word_start = prefix[s] != ' ' && (s == 0 || prefix[s - 1] == ' ');
    if (word_start && prefix.size() - s <= kEvalMaxContextBytes) {
      start = s;
      break;
    }
  }
  ASSERT_NE(start, std::string::npos);
  EXPECT_EQ(task.items[0].context, prefix.substr(start));
  EXPECT_EQ(task.items[0].choices, (std::vector<std::string>{" road"}));
  EXPECT_GT(task.items[0].context.size(), kEvalMaxContextBytes - 8);
}

// ---------------------------------------------------------------------------------------------
// Next sentence

Corpus next_sentence_corpus() {
  Corpus c;
  const Source g = Source::kGutenberg;
  // Openers are < 20 bytes, so only each passage's second sentence is an answer or distractor.
  c.add("gutenberg/n/0001", g, -1, "Intro words here. The red fox jumps over the lazy dog today.",
        Split::kHeldout);
  c.add("gutenberg/n/0002", g, -1,
        "Intro words here. The brown cow\neats green grass all day long.", Split::kHeldout);
  c.add("gutenberg/n/0003", g, -1, "Intro words here. A small bird sang softly in the old tree.",
        Split::kHeldout);
  c.add("gutenberg/n/0004", g, -1, "Intro words here. My uncle rode his horse into the town.",
        Split::kHeldout);
  // Same text as 0001's answer: must never be one of 0001's distractors.
  c.add("gutenberg/n/0006", g, -1, "Short opener. The red fox jumps over the lazy dog today.",
        Split::kHeldout);
  // Ends in a fragment cut at a paragraph break: the answer is the whole sentence before it.
  c.add("gutenberg/n/0007", g, -1,
        "Intro words here. A green frog sat on a wide lily pad.\n\nWith a faint blush, she "
        "presently replied,",
        Split::kHeldout);
  // A long sentence (far from 42 bytes): outside 0001's length window.
  c.add("gutenberg/n/0005", g, -1,
        "Intro words here. This sentence is very much longer than all of the others because it "
        "keeps going on and on about nothing in particular, adding clause after clause until it "
        "has clearly left the length window of the short ones.",
        Split::kHeldout);
  // Other source, and training / validation text of 42 bytes: never distractors of 0001.
  c.add("sotu/s/0000", Source::kSotu, -1, "The House met. Our nation is strong and our hopes high.",
        Split::kHeldout);
  c.add("gutenberg/t/0000", g, -1, "Intro words here. The old man sat by the warm fire alone.",
        Split::kTrain);
  c.add("gutenberg/v/0000", g, -1, "Intro words here. The old man sat by the cold fire alone.",
        Split::kVal);
  return c;
}

TEST(EvalTasksNextSentence, DistractorsFromOtherHeldoutDocumentsOfSimilarLength) {
  const Corpus c = next_sentence_corpus();
  const EvalTask task = build_eval_task("next_sentence", c.docs, c.splits, "/nonexistent", 0);
  EXPECT_EQ(task.kind, TaskKind::kMultipleChoice);
  EXPECT_EQ(task.primary_metric, "acc_norm");
  EXPECT_DOUBLE_EQ(task.chance, 0.25);
  // Seven Gutenberg passages give items; the lone SOTU passage has no other SOTU passages.
  ASSERT_EQ(task.items.size(), 7u);
  EXPECT_EQ(item_of(task, "sotu/s/0000"), nullptr);

  const EvalItem* fox = item_of(task, "gutenberg/n/0001");
  ASSERT_NE(fox, nullptr);
  EXPECT_EQ(fox->context, "Intro words here.");
  ASSERT_EQ(fox->choices.size(), 4u);
  ASSERT_GE(fox->answer, 0);
  ASSERT_LT(fox->answer, 4);
  EXPECT_EQ(fox->choices[fox->answer], " The red fox jumps over the lazy dog today.");
  std::set<std::string> distractors;
  for (int i = 0; i < 4; ++i) {
    if (i != fox->answer) distractors.insert(fox->choices[i]);
  }
  // The only other held-out Gutenberg sentences within 42 +- 4 bytes (newline collapsed).
  EXPECT_EQ(distractors, (std::set<std::string>{" The brown cow eats green grass all day long.",
                                                " A small bird sang softly in the old tree.",
                                                " My uncle rode his horse into the town."}));

  std::set<std::string> heldout_ids;
  for (size_t i = 0; i < c.docs.size(); ++i) {
    if (c.splits[i] == Split::kHeldout) heldout_ids.insert(c.docs[i].id);
  }
  std::map<std::string, std::string> answer_doc;  // second sentence -> its document
  for (const Document& d : c.docs) answer_doc[" " + d.text.substr(d.text.find(". ") + 2)] = d.id;
  answer_doc[" The brown cow eats green grass all day long."] = "gutenberg/n/0002";
  answer_doc[" A green frog sat on a wide lily pad."] = "gutenberg/n/0007";
  const EvalItem* frog = item_of(task, "gutenberg/n/0007");
  ASSERT_NE(frog, nullptr);
  EXPECT_EQ(frog->context, "Intro words here.");
  EXPECT_EQ(frog->choices[frog->answer], " A green frog sat on a wide lily pad.");
  for (const EvalItem& item : task.items) {
    EXPECT_EQ(heldout_ids.count(item.doc_id), 1u) << item.doc_id;
    ASSERT_EQ(item.choices.size(), 4u);
    const std::string& truth = item.choices[item.answer];
    EXPECT_EQ(std::set<std::string>(item.choices.begin(), item.choices.end()).size(), 4u);
    for (int i = 0; i < 4; ++i) {
      if (i == item.answer) continue;
      EXPECT_NE(item.choices[i], truth);
      ASSERT_EQ(answer_doc.count(item.choices[i]), 1u) << item.choices[i];
      const std::string& from = answer_doc[item.choices[i]];
      EXPECT_NE(from, item.doc_id);
      EXPECT_EQ(from.rfind("gutenberg/n/", 0), 0u) << "distractor from " << from;
    }
  }
}

TEST(EvalTasksNextSentence, DeterministicAndIndependentOfInputOrder) {
  const Corpus c = next_sentence_corpus();
  const EvalTask a = build_eval_task("next_sentence", c.docs, c.splits, "/nonexistent", 0);
  const EvalTask b = build_eval_task("next_sentence", c.docs, c.splits, "/nonexistent", 0);
  const Corpus r = c.reversed();
  const EvalTask rev = build_eval_task("next_sentence", r.docs, r.splits, "/nonexistent", 0);
  EXPECT_TRUE(same_items(a, b));
  EXPECT_TRUE(same_items(a, rev));
  const EvalTask capped = build_eval_task("next_sentence", c.docs, c.splits, "/nonexistent", 3);
  ASSERT_EQ(capped.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(capped.items[i].doc_id, a.items[i].doc_id);
}

// ---------------------------------------------------------------------------------------------
// WordNet

const char* const kLicense =
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.  By obtaining, using  \n";

void write_tiny_wordnet(const fs::path& data_dir) {
  const fs::path dict = data_dir / "src" / "wordnet" / "package" / "dict";
  fs::create_directories(dict);
  write_file(
      dict / "data.noun",
      std::string(kLicense) +
          "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04431553 n "
          "0000 | that which is perceived or known or inferred to have its own distinct "
          "existence (living or nonliving)  \n"
          "00002000 05 n 02 dog 0 domestic_dog 0 001 @ 00001740 n 0000 | a member of the "
          "genus Canis that has been domesticated by man since prehistoric times; occurs in "
          "many breeds; \"the dog barked all night\"  \n"
          "00003000 05 n 01 cat 0 000 | feline mammal usually having thick soft fur and no "
          "ability to roar  \n"
          "00004000 18 n 01 Einstein 0 000 | physicist born in Germany who formulated the "
          "special theory of relativity  \n"
          "00005000 06 n 01 house 0 000 | a dwelling that serves as living quarters for one "
          "or more families  \n"
          "00006000 17 n 01 river 0 000 | a large natural stream of water (larger than a "
          "creek)  \n"
          "00007000 17 n 02 bank 0 riverbank 0 000 | sloping land beside a body of water  \n"
          "00008000 20 n 01 tree 0 000 | a tall perennial woody plant having a main trunk  \n"
          "00009000 03 n 01 thing 0 000 | an entity  \n"
          "00010000 10 n 01 giveaway_word 0 000 | a word that gives itself away  \n"
          "00011000 15 n 02 dwelling 0 house 1 000 | housing that someone is living in  \n");
  write_file(
      dict / "data.verb",
      std::string(kLicense) +
          "00010000 38 v 01 run 0 000 01 + 01 00 | move fast by using one's feet; \"Don't "
          "run--you'll be out of breath\"  \n"
          "00010100 38 v 01 walk 0 000 01 + 01 00 | use one's feet to advance  \n"
          "00010200 38 v 01 swim 0 000 01 + 01 00 | travel through water  \n"
          "00010300 38 v 02 jump 0 leap 0 000 01 + 01 00 | move forward by leaps and "
          "bounds  \n"
          "00010400 36 v 01 sing 0 000 02 + 01 00 + 02 00 | produce tones with the voice  \n");
  write_file(dict / "data.adj",
             std::string(kLicense) +
                 "00020000 00 a 01 happy 0 000 | enjoying or showing or marked by joy or "
                 "pleasure  \n"
                 "00020100 00 s 01 glad(p) 0 000 | feeling pleasure and appreciation  \n"
                 "00020200 00 a 01 sad 0 000 | experiencing or showing sorrow or unhappiness  \n"
                 "00020300 00 a 01 big 0 000 | above average in size or number or quantity  \n"
                 "00020400 00 a 01 small 0 000 | limited or below average in number  \n");
  // Two adverbs: too few for three distractors of the same part of speech.
  write_file(dict / "data.adv", std::string(kLicense) +
                                    "00030000 02 r 01 quickly 0 000 | with rapid movements  \n"
                                    "00030100 02 r 01 slowly 0 000 | without speed  \n");
}

TEST(EvalTasksWordNet, ParsesDataLines) {
  const WordNetSynset s = parse_wordnet_data_line(
      "01926376 00 s 03 galore(ip) 0 in_abundance(ip) 0 abundant 1 001 & 01925372 a 0000 | "
      "in abundance; \"food and drink galore\"  ");
  EXPECT_EQ(s.pos, 'a');
  EXPECT_EQ(s.offset, "01926376");
  EXPECT_EQ(s.lemmas, (std::vector<std::string>{"galore", "in_abundance", "abundant"}));
  EXPECT_EQ(s.gloss, "in abundance; \"food and drink galore\"");
  // Twelve words: the count is hexadecimal ("0c").
  const WordNetSynset many = parse_wordnet_data_line(
      "00000001 03 n 0c a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i 0 j 0 k 0 l 0 000 | letters  ");
  EXPECT_EQ(many.lemmas.size(), 12u);
  EXPECT_EQ(many.lemmas.back(), "l");
  EXPECT_NE(error_of([] { parse_wordnet_data_line("00000001 03 n 02 one 0 | gloss"); }), "");
  EXPECT_NE(error_of([] { parse_wordnet_data_line("00000001 03 n 01 one 0 000 no gloss"); }), "");
  EXPECT_NE(error_of([] { parse_wordnet_data_line("0001 03 x 01 one 0 000 | gloss"); }), "");
}

TEST(EvalTasksWordNet, ExactItemsAndSamePartOfSpeechDistractors) {
  TempDir tmp;
  write_tiny_wordnet(tmp.path());
  const EvalTask task = build_eval_task("wordnet", {}, {}, tmp.path(), 0);
  EXPECT_EQ(task.kind, TaskKind::kMultipleChoice);
  EXPECT_EQ(task.primary_metric, "acc_norm");
  EXPECT_DOUBLE_EQ(task.chance, 0.25);
  // Nouns: entity dog cat house river bank tree dwelling (Einstein: capitalised; thing: gloss
  // under 10 bytes; giveaway_word: its gloss says "word"). Verbs: 5. Adjectives: 5 (satellite
  // "glad" included). Adverbs: 0 (only two).
  const std::set<std::string> nouns = {" entity", " dog",  " cat",  " house",
                                       " river",  " bank", " tree", " dwelling"};
  const std::set<std::string> verbs = {" run", " walk", " swim", " jump", " sing"};
  const std::set<std::string> adjectives = {" happy", " glad", " sad", " big", " small"};
  ASSERT_EQ(task.items.size(), 18u);

  std::map<std::string, std::pair<std::string, std::string>> expected = {
      // doc id -> (context, correct choice)
      {"wordnet/n/00002000",
       {"Definition: a member of the genus Canis that has been domesticated by man since "
        "prehistoric times\nWord:",
        " dog"}},
      {"wordnet/n/00003000",
       {"Definition: feline mammal usually having thick soft fur and no ability to roar\nWord:",
        " cat"}},
      {"wordnet/v/00010000", {"Definition: move fast by using one's feet\nWord:", " run"}},
      {"wordnet/a/00020100", {"Definition: feeling pleasure and appreciation\nWord:", " glad"}},
      {"wordnet/n/00011000", {"Definition: housing that someone is living in\nWord:", " dwelling"}},
  };
  size_t checked = 0;
  for (const EvalItem& item : task.items) {
    ASSERT_EQ(item.choices.size(), 4u) << item.doc_id;
    ASSERT_GE(item.answer, 0);
    ASSERT_LT(item.answer, 4);
    const char pos = item.doc_id.at(std::string("wordnet/").size());
    const std::set<std::string>& same_pos = pos == 'n' ? nouns : pos == 'v' ? verbs : adjectives;
    ASSERT_TRUE(pos == 'n' || pos == 'v' || pos == 'a') << item.doc_id;
    EXPECT_EQ(std::set<std::string>(item.choices.begin(), item.choices.end()).size(), 4u);
    for (const std::string& choice : item.choices) {
      EXPECT_EQ(same_pos.count(choice), 1u) << item.doc_id << ": '" << choice << "'";
    }
    auto it = expected.find(item.doc_id);
    if (it != expected.end()) {
      EXPECT_EQ(item.context, it->second.first);
      EXPECT_EQ(item.choices[item.answer], it->second.second);
      ++checked;
    }
    if (item.doc_id == "wordnet/n/00011000") {
      // "house" is a lemma of this synset too: never a wrong answer for it.
      EXPECT_EQ(std::count(item.choices.begin(), item.choices.end(), " house"), 0);
    }
  }
  EXPECT_EQ(checked, expected.size());

  // Deterministic; max_items keeps a prefix of the full order.
  const EvalTask again = build_eval_task("wordnet", {}, {}, tmp.path(), 0);
  EXPECT_TRUE(same_items(task, again));
  const EvalTask capped = build_eval_task("wordnet", {}, {}, tmp.path(), 5);
  ASSERT_EQ(capped.items.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(capped.items[i].doc_id, task.items[i].doc_id);
}

TEST(EvalTasksWordNet, LemmasOfTheSameSynsetAreNeverDistractors) {
  // Four nouns; "dwelling" shares its synset with "house", which leaves it only two possible
  // distractors (cat, dog): no item. Every other synset has exactly three.
  TempDir tmp;
  const fs::path dict = tmp.path() / "src" / "wordnet" / "package" / "dict";
  fs::create_directories(dict);
  write_file(dict / "data.noun",
             std::string(kLicense) +
                 "00005000 06 n 01 house 0 000 | a dwelling that serves as living quarters  \n"
                 "00011000 15 n 02 dwelling 0 house 1 000 | housing that someone is living in  \n"
                 "00003000 05 n 01 cat 0 000 | feline mammal usually having thick soft fur  \n"
                 "00002000 05 n 01 dog 0 000 | a member of the genus Canis  \n");
  for (const char* name : {"data.verb", "data.adj", "data.adv"}) write_file(dict / name, kLicense);
  const EvalTask task = build_eval_task("wordnet", {}, {}, tmp.path(), 0);
  std::map<std::string, std::set<std::string>> wrong;  // doc id -> wrong choices
  for (const EvalItem& item : task.items) {
    for (int i = 0; i < static_cast<int>(item.choices.size()); ++i) {
      if (i != item.answer) wrong[item.doc_id].insert(item.choices[i]);
    }
  }
  EXPECT_EQ(wrong, (std::map<std::string, std::set<std::string>>{
                       {"wordnet/n/00005000", {" dwelling", " cat", " dog"}},
                       {"wordnet/n/00003000", {" house", " dwelling", " dog"}},
                       {"wordnet/n/00002000", {" house", " dwelling", " cat"}}}));
}

TEST(EvalTasksWordNet, MissingOrDamagedWordNetIsAClearError) {
  TempDir tmp;
  const std::string missing =
      error_of([&] { build_eval_task("wordnet", {}, {}, tmp.path() / "nodata", 0); });
  EXPECT_NE(missing.find("data.noun"), std::string::npos) << missing;
  EXPECT_NE(missing.find("moebench data fetch"), std::string::npos) << missing;
  EXPECT_THROW(build_eval_task("wordnet", {}, {}, tmp.path() / "nodata", 0), std::runtime_error);

  write_tiny_wordnet(tmp.path());
  const fs::path verb = tmp.path() / "src" / "wordnet" / "package" / "dict" / "data.verb";
  write_file(verb, std::string(kLicense) + "00010000 38 v 03 run 0 000 | too few words\n");
  const std::string damaged = error_of([&] { build_eval_task("wordnet", {}, {}, tmp.path(), 0); });
  EXPECT_NE(damaged.find("data.verb line 3"), std::string::npos) << damaged;
  fs::remove(verb);
  const std::string gone = error_of([&] { build_eval_task("wordnet", {}, {}, tmp.path(), 0); });
  EXPECT_NE(gone.find("data.verb"), std::string::npos) << gone;
}

// ---------------------------------------------------------------------------------------------
// Shared behaviour

TEST(EvalTasks, NamesAndErrors) {
  EXPECT_EQ(eval_task_names(),
            (std::vector<std::string>{"imdb", "cloze", "next_sentence", "wordnet"}));
  const Corpus c = imdb_corpus();
  const std::string unknown =
      error_of([&] { build_eval_task("lambada", c.docs, c.splits, "/nonexistent", 0); });
  EXPECT_NE(unknown.find("'lambada'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("imdb, cloze, next_sentence, wordnet"), std::string::npos) << unknown;
  EXPECT_THROW(build_eval_task("lambada", c.docs, c.splits, "/nonexistent", 0),
               std::invalid_argument);
  std::vector<Split> short_splits(c.splits.begin(), c.splits.end() - 1);
  EXPECT_THROW(build_eval_task("imdb", c.docs, short_splits, "/nonexistent", 0),
               std::invalid_argument);
}

TEST(EvalTasks, CorpusTasksAreIndependentOfInputOrder) {
  Corpus c = imdb_corpus();
  const Corpus ns = next_sentence_corpus();
  for (size_t i = 0; i < ns.docs.size(); ++i)
    c.add(ns.docs[i].id, ns.docs[i].source, -1, ns.docs[i].text, ns.splits[i]);
  c.add("sotu/b/0000", Source::kSotu, -1, "Anna met Bob at noon. Later Bob waved to Anna.",
        Split::kHeldout);
  const Corpus r = c.reversed();
  for (const std::string name : {"imdb", "cloze", "next_sentence"}) {
    const EvalTask a = build_eval_task(name, c.docs, c.splits, "/nonexistent", 0);
    const EvalTask b = build_eval_task(name, r.docs, r.splits, "/nonexistent", 0);
    EXPECT_FALSE(a.items.empty()) << name;
    EXPECT_TRUE(same_items(a, b)) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Real data: no evaluation document may occur in the training or validation shards.

std::set<uint64_t> shard_doc_hashes(const fs::path& path) {
  ShardReader reader(path, /*verify_checksum=*/false);
  std::set<uint64_t> out;
  for (uint64_t i = 0; i < reader.num_docs(); ++i) out.insert(reader.docs()[i].id_hash);
  return out;
}

TEST(EvalTasksReal, NoEvaluationDocumentIsInTheTrainingShards) {
  const fs::path data = testing::data_dir();
  const fs::path shards = data / "tokens" / "bpe8k";
  if (!fs::exists(data / "src") || !fs::exists(shards / "train.bin")) {
    GTEST_SKIP() << "no prepared data in " << data
                 << "; run `moebench data fetch` and `moebench data prepare --vocab bpe8k`";
  }
  const std::vector<Document> docs = load_corpus(data);
  const std::vector<Split> splits = assign_splits(docs);
  std::set<uint64_t> forbidden = shard_doc_hashes(shards / "train.bin");
  const size_t train_docs = forbidden.size();
  if (fs::exists(shards / "val.bin")) {
    const std::set<uint64_t> val = shard_doc_hashes(shards / "val.bin");
    forbidden.insert(val.begin(), val.end());
  }
  std::set<uint64_t> heldout_shard;
  if (fs::exists(shards / "heldout.bin")) heldout_shard = shard_doc_hashes(shards / "heldout.bin");
  ASSERT_GT(train_docs, 10000u);

  for (const std::string& name : eval_task_names()) {
    const EvalTask task = build_eval_task(name, docs, splits, data, 0);
    EXPECT_GT(task.items.size(), 100u) << name;
    size_t leaked = 0, missing_from_heldout = 0, over_limit = 0;
    std::vector<size_t> answers(4, 0);
    std::set<std::string> ids;
    for (const EvalItem& item : task.items) {
      ids.insert(item.doc_id);
      over_limit += item.context.size() > kEvalMaxContextBytes;
      ++answers.at(item.answer);
      if (name == "wordnet") continue;  // not corpus text
      const uint64_t h = doc_id_hash(item.doc_id);
      leaked += forbidden.count(h);
      if (!heldout_shard.empty()) missing_from_heldout += heldout_shard.count(h) == 0;
    }
    EXPECT_EQ(leaked, 0u) << name << ": evaluation documents found in train/val shards";
    EXPECT_EQ(missing_from_heldout, 0u) << name << ": documents not in heldout.bin";
    EXPECT_EQ(over_limit, 0u) << name;
    if (name != "wordnet") {
      EXPECT_EQ(ids.size(), task.items.size()) << name;
    }
    if (name == "imdb") {
      EXPECT_EQ(answers[0], answers[1]);
    }
    std::printf("[ eval ] %-14s %6zu items  answers at 0/1/2/3: %zu/%zu/%zu/%zu\n", name.c_str(),
                task.items.size(), answers[0], answers[1], answers[2], answers[3]);
  }
}

}  // namespace
}  // namespace moebench::data
