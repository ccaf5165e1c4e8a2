// Token shards: uint16 ids of whole documents (each followed by <|endoftext|>) plus a document
// table, behind a checksummed header; written atomically, read through mmap.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace moebench::data {

// On-disk header (little-endian, 128 bytes). Layout after it: uint16 tokens[num_tokens], zero
// padding to a multiple of 8, DocEntry docs[num_docs].
struct ShardHeader {
  char magic[8];            // "MOEBSHRD"
  uint32_t version;         // kShardVersion
  uint32_t header_bytes;    // sizeof(ShardHeader)
  char vocab_name[32];      // NUL-padded, e.g. "gpt2", "bpe8k"
  uint64_t vocab_identity;  // BpeTokenizer::identity() of the vocabulary used
  uint32_t vocab_size;
  uint32_t eot_id;
  uint64_t num_tokens;  // including one <|endoftext|> after every document
  uint64_t num_docs;
  uint64_t checksum;  // FNV-1a 64 over the token bytes, then the document table bytes
  char reserved[40];
};
static_assert(sizeof(ShardHeader) == 128, "shard header must stay 128 bytes");

struct DocEntry {
  uint64_t begin;    // index of the document's first token
  uint64_t id_hash;  // doc_id_hash(document id): lets tests prove split disjointness
  uint32_t length;   // tokens of the document, excluding the <|endoftext|> that follows
  uint32_t source;   // data::Source
};
static_assert(sizeof(DocEntry) == 24, "doc entry must stay 24 bytes");

constexpr uint32_t kShardVersion = 1;

struct VocabInfo {
  std::string name;
  uint64_t identity = 0;
  uint32_t size = 0;
  uint32_t eot_id = 0;
};

// Streams documents into <path>.tmp and renames to <path> on finish(): a killed writer leaves
// no file that looks complete.
class ShardWriter {
 public:
  ShardWriter(const std::filesystem::path& path, const VocabInfo& vocab);
  ~ShardWriter();  // removes the temp file unless finish() ran
  void add_document(const std::vector<int32_t>& ids, uint64_t id_hash, uint32_t source);
  void finish();

 private:
  std::filesystem::path path_, tmp_path_;
  VocabInfo vocab_;
  std::ofstream out_;
  std::vector<DocEntry> docs_;
  uint64_t num_tokens_ = 0;
  uint64_t checksum_;
  bool finished_ = false;
};

// Memory-mapped, validated reader. Every problem is a std::runtime_error naming the file, what
// is wrong and what to run.
//
// Opening always checks the structure, in O(documents): a regular file, magic, version, a
// plausible header vocabulary, the file size the header promises, and a document table that
// tiles the tokens exactly (document i starts one <|endoftext|> after document i-1 ends and the
// last one ends one token before num_tokens), so no document can point past the tokens.
// An empty shard (no documents, no tokens) is structurally valid: prepare writes one for an empty
// split, and the sampler refuses it with its own message.
class ShardReader {
 public:
  // verify_checksum = true also runs verify() (O(tokens)); pass false for a quick look at the
  // document table only, as long as nothing feeds the tokens to a model unchecked.
  explicit ShardReader(const std::filesystem::path& path, bool verify_checksum = true);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardHeader& header() const { return *header_; }
  std::string vocab_name() const;
  const uint16_t* tokens() const { return tokens_; }
  uint64_t num_tokens() const { return header_->num_tokens; }
  const DocEntry* docs() const { return docs_; }
  uint64_t num_docs() const { return header_->num_docs; }
  const std::filesystem::path& path() const { return path_; }

  // Throws unless the shard was made with exactly this vocabulary (name, size and identity).
  void require_vocab(const VocabInfo& expected) const;

  // The full check (`moebench data verify`): the checksum, every token id below the header's
  // vocabulary size and the <|endoftext|> after every document. One pass over the tokens.
  void verify() const;

  // The document holding token `index` (or the <|endoftext|> after it); needs index < tokens.
  uint64_t document_of(uint64_t index) const;
  // The error for a token id outside the vocabulary at `index`: file, position, document, fix.
  std::string bad_token_message(uint64_t index) const;
  // What to run to rebuild this shard, for the end of error messages.
  std::string rebuild_hint() const;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  void check_document_table() const;

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const ShardHeader* header_ = nullptr;
  const uint16_t* tokens_ = nullptr;
  const DocEntry* docs_ = nullptr;
};

// The outcome of fully checking one shard, for `moebench data verify`.
struct ShardCheck {
  std::filesystem::path path;
  bool ok = false;
  std::string detail;  // a summary when ok, else the error (which names the file and the fix)
};

// Opens and verifies every shard (a folder stands for the .bin files in it) and, when `expected`
// is given, requires that vocabulary. Never throws for a bad shard: each gets its own result.
std::vector<ShardCheck> check_shards(const std::vector<std::filesystem::path>& paths,
                                     const VocabInfo* expected = nullptr);

}  // namespace moebench::data
