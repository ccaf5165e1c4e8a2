// Token shard writer (atomic rename) and mmap reader with size, vocabulary and checksum checks.
// Format: datasets/shard.h.
#include "datasets/shard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "datasets/hashing.h"

namespace moebench::data {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'B', 'S', 'H', 'R', 'D'};

uint64_t token_bytes_padded(uint64_t num_tokens) { return (num_tokens * 2 + 7) / 8 * 8; }

}  // namespace

ShardWriter::ShardWriter(const std::filesystem::path& path, const VocabInfo& vocab)
    : path_(path), tmp_path_(path.string() + ".tmp"), vocab_(vocab), checksum_(kFnvOffset) {
  if (vocab.size > 65536) {
    throw std::invalid_argument(
        fmt::format("shard {}: vocabulary '{}' has {} ids; uint16 shards hold at most 65536",
                    path.string(), vocab.name, vocab.size));
  }
  if (vocab.name.size() >= sizeof(ShardHeader::vocab_name)) {
    throw std::invalid_argument(fmt::format("shard: vocabulary name '{}' too long", vocab.name));
  }
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  out_.open(tmp_path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(fmt::format("shard: cannot write {}", tmp_path_.string()));
  const ShardHeader placeholder{};
  out_.write(reinterpret_cast<const char*>(&placeholder), sizeof placeholder);
}

ShardWriter::~ShardWriter() {
  if (!finished_) {
    out_.close();
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

void ShardWriter::add_document(const std::vector<int32_t>& ids, uint64_t id_hash, uint32_t source) {
  std::vector<uint16_t> buf;
  buf.reserve(ids.size() + 1);
  for (int32_t id : ids) {
    if (id < 0 || static_cast<uint32_t>(id) >= vocab_.size) {
      throw std::out_of_range(fmt::format("shard {}: token id {} outside vocabulary '{}' (size {})",
                                          path_.string(), id, vocab_.name, vocab_.size));
    }
    buf.push_back(static_cast<uint16_t>(id));
  }
  buf.push_back(static_cast<uint16_t>(vocab_.eot_id));
  docs_.push_back(DocEntry{num_tokens_, id_hash, static_cast<uint32_t>(ids.size()), source});
  const auto bytes = buf.size() * sizeof(uint16_t);
  out_.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(bytes));
  checksum_ = fnv1a64(buf.data(), bytes, checksum_);
  num_tokens_ += buf.size();
}

void ShardWriter::finish() {
  const uint64_t pad = token_bytes_padded(num_tokens_) - num_tokens_ * 2;
  const char zeros[8] = {};
  out_.write(zeros, static_cast<std::streamsize>(pad));
  const auto table_bytes = docs_.size() * sizeof(DocEntry);
  out_.write(reinterpret_cast<const char*>(docs_.data()),
             static_cast<std::streamsize>(table_bytes));
  checksum_ = fnv1a64(docs_.data(), table_bytes, checksum_);

  ShardHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kShardVersion;
  h.header_bytes = sizeof(ShardHeader);
  std::strncpy(h.vocab_name, vocab_.name.c_str(), sizeof h.vocab_name - 1);
  h.vocab_identity = vocab_.identity;
  h.vocab_size = vocab_.size;
  h.eot_id = vocab_.eot_id;
  h.num_tokens = num_tokens_;
  h.num_docs = docs_.size();
  h.checksum = checksum_;
  out_.seekp(0);
  out_.write(reinterpret_cast<const char*>(&h), sizeof h);
  out_.flush();
  if (!out_)
    throw std::runtime_error(
        fmt::format("shard: write to {} failed (disk full?)", tmp_path_.string()));
  out_.close();
  std::filesystem::rename(tmp_path_, path_);
  finished_ = true;
}

ShardReader::ShardReader(const std::filesystem::path& path, bool verify_checksum) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) fail("not found");
    fail(fmt::format("cannot be opened ({})", std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(S_ISDIR(st.st_mode) ? "is a directory, not a shard file" : "is not a regular file");
  }
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < sizeof(ShardHeader)) {
    ::close(fd);
    fail(map_bytes_ == 0 ? std::string("is empty (0 bytes)")
                         : fmt::format("is truncated ({} bytes, smaller than its {}-byte header)",
                                       map_bytes_, sizeof(ShardHeader)));
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(fmt::format("mmap failed ({})", std::strerror(mmap_errno)));
  }
  // The destructor does not run for a throwing constructor: unmap here on every failure.
  try {
    header_ = static_cast<const ShardHeader*>(map_);
    if (std::memcmp(header_->magic, kMagic, sizeof kMagic) != 0) {
      fail("not a moebench token shard (bad magic)");
    }
    if (header_->version != kShardVersion) {
      fail(fmt::format("format version {} (this build reads version {})", header_->version,
                       kShardVersion));
    }
    if (header_->header_bytes != sizeof(ShardHeader)) {
      fail(fmt::format("header size {} (this build's header is {} bytes)", header_->header_bytes,
                       sizeof(ShardHeader)));
    }
    if (header_->vocab_size == 0 || header_->vocab_size > 65536) {
      fail(fmt::format("header vocabulary size {} is impossible (uint16 shards hold 1..65536 ids)",
                       header_->vocab_size));
    }
    if (header_->eot_id >= header_->vocab_size) {
      fail(fmt::format("header <|endoftext|> id {} is outside its vocabulary of {} ids",
                       header_->eot_id, header_->vocab_size));
    }
    // Sizes come from the file: bound each count by the bytes present before multiplying, so a
    // huge count cannot wrap around into a size that happens to match.
    const uint64_t body = map_bytes_ - sizeof(ShardHeader);
    const uint64_t n_tok = header_->num_tokens, n_docs = header_->num_docs;
    const uint64_t tok_bytes = n_tok <= body / 2 ? token_bytes_padded(n_tok) : UINT64_MAX;
    const bool fits = tok_bytes <= body && n_docs <= (body - tok_bytes) / sizeof(DocEntry);
    const uint64_t expected =
        fits ? sizeof(ShardHeader) + tok_bytes + n_docs * sizeof(DocEntry) : 0;
    if (!fits || map_bytes_ != expected) {
      const std::string promised =
          fits ? fmt::format("{} bytes", expected)
               : fmt::format("more ({} tokens and {} documents)", n_tok, n_docs);
      fail(fmt::format("{} ({} bytes on disk, the header promises {})",
                       fits && map_bytes_ > expected ? "has trailing bytes" : "is truncated",
                       map_bytes_, promised));
    }
    const auto* base = static_cast<const char*>(map_);
    tokens_ = reinterpret_cast<const uint16_t*>(base + sizeof(ShardHeader));
    docs_ = reinterpret_cast<const DocEntry*>(base + sizeof(ShardHeader) + tok_bytes);
    check_document_table();
    if (verify_checksum) verify();
  } catch (...) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    header_ = nullptr;
    throw;
  }
}

void ShardReader::fail(const std::string& what) const {
  throw std::runtime_error(fmt::format("shard {}: {}; {}", path_.string(), what, rebuild_hint()));
}

std::string ShardReader::rebuild_hint() const {
  // The header names the vocabulary once its magic is trusted; before that, the layout
  // <data>/tokens/<vocab>/<split>.bin does.
  std::string vocab;
  if (header_ && std::memcmp(header_->magic, kMagic, sizeof kMagic) == 0) vocab = vocab_name();
  if (vocab.empty() && path_.parent_path().parent_path().filename() == "tokens") {
    vocab = path_.parent_path().filename().string();
  }
  // --force: prepare skips shards its manifest calls current, damaged or not.
  return fmt::format("re-run `moebench data prepare --vocab {} --force` to rebuild it",
                     vocab.empty() ? "<vocab>" : vocab);
}

void ShardReader::check_document_table() const {
  // The writer lays documents end to end, each followed by one <|endoftext|>: anything else is
  // damage, and a document past the tokens would make the sampler read outside the mapping.
  const uint64_t n_tok = header_->num_tokens;
  uint64_t next = 0;  // where the next document must begin
  for (uint64_t i = 0; i < header_->num_docs; ++i) {
    const DocEntry& d = docs_[i];
    // begin <= n_tok first, so begin + length + 1 cannot overflow 64 bits.
    if (d.begin >= n_tok || d.length >= n_tok - d.begin) {
      fail(fmt::format(
          "document {} of {} (begin {}, length {}) runs past the end of the {} tokens: the "
          "document table is damaged",
          i, header_->num_docs, d.begin, d.length, n_tok));
    }
    if (d.begin != next) {
      fail(fmt::format(
          "document {} begins at token {} instead of {}, right after the previous document's "
          "<|endoftext|>: the document table is not in token order ({})",
          i, d.begin, next, d.begin < next ? "overlap" : "gap"));
    }
    next = d.begin + d.length + 1;
  }
  if (next != n_tok) {
    fail(fmt::format("the document table covers {} of the {} tokens{}", next, n_tok,
                     header_->num_docs == 0 ? " (it is empty)" : ""));
  }
}

void ShardReader::verify() const {
  // One pass: FNV-1a over the token bytes and the highest id of each block, so the id check
  // rides along with the checksum that opening already paid for.
  constexpr uint64_t kBlock = 1 << 15;
  const uint64_t n_tok = header_->num_tokens, vocab = header_->vocab_size;
  uint64_t h = kFnvOffset, bad = n_tok;
  for (uint64_t at = 0; at < n_tok; at += kBlock) {
    const uint64_t n = std::min(kBlock, n_tok - at);
    h = fnv1a64(tokens_ + at, n * sizeof(uint16_t), h);
    uint16_t top = 0;  // a plain max loop vectorizes; max_element's iterator does not
    for (uint64_t i = 0; i < n; ++i) top = std::max(top, tokens_[at + i]);
    if (bad == n_tok && top >= vocab) {
      bad = static_cast<uint64_t>(
          std::find_if(tokens_ + at, tokens_ + at + n, [&](uint16_t t) { return t >= vocab; }) -
          tokens_);
    }
  }
  h = fnv1a64(docs_, header_->num_docs * sizeof(DocEntry), h);
  if (h != header_->checksum) {
    fail(fmt::format("checksum mismatch (stored {:016x}, computed {:016x}): the file is corrupt{}",
                     header_->checksum, h,
                     bad < n_tok ? fmt::format(" (first token id outside the vocabulary: {} at "
                                               "token {}, document {})",
                                               tokens_[bad], bad, document_of(bad))
                                 : ""));
  }
  if (bad < n_tok) throw std::runtime_error(bad_token_message(bad));
  for (uint64_t i = 0; i < header_->num_docs; ++i) {
    const uint64_t end = docs_[i].begin + docs_[i].length;
    if (tokens_[end] != header_->eot_id) {
      fail(fmt::format("document {} is followed by token {} at {} instead of <|endoftext|> ({})", i,
                       tokens_[end], end, header_->eot_id));
    }
  }
}

uint64_t ShardReader::document_of(uint64_t index) const {
  // The table is sorted by begin (checked on open): the last document beginning at or before it.
  const DocEntry* end = docs_ + header_->num_docs;
  const DocEntry* it = std::upper_bound(docs_, end, index,
                                        [](uint64_t i, const DocEntry& d) { return i < d.begin; });
  return it == docs_ ? 0 : static_cast<uint64_t>(it - docs_ - 1);
}

std::string ShardReader::bad_token_message(uint64_t index) const {
  const uint64_t doc = document_of(index);
  return fmt::format(
      "shard {}: token id {} at token {} (document {}, id hash {:016x}) is not below the "
      "vocabulary size {} of '{}'; the shard is damaged or was written by a broken tool: {}",
      path_.string(), tokens_[index], index, doc, docs_[doc].id_hash, header_->vocab_size,
      vocab_name(), rebuild_hint());
}

ShardReader::~ShardReader() {
  if (map_) ::munmap(map_, map_bytes_);
}

std::string ShardReader::vocab_name() const {
  return std::string(header_->vocab_name,
                     strnlen(header_->vocab_name, sizeof(header_->vocab_name)));
}

void ShardReader::require_vocab(const VocabInfo& expected) const {
  if (vocab_name() != expected.name || header_->vocab_size != expected.size ||
      header_->vocab_identity != expected.identity) {
    throw std::runtime_error(fmt::format(
        "vocabulary mismatch: shard {} was tokenized with '{}' ({} ids, identity {:016x}) but "
        "the model expects '{}' ({} ids, identity {:016x}); run `moebench data prepare --vocab "
        "{}` or set model.vocab to '{}'",
        path_.string(), vocab_name(), header_->vocab_size, header_->vocab_identity, expected.name,
        expected.size, expected.identity, expected.name, vocab_name()));
  }
}

std::vector<ShardCheck> check_shards(const std::vector<std::filesystem::path>& paths,
                                     const VocabInfo* expected) {
  std::vector<std::filesystem::path> files;
  for (const auto& p : paths) {
    std::vector<std::filesystem::path> in_folder;
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
        if (e.path().extension() == ".bin") in_folder.push_back(e.path());
      }
      std::sort(in_folder.begin(), in_folder.end());
    }
    // A folder without shards stays itself, so the reader reports it as not a shard file.
    if (in_folder.empty()) in_folder.push_back(p);
    files.insert(files.end(), in_folder.begin(), in_folder.end());
  }
  std::vector<ShardCheck> out;
  for (const auto& f : files) {
    try {
      const ShardReader shard(f);  // verify_checksum: the full check
      if (expected) shard.require_vocab(*expected);
      out.push_back(
          {f, true,
           fmt::format("{} documents, {} tokens, vocabulary '{}' of {} ids", shard.num_docs(),
                       shard.num_tokens(), shard.vocab_name(), shard.header().vocab_size)});
    } catch (const std::exception& e) {
      out.push_back({f, false, e.what()});
    }
  }
  return out;
}

}  // namespace moebench::data
