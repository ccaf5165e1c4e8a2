// GPT-2 byte-level BPE tokenizer (encoder.json + vocab.bpe), reproducing tiktoken's "gpt2" ids.
// Pre-tokenizer: the GPT-2 regex through PCRE2 (needs \p{L}, \p{N} and the (?!\S) look-ahead).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moebench::data {

constexpr const char* kEndOfText = "<|endoftext|>";

// GPT-2's reversible byte <-> printable-unicode map: byte b is written as the UTF-8 of
// byte_to_unicode()[b] in encoder.json and vocab.bpe.
const std::vector<std::string>& byte_to_unicode();
std::string bytes_to_symbols(std::string_view bytes);    // raw bytes -> encoder.json spelling
std::string symbols_to_bytes(std::string_view symbols);  // inverse; throws on a foreign symbol

// Splits text into GPT-2 pre-tokens (views into `text`). The text must be valid UTF-8.
class PreTokenizer {
 public:
  PreTokenizer();
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when `text` is valid UTF-8; else sets *bad_offset to the first offending byte.
bool is_valid_utf8(std::string_view text, size_t* bad_offset = nullptr);

class BpeTokenizer {
 public:
  // Loads <dir>/encoder.json and <dir>/vocab.bpe; `name` identifies the vocabulary ("gpt2").
  static BpeTokenizer load(const std::filesystem::path& dir, const std::string& name);

  // Ordinary text only: "<|endoftext|>" inside text is encoded as plain characters (tiktoken's
  // encode_ordinary). Throws std::invalid_argument on invalid UTF-8, naming the byte offset.
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // throws on an id out of range

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_bytes_.size()); }
  int32_t eot_id() const { return eot_id_; }
  const std::string& name() const { return name_; }
  // Hash of the vocabulary files (FNV-1a 64 of encoder.json + vocab.bpe contents).
  uint64_t identity() const { return identity_; }

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

 private:
  BpeTokenizer();
  void bpe_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::string name_;
  uint64_t identity_ = 0;
  int32_t eot_id_ = -1;
  std::vector<std::string> id_to_bytes_;                  // id -> raw bytes
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // raw bytes -> id
  // (left id << 32 | right id) -> (rank, id) of the token spelled by the two concatenated.
  // Every part during a merge is itself a token, so pairs of ids are enough (tiktoken's rule:
  // merge the adjacent pair whose concatenation has the lowest rank).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> pair_merge_;
  std::unique_ptr<PreTokenizer> pre_;
  struct Cache;
  std::unique_ptr<Cache> cache_;  // piece -> ids, per tokenizer, thread-safe
};

}  // namespace moebench::data
