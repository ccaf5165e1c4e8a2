// Offline zero-shot task builders (IMDB sentiment, last-word cloze, next sentence, WordNet
// definition -> word) from held-out documents: shared/spec/DATA.md "Zero-shot evaluation
// available offline" and the hold-out rule of "Corpus".
//
// Sampling rules, all deterministic (stable hashes, sorted containers, no random devices):
//  - Order: the items of a task are sorted by doc_id_hash("<task>:<doc id>") (ties: by doc id);
//    max_items keeps the first ones. The task name salts the hash so that small subsets of
//    different tasks are independent of each other and of the hold-out ranking itself.
//  - Contexts keep their last kEvalMaxContextBytes bytes, starting after a whitespace.
//  - Sentence ends: '.', '!' or '?' (plus closing quotes or brackets) followed by whitespace and
//    an opening capital or quote, or by the end of the text; the period after a single letter
//    (initials, "U.S.") or a known abbreviation ("Mrs.", "Gen.") is not one.
//  - imdb: every held-out review; per label in hash order, interleaved negative, positive, ...
//    and stopped when either label runs out, so every even prefix is exactly balanced.
//  - cloze: per held-out Gutenberg/SOTU passage, the latest sentence end whose final word is
//    ASCII letters only, >= 3 letters, preceded by a space and found as a whole word
//    (case-sensitive) in the (cut) context before it; passages without one give no item.
//  - next_sentence: per held-out passage, its last whole sentence (index >= 1, ending in . ! or
//    ?) of 20..300 bytes is the answer and the text before it the context; 3 distractors are such
//    sentences from other held-out passages of the same source, in a length window around the
//    answer's length L (+-max(4, L/10) bytes, doubled until 3 are found): the first 3 distinct
//    ones in the order of fnv1a64(doc id + "\n" + sentence). Whitespace runs in sentences are
//    collapsed to one space. Passages of a source with fewer than 3 others give no item.
//  - wordnet: per synset, the first lemma of lowercase letters (words joined by '_' or '-', at
//    most 3 words, >= 3 bytes) and the gloss before its first ';' (>= 10 bytes); synsets whose
//    gloss contains a word of that lemma are skipped (copying would answer them). Distractors:
//    3 such lemmas of other synsets of the same part of speech (satellites count as adjectives),
//    none equal to any lemma of the item's synset, drawn by a hash-seeded generator.
//  - Multiple-choice items have their choices shuffled by a hash of the task and doc id.
#include "datasets/eval_tasks.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "datasets/hashing.h"
#include "datasets/wordnet.h"

namespace moebench::data {

namespace {

constexpr size_t kMinSentenceBytes = 20;
constexpr size_t kMaxSentenceBytes = 300;
constexpr size_t kMinClozeWord = 3;
constexpr size_t kMinGlossBytes = 10;
constexpr size_t kMaxLemmaWords = 3;

const char* const kImdbQuestion = "\nQuestion: Is this sentence positive or negative?\nAnswer:";

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

bool starts_with_at(std::string_view s, size_t i, std::string_view prefix) {
  return s.size() >= i + prefix.size() && s.compare(i, prefix.size(), prefix) == 0;
}

std::string rtrim(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && is_space(s[e - 1])) --e;
  return std::string(s.substr(0, e));
}

// Runs of whitespace (newlines included) become one space; the ends are trimmed.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending = false;
  for (char c : s) {
    if (is_space(c)) {
      pending = !out.empty();
      continue;
    }
    if (pending) out.push_back(' ');
    pending = false;
    out.push_back(c);
  }
  return out;
}

// The last <= max_bytes bytes of s, starting at the first word after the cut. Cutting after
// an ASCII whitespace never splits a UTF-8 sequence; a text without one in range is cut at the
// next code point boundary instead.
std::string tail_at_word_boundary(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  const size_t cut = s.size() - max_bytes;
  size_t b = cut;
  if (!is_space(s[b - 1])) {
    while (b < s.size() && !is_space(s[b])) ++b;
  }
  while (b < s.size() && is_space(s[b])) ++b;
  if (b == s.size()) {
    b = cut;
    while (b < s.size() && (static_cast<unsigned char>(s[b]) & 0xc0) == 0x80) ++b;
  }
  return std::string(s.substr(b));
}

// Whether `word` (ASCII letters) occurs in s with no ASCII letter directly before or after it.
bool contains_whole_word(std::string_view s, std::string_view word, bool ignore_case) {
  if (word.empty() || s.size() < word.size()) return false;
  for (size_t i = 0; i + word.size() <= s.size(); ++i) {
    bool match = true;
    for (size_t k = 0; k < word.size() && match; ++k) {
      const char a = s[i + k], b = word[k];
      match = ignore_case ? to_lower(a) == to_lower(b) : a == b;
    }
    if (!match) continue;
    const bool left_ok = i == 0 || !is_alpha(s[i - 1]);
    const bool right_ok = i + word.size() == s.size() || !is_alpha(s[i + word.size()]);
    if (left_ok && right_ok) return true;
  }
  return false;
}

// Titles and abbreviations whose period is not a sentence end although a capital follows.
bool is_abbreviation(std::string_view word) {
  static const std::set<std::string, std::less<>> kAbbrev = {
      "Mr",  "Mrs", "Ms",  "Dr",   "St",  "Messrs", "Mme",  "Mlle", "Jr",  "Sr",   "Esq",
      "Gen", "Col", "Maj", "Capt", "Lt",  "Sgt",    "Gov",  "Rev",  "Hon", "Prof", "Pres",
      "Sen", "Rep", "Co",  "Inc",  "Ltd", "Vol",    "Chap", "No",   "viz", "etc",  "vs"};
  return kAbbrev.count(word) > 0;
}

// A sentence: text[b, e) (e is past the end punctuation and closing quotes); `punct` is the
// index of the end punctuation (npos for a final fragment without one).
struct SentenceSpan {
  size_t b, e, punct;
};

// Splits at the sentence ends described in the file comment. The last span runs to the end of
// the text whether or not it ends with punctuation.
std::vector<SentenceSpan> split_sentences(std::string_view t) {
  std::vector<SentenceSpan> out;
  size_t start = 0;
  while (start < t.size() && is_space(t[start])) ++start;
  for (size_t i = start; i < t.size(); ++i) {
    const char c = t[i];
    if (c != '.' && c != '?' && c != '!') continue;
    size_t j = i + 1;  // past closing quotes and brackets that belong to the sentence
    while (j < t.size()) {
      if (t[j] == '"' || t[j] == '\'' || t[j] == ')' || t[j] == ']') {
        ++j;
      } else if (starts_with_at(t, j, "\u201d") || starts_with_at(t, j, "\u2019")) {
        j += 3;
      } else {
        break;
      }
    }
    size_t k = j;
    if (j < t.size()) {
      if (!is_space(t[j])) continue;
      while (k < t.size() && is_space(t[k])) ++k;
      if (k < t.size()) {
        const bool opens = is_upper(t[k]) || t[k] == '"' || t[k] == '\'' ||
                           starts_with_at(t, k, "\u201c") || starts_with_at(t, k, "\u2018");
        if (!opens) continue;
      }
    }
    if (c == '.') {
      // Initials ("John F. Kennedy", "U.S. Army") and known abbreviations do not end sentences.
      size_t w = i;
      while (w > start && is_alpha(t[w - 1])) --w;
      if (i - w == 1 || is_abbreviation(t.substr(w, i - w))) continue;
    }
    out.push_back({start, j, i});
    start = k;
    i = k == 0 ? 0 : k - 1;
  }
  size_t e = t.size();
  while (e > start && is_space(t[e - 1])) --e;
  if (start < e) out.push_back({start, e, std::string_view::npos});
  return out;
}

// splitmix64: a tiny, fully specified generator, so shuffles are identical on every platform
// (std::shuffle and the std distributions are implementation-defined).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // bias < n / 2^64: irrelevant here
};

// Shuffles the choices (the correct one first on entry) and sets the answer's new index.
void shuffle_choices(EvalItem& item, const std::string& task) {
  SplitMix64 rng{doc_id_hash(task + ":shuffle:" + item.doc_id)};
  std::vector<int> order(item.choices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  std::vector<std::string> shuffled(item.choices.size());
  for (size_t i = 0; i < order.size(); ++i) {
    shuffled[i] = std::move(item.choices[order[i]]);
    if (order[i] == 0) item.answer = static_cast<int>(i);
  }
  item.choices = std::move(shuffled);
}

uint64_t order_key(const std::string& task, const std::string& doc_id) {
  return doc_id_hash(task + ":" + doc_id);
}

// Sorts items into the task's stable order and keeps the first max_items (0 = all).
void order_and_cap(const std::string& task, std::vector<EvalItem>& items, size_t max_items) {
  std::vector<std::pair<uint64_t, size_t>> keys(items.size());
  for (size_t i = 0; i < items.size(); ++i) keys[i] = {order_key(task, items[i].doc_id), i};
  std::sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return items[a.second].doc_id < items[b.second].doc_id;
  });
  std::vector<EvalItem> sorted;
  sorted.reserve(items.size());
  for (const auto& k : keys) sorted.push_back(std::move(items[k.second]));
  if (max_items > 0 && sorted.size() > max_items) sorted.resize(max_items);
  items = std::move(sorted);
}

std::vector<const Document*> heldout_docs(const std::vector<Document>& docs,
                                          const std::vector<Split>& splits, bool passages) {
  std::vector<const Document*> out;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (splits[i] != Split::kHeldout) continue;
    if ((docs[i].source != Source::kImdb) == passages) out.push_back(&docs[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

EvalTask build_imdb(const std::vector<Document>& docs, const std::vector<Split>& splits,
                    size_t max_items) {
  EvalTask task{"imdb", TaskKind::kMultipleChoice, "acc", 0.5, {}};
  const std::string question = kImdbQuestion;
  std::vector<EvalItem> by_label[2];
  for (const Document* d : heldout_docs(docs, splits, /*passages=*/false)) {
    if (d->label != 0 && d->label != 1) continue;
    EvalItem item;
    item.context = tail_at_word_boundary(d->text, kEvalMaxContextBytes - question.size());
    item.context += question;
    item.choices = {" negative", " positive"};
    item.answer = d->label;
    item.doc_id = d->id;
    by_label[d->label].push_back(std::move(item));
  }
  for (auto& items : by_label) order_and_cap("imdb", items, 0);
  const size_t pairs = std::min(by_label[0].size(), by_label[1].size());
  for (size_t i = 0; i < pairs; ++i) {
    task.items.push_back(std::move(by_label[0][i]));
    task.items.push_back(std::move(by_label[1][i]));
  }
  if (max_items > 0 && task.items.size() > max_items) task.items.resize(max_items);
  return task;
}

EvalTask build_cloze(const std::vector<Document>& docs, const std::vector<Split>& splits,
                     size_t max_items) {
  EvalTask task{"cloze", TaskKind::kGreedyTarget, "acc", 0.0, {}};
  for (const Document* d : heldout_docs(docs, splits, /*passages=*/true)) {
    const std::string& t = d->text;
    const std::vector<SentenceSpan> sentences = split_sentences(t);
    for (auto s = sentences.rbegin(); s != sentences.rend(); ++s) {
      if (s->punct == std::string_view::npos) continue;
      size_t wb = s->punct;
      while (wb > 0 && is_alpha(t[wb - 1])) --wb;
      const size_t len = s->punct - wb;
      if (len < kMinClozeWord || wb < 2 || t[wb - 1] != ' ') continue;
      const std::string word = t.substr(wb, len);
      const std::string context =
          tail_at_word_boundary(rtrim(std::string_view(t).substr(0, wb)), kEvalMaxContextBytes);
      if (context.empty() || !contains_whole_word(context, word, /*ignore_case=*/false)) continue;
      task.items.push_back(EvalItem{context, {" " + word}, 0, d->id});
      break;
    }
  }
  order_and_cap(task.name, task.items, max_items);
  return task;
}

EvalTask build_next_sentence(const std::vector<Document>& docs, const std::vector<Split>& splits,
                             size_t max_items) {
  EvalTask task{"next_sentence", TaskKind::kMultipleChoice, "acc_norm", 0.25, {}};
  struct PoolSentence {
    std::string text;
    const Document* doc;
  };
  struct Candidate {
    const Document* doc;
    std::string context, answer;
  };
  // Pool sorted by (source, text, doc id): independent of the input order.
  std::vector<PoolSentence> pool;
  std::vector<Candidate> candidates;
  for (const Document* d : heldout_docs(docs, splits, /*passages=*/true)) {
    const std::vector<SentenceSpan> sentences = split_sentences(d->text);
    std::vector<std::string> texts;
    // Only whole sentences (ending in . ! or ?) are answers or distractors: a passage's last
    // fragment may stop at a paragraph break mid-sentence ("she presently replied,").
    std::vector<bool> usable;
    for (const SentenceSpan& s : sentences) {
      texts.push_back(collapse_spaces(std::string_view(d->text).substr(s.b, s.e - s.b)));
      const size_t n = texts.back().size();
      usable.push_back(s.punct != std::string_view::npos && n >= kMinSentenceBytes &&
                       n <= kMaxSentenceBytes);
      if (usable.back()) pool.push_back({texts.back(), d});
    }
    for (size_t j = sentences.size(); j-- > 1;) {
      if (!usable[j]) continue;
      std::string context = tail_at_word_boundary(
          rtrim(std::string_view(d->text).substr(0, sentences[j].b)), kEvalMaxContextBytes);
      if (context.empty()) break;
      candidates.push_back({d, std::move(context), texts[j]});
      break;
    }
  }
  std::sort(pool.begin(), pool.end(), [](const PoolSentence& a, const PoolSentence& b) {
    if (a.doc->source != b.doc->source) return a.doc->source < b.doc->source;
    if (a.text != b.text) return a.text < b.text;
    return a.doc->id < b.doc->id;
  });

  for (const Candidate& c : candidates) {
    const size_t length = c.answer.size();
    std::vector<std::string> distractors;
    for (size_t window = std::max<size_t>(4, length / 10); window <= 2 * kMaxSentenceBytes;
         window *= 2) {
      std::vector<std::pair<uint64_t, const std::string*>> ranked;
      for (const PoolSentence& p : pool) {
        if (p.doc->source != c.doc->source || p.doc->id == c.doc->id || p.text == c.answer) {
          continue;
        }
        const size_t n = p.text.size();
        if ((n > length ? n - length : length - n) > window) continue;
        ranked.push_back({fnv1a64(c.doc->id + "\n" + p.text), &p.text});
      }
      std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        if (a.first != b.first) return a.first < b.first;
        return *a.second < *b.second;
      });
      distractors.clear();
      for (const auto& r : ranked) {
        if (std::find(distractors.begin(), distractors.end(), *r.second) != distractors.end()) {
          continue;
        }
        distractors.push_back(*r.second);
        if (distractors.size() == 3) break;
      }
      if (distractors.size() == 3) break;
    }
    if (distractors.size() < 3) continue;  // too few other passages of this source
    EvalItem item{c.context, {" " + c.answer}, 0, c.doc->id};
    for (const std::string& s : distractors) item.choices.push_back(" " + s);
    shuffle_choices(item, task.name);
    task.items.push_back(std::move(item));
  }
  order_and_cap(task.name, task.items, max_items);
  return task;
}

// The lemma a synset is asked by: lowercase ASCII words joined by '_' or '-'; empty if none.
std::string askable_lemma(const WordNetSynset& s) {
  for (const std::string& lemma : s.lemmas) {
    if (lemma.size() < 3) continue;
    bool ok = true;
    size_t words = 1;
    for (size_t i = 0; i < lemma.size() && ok; ++i) {
      const char c = lemma[i];
      if (c >= 'a' && c <= 'z') continue;
      const bool separator = c == '_' || c == '-';
      // A separator must sit between two letters.
      ok = separator && i > 0 && i + 1 < lemma.size() && is_alpha(lemma[i - 1]) &&
           is_alpha(lemma[i + 1]);
      words += c == '_';
    }
    if (ok && words <= kMaxLemmaWords) return lemma;
  }
  return {};
}

std::string display_lemma(std::string lemma) {
  std::replace(lemma.begin(), lemma.end(), '_', ' ');
  return lemma;
}

std::string lower_display(const std::string& lemma) {
  std::string out = display_lemma(lemma);
  for (char& c : out) c = to_lower(c);
  return out;
}

EvalTask build_wordnet(const std::filesystem::path& data_dir, size_t max_items) {
  EvalTask task{"wordnet", TaskKind::kMultipleChoice, "acc_norm", 0.25, {}};
  const std::vector<WordNetSynset> synsets = read_wordnet(find_wordnet_dict(data_dir));
  struct Asked {
    const WordNetSynset* synset;
    std::string lemma;  // display form
    std::string gloss;
  };
  std::vector<Asked> asked;
  std::map<char, std::vector<std::string>> pool_by_pos;  // sorted, unique after the loop
  for (const WordNetSynset& s : synsets) {
    const std::string lemma = askable_lemma(s);
    if (lemma.empty()) continue;
    std::string gloss = s.gloss.substr(0, s.gloss.find(';'));
    gloss = collapse_spaces(gloss);
    if (gloss.size() < kMinGlossBytes) continue;
    bool gives_away = false;
    std::string word;
    for (size_t i = 0; i <= lemma.size(); ++i) {
      if (i < lemma.size() && is_alpha(lemma[i])) {
        word.push_back(lemma[i]);
        continue;
      }
      gives_away = gives_away || contains_whole_word(gloss, word, /*ignore_case=*/true);
      word.clear();
    }
    if (gives_away) continue;
    asked.push_back({&s, display_lemma(lemma), std::move(gloss)});
    pool_by_pos[s.pos].push_back(asked.back().lemma);
  }
  for (auto& [pos, pool] : pool_by_pos) {
    std::sort(pool.begin(), pool.end());
    pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  }
  for (const Asked& a : asked) {
    const std::vector<std::string>& pool = pool_by_pos[a.synset->pos];
    std::set<std::string> banned;
    for (const std::string& l : a.synset->lemmas) banned.insert(lower_display(l));
    banned.insert(a.lemma);
    const std::string doc_id = fmt::format("wordnet/{}/{}", a.synset->pos, a.synset->offset);
    std::vector<std::string> distractors;
    auto try_add = [&](const std::string& cand) {
      if (banned.count(cand) ||
          std::find(distractors.begin(), distractors.end(), cand) != distractors.end()) {
        return;
      }
      distractors.push_back(cand);
    };
    // Hash-seeded draws from the sorted pool; a bounded number of them, then a scan in pool
    // order, so that a tiny pool terminates too.
    SplitMix64 rng{doc_id_hash("wordnet:distractors:" + doc_id)};
    for (int draw = 0; draw < 64 && distractors.size() < 3; ++draw) {
      try_add(pool[rng.below(pool.size())]);
    }
    for (size_t i = 0; i < pool.size() && distractors.size() < 3; ++i) try_add(pool[i]);
    if (distractors.size() < 3) continue;
    EvalItem item{"Definition: " + a.gloss + "\nWord:", {" " + a.lemma}, 0, doc_id};
    for (const std::string& s : distractors) item.choices.push_back(" " + s);
    shuffle_choices(item, task.name);
    task.items.push_back(std::move(item));
  }
  order_and_cap(task.name, task.items, max_items);
  return task;
}

}  // namespace

const std::vector<std::string>& eval_task_names() {
  static const std::vector<std::string> kNames = {"imdb", "cloze", "next_sentence", "wordnet"};
  return kNames;
}

EvalTask build_eval_task(const std::string& name, const std::vector<Document>& docs,
                         const std::vector<Split>& splits, const std::filesystem::path& data_dir,
                         size_t max_items) {
  if (docs.size() != splits.size()) {
    throw std::invalid_argument(fmt::format(
        "build_eval_task: {} documents but {} splits; pass assign_splits(docs) of the same corpus",
        docs.size(), splits.size()));
  }
  if (name == "imdb") return build_imdb(docs, splits, max_items);
  if (name == "cloze") return build_cloze(docs, splits, max_items);
  if (name == "next_sentence") return build_next_sentence(docs, splits, max_items);
  if (name == "wordnet") return build_wordnet(data_dir, max_items);
  std::string known;
  for (const std::string& n : eval_task_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown evaluation task '" + name + "'; known tasks: " + known);
}

}  // namespace moebench::data
