// SHA-256 (FIPS 180-4) written out in full, for pinning downloaded tarballs by hash.
// Streams files in 1 MiB chunks so hashing a large tarball needs no more memory than that.
#include "datasets/hashing.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace moebench::data {
namespace {

constexpr std::array<uint32_t, 64> kRoundConstants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// Incremental hasher: update() any number of times, then finish() once.
class Sha256 {
 public:
  void update(const unsigned char* data, size_t n) {
    total_bytes_ += n;
    // Top up a partially filled block first, then hash whole blocks straight from the input.
    if (buffered_ > 0) {
      const size_t take = std::min(n, buffer_.size() - buffered_);
      std::memcpy(buffer_.data() + buffered_, data, take);
      buffered_ += take;
      data += take;
      n -= take;
      if (buffered_ < buffer_.size()) return;
      compress(buffer_.data());
      buffered_ = 0;
    }
    for (; n >= 64; data += 64, n -= 64) compress(data);
    std::memcpy(buffer_.data(), data, n);
    buffered_ = n;
  }

  std::string finish() {
    // Padding: a 1 bit, zeros up to 56 mod 64, then the message length in bits, big-endian.
    const uint64_t bit_length = total_bytes_ * 8;
    std::array<unsigned char, 72> pad{};
    pad[0] = 0x80;
    const size_t pad_len = (buffered_ < 56 ? 56 - buffered_ : 120 - buffered_);
    for (int i = 0; i < 8; ++i) {
      pad[pad_len + i] = static_cast<unsigned char>(bit_length >> (56 - 8 * i));
    }
    update(pad.data(), pad_len + 8);

    static const char* kHex = "0123456789abcdef";
    std::string out(64, '0');
    for (int i = 0; i < 8; ++i) {
      for (int j = 0; j < 8; ++j) {
        out[i * 8 + j] = kHex[(state_[i] >> (28 - 4 * j)) & 0xf];
      }
    }
    return out;
  }

 private:
  void compress(const unsigned char* block) {
    std::array<uint32_t, 64> w;
    for (size_t t = 0; t < 16; ++t) {
      w[t] = (uint32_t{block[4 * t]} << 24) | (uint32_t{block[4 * t + 1]} << 16) |
             (uint32_t{block[4 * t + 2]} << 8) | uint32_t{block[4 * t + 3]};
    }
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + big_s1 + ch + kRoundConstants[t] + w[t];
      const uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = big_s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
    state_[5] += f;
    state_[6] += g;
    state_[7] += h;
  }

  std::array<uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<unsigned char, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 hasher;
  hasher.update(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return hasher.finish();
}

std::string sha256_file_hex(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    throw std::runtime_error("cannot open " + path.string() + " to hash it: " +
                             std::strerror(errno) + "; check that the file exists and is readable");
  }
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<unsigned char> chunk(kChunk);
  Sha256 hasher;
  while (true) {
    const size_t got = std::fread(chunk.data(), 1, chunk.size(), file.get());
    hasher.update(chunk.data(), got);
    if (got < chunk.size()) {
      if (std::ferror(file.get())) {
        throw std::runtime_error("read error while hashing " + path.string() +
                                 "; the file may be truncated or the disk failing");
      }
      break;
    }
  }
  return hasher.finish();
}

}  // namespace moebench::data
