// Tests of the hand-written SHA-256 and FNV-1a 64 against published vectors and values computed
// with independent tools (coreutils sha256sum, Python hashlib), never with this code.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "datasets/hashing.h"
#include "datasets/tests/test_util.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;
using testing::write_file;

// FIPS 180-4 examples (NIST CSRC "SHA-256" example values).
TEST(HashingSha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                 "klmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the padding boundaries (55/56 bytes: the length field just fits or spills into
// a second block; 64: exactly one block). Reference values from `sha256sum`.
TEST(HashingSha256, PaddingBoundaries) {
  const std::pair<size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const auto& [n, expected] : cases) {
    EXPECT_EQ(sha256_hex(std::string(n, 'a')), expected) << n << " bytes of 'a'";
  }
}

TEST(HashingSha256, FileMatchesKnownValue) {
  TempDir dir;
  const fs::path small = dir.path() / "hello.txt";
  write_file(small, "hello world\n");
  EXPECT_EQ(sha256_file_hex(small),
            "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447");

  // Three 1 MiB chunks and a 5-byte tail, so the streaming path crosses chunk boundaries.
  // Reference: Python hashlib.sha256(bytes(i % 251 for i in range(3 * 2**20 + 5))).
  std::string big(3 * (size_t{1} << 20) + 5, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
  const fs::path large = dir.path() / "large.bin";
  write_file(large, big);
  EXPECT_EQ(sha256_file_hex(large),
            "b01669d77761c4dfdfc8fb927821087bcf5c9ef1f917c4f1f8504e529f19edab");

  const fs::path empty = dir.path() / "empty.bin";
  write_file(empty, "");
  EXPECT_EQ(sha256_file_hex(empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HashingSha256, MissingFileThrowsNamingIt) {
  TempDir dir;
  const fs::path missing = dir.path() / "no-such-file.tgz";
  try {
    sha256_file_hex(missing);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-file.tgz"), std::string::npos) << e.what();
  }
}

// Published FNV-1a 64 test vectors (Fowler/Noll/Vo reference test suite).
TEST(HashingFnv1a64, ReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

}  // namespace
}  // namespace moebench::data
