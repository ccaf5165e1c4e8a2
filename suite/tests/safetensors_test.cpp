// Tests of the torch-free safetensors reader/writer (suite/safetensors.h): hand-built files,
// round trips, the writer's exact bytes, and corrupt files. Format: huggingface/safetensors.
#include "suite/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace moebench {
namespace {

// Builds a byte string from a literal that may contain NULs.
template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// A file written out by hand: header length 54 = 0x36 as 8 little-endian bytes, the JSON, then
// 1.0f = 00 00 80 3f and -2.0f = 00 00 00 c0.
const char kHeaderA[] = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
static_assert(sizeof(kHeaderA) - 1 == 54, "hand-counted header length");

std::string hand_file_a() {
  return bytes("\x36\0\0\0\0\0\0\0") + kHeaderA + bytes("\0\0\x80\x3f\0\0\0\xc0");
}

// Replaces the header of a hand-built file (recomputing the 8-byte length by hand).
std::string with_header(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(header.size() >> (8 * i) & 0xff));
  return out + header + data;
}

void expect_error(const std::string& file, const std::string& phrase) {
  try {
    parse_safetensors(file, "bad.safetensors");
    ADD_FAILURE() << "no error; expected one containing '" << phrase << "'";
  } catch (const SafeTensorsError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "'" << phrase << "' not in: " << msg;
  }
}

TEST(SafeTensors, ParsesHandBuiltFile) {
  const auto st = parse_safetensors(hand_file_a(), "a.safetensors");
  ASSERT_EQ(st.tensors.size(), 1u);
  EXPECT_TRUE(st.metadata.empty());
  const auto& a = st.tensors.at("a");
  EXPECT_EQ(a.dtype, "F32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(to_doubles(a, "a"), (std::vector<double>{1.0, -2.0}));
}

TEST(SafeTensors, ParsesHandBuiltF64I64AndMetadata) {
  // Two tensors stored out of name order, a scalar (shape []), and metadata.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"z":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
      R"("i":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]}})";
  const std::string data = bytes("\0\0\0\0\0\0\xf0\x3f") +             // 1.0
                           bytes("\xfe\xff\xff\xff\xff\xff\xff\xff");  // -2
  const auto st = parse_safetensors(with_header(header, data), "x");
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.tensors.at("z").shape, std::vector<int64_t>{});
  EXPECT_EQ(to_doubles(st.tensors.at("z"), "z"), std::vector<double>{1.0});
  EXPECT_EQ(to_int64s(st.tensors.at("i"), "i"), std::vector<int64_t>{-2});
  EXPECT_THROW(to_doubles(st.tensors.at("i"), "i"), SafeTensorsError);
}

TEST(SafeTensors, WriterProducesTheHandWrittenLayout) {
  SafeTensors st;
  st.tensors["b"] = make_f32({1}, {0.5f});
  st.tensors["a"] = make_f32({2}, {1.0f, -2.0f});
  // Keys sorted, tensors in name order, header padded with 4 spaces from 108 to 112 = 0x70.
  const std::string header = R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]},)"
                             R"("b":{"data_offsets":[8,12],"dtype":"F32","shape":[1]}})";
  ASSERT_EQ(header.size(), 108u);
  const std::string expected = bytes("\x70\0\0\0\0\0\0\0") + header + "    " +
                               bytes("\0\0\x80\x3f\0\0\0\xc0") + bytes("\0\0\0\x3f");
  EXPECT_EQ(serialize_safetensors(st), expected);
}

TEST(SafeTensors, WriterHeaderIsPaddedToEightBytes) {
  for (int len = 1; len <= 9; ++len) {
    SafeTensors st;
    st.tensors[std::string(len, 'k')] = make_f32({1}, {3.0f});
    const std::string out = serialize_safetensors(st);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(out[i]);
    EXPECT_EQ(header_len % 8, 0u) << len;
    EXPECT_EQ(out.size(), 8 + header_len + 4) << len;
  }
}

TEST(SafeTensors, RoundTripThroughAFile) {
  SafeTensors st;
  st.tensors["weights.w"] = make_f32({2, 3}, {1, 2, 3, -4, 5.5f, -0.0f});
  st.tensors["empty"] = make_f32({0, 3}, {});
  st.tensors["d"] = make_f64({3}, {1e-300, -2.5, 3.0});
  st.tensors["ids"] = make_i64({2}, {INT64_MIN, 7});
  st.metadata["method"] = "routing_free";
  const auto path = std::filesystem::temp_directory_path() / "moebench_st_roundtrip.safetensors";
  write_safetensors(path.string(), st);
  const auto back = read_safetensors(path.string());
  std::filesystem::remove(path);
  ASSERT_EQ(back.tensors.size(), st.tensors.size());
  for (const auto& [name, t] : st.tensors) {
    const auto& b = back.tensors.at(name);
    EXPECT_EQ(b.dtype, t.dtype) << name;
    EXPECT_EQ(b.shape, t.shape) << name;
    EXPECT_EQ(b.bytes, t.bytes) << name;
  }
  EXPECT_EQ(back.metadata, st.metadata);
  EXPECT_EQ(to_int64s(back.tensors.at("ids"), "ids")[0], INT64_MIN);
}

TEST(SafeTensors, TruncatedDataIsAnError) {
  std::string f = hand_file_a();
  f.pop_back();
  expect_error(f, "out of range");
}

TEST(SafeTensors, HeaderLengthBeyondTheFileIsAnError) {
  std::string f = hand_file_a();
  f[0] = '\x7f';  // 127 > 62 bytes after the length field
  expect_error(f, "header length 127 exceeds");
  f[0] = '\x36';
  f[7] = '\x01';  // 2^56 + 54
  expect_error(f, "exceeds");
  expect_error(bytes("\x01\0\0"), "too short");
}

TEST(SafeTensors, OffsetsOutOfRangeAreAnError) {
  const std::string data = bytes("\0\0\x80\x3f\0\0\0\xc0");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data),
               "out of range");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data),
               "end before begin");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", data),
               "non-negative");
}

TEST(SafeTensors, OverlapsGapsAndTrailingBytesAreErrors) {
  const std::string data = bytes("\0\0\x80\x3f\0\0\0\xc0");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           data),
               "overlaps");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data),
               "belong to no tensor");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data),
               "trailing bytes");
}

TEST(SafeTensors, ShapeAndOffsetsDisagreeIsAnError) {
  const std::string data = bytes("\0\0\x80\x3f\0\0\0\xc0");
  expect_error(with_header(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", data),
               "tensor 'a': shape [2] of F64 needs 16 bytes but data_offsets span 8");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],)"
                           R"("data_offsets":[0,8]}})",
                           data),
               "more than 2^64");
}

TEST(SafeTensors, MalformedHeadersAreErrors) {
  const std::string data = bytes("\0\0\x80\x3f\0\0\0\xc0");
  expect_error(with_header(R"({"a":{"dtype":"F32")", data), "not valid JSON");
  expect_error(with_header(R"([1,2])", data), "not a JSON object");
  expect_error(with_header(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", data),
               "tensor 'a': unknown dtype 'F31'");
  expect_error(with_header(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", data),
               "tensor 'a': no shape");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data),
               "data_offsets must be");
}

TEST(SafeTensors, MissingFileNamesThePath) {
  try {
    read_safetensors("/nonexistent/moebench/in.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const SafeTensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/moebench/in.safetensors"),
              std::string::npos);
  }
}

TEST(SafeTensors, WriterRefusesInconsistentTensors) {
  SafeTensors st;
  st.tensors["a"] = StTensor{"F32", {3}, std::string(8, '\0')};
  EXPECT_THROW(serialize_safetensors(st), SafeTensorsError);
  EXPECT_THROW(make_f32({2, 2}, {1.0f}), SafeTensorsError);
}

}  // namespace
}  // namespace moebench
