// Token shard writer (atomic rename) and mmap reader with size, vocabulary and checksum checks.
// Format: datasets/shard.h.
#include "datasets/shard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
  const std::string fix = "re-run `moebench data prepare` to rebuild it";
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    throw std::runtime_error(
        fmt::format("shard {} not found; run `moebench data prepare`", path.string()));
  }
  struct stat st {};
  ::fstat(fd, &st);
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < sizeof(ShardHeader)) {
    ::close(fd);
    throw std::runtime_error(
        fmt::format("shard {} is truncated ({} bytes, smaller than its "
                    "header); {}",
                    path.string(), map_bytes_, fix));
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw std::runtime_error(fmt::format("shard {}: mmap failed", path.string()));
  }
  header_ = static_cast<const ShardHeader*>(map_);
  const auto fail = [&](const std::string& what) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw std::runtime_error(fmt::format("shard {}: {}; {}", path.string(), what, fix));
  };
  if (std::memcmp(header_->magic, kMagic, sizeof kMagic) != 0) fail("not a moebench token shard");
  if (header_->version != kShardVersion || header_->header_bytes != sizeof(ShardHeader)) {
    fail(fmt::format("format version {} (this build reads version {})", header_->version,
                     kShardVersion));
  }
  const uint64_t expected = sizeof(ShardHeader) + token_bytes_padded(header_->num_tokens) +
                            header_->num_docs * sizeof(DocEntry);
  if (map_bytes_ != expected) {
    fail(fmt::format("{} ({} bytes on disk, the header promises {})",
                     map_bytes_ < expected ? "is truncated" : "has trailing bytes", map_bytes_,
                     expected));
  }
  const auto* base = static_cast<const char*>(map_);
  tokens_ = reinterpret_cast<const uint16_t*>(base + sizeof(ShardHeader));
  docs_ = reinterpret_cast<const DocEntry*>(base + sizeof(ShardHeader) +
                                            token_bytes_padded(header_->num_tokens));
  if (verify_checksum) {
    uint64_t h = fnv1a64(tokens_, header_->num_tokens * 2);
    h = fnv1a64(docs_, header_->num_docs * sizeof(DocEntry), h);
    if (h != header_->checksum) {
      fail(
          fmt::format("checksum mismatch (stored {:016x}, computed {:016x}): the file is "
                      "corrupt",
                      header_->checksum, h));
    }
  }
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

}  // namespace moebench::data
