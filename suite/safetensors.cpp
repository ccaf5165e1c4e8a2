// Safetensors reader/writer without torch (suite/safetensors.h): the file format of
// `moebench layer` (METHODS.md §1 checked against other implementations).
#include "suite/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace moebench {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw SafeTensorsError(source + ": " + what);
}

std::string tensor_what(const std::string& name) { return "tensor '" + name + "'"; }

// Non-negative JSON integer (nlohmann stores those as number_unsigned; negative numbers and
// floats are something else, and both are invalid here).
uint64_t as_index(const json& v, const std::string& source, const std::string& what) {
  if (!v.is_number_unsigned())
    fail(source, what + " must be a non-negative integer, not " + v.dump());
  return v.get<uint64_t>();
}

struct Entry {
  std::string name;
  uint64_t begin, end;
};

template <typename T>
StTensor make_tensor(const char* dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  StTensor t{dtype, std::move(shape), {}};
  if (t.numel() != static_cast<int64_t>(values.size())) {
    throw SafeTensorsError(std::string("make_") + dtype + ": shape " + shape_string(t.shape) +
                           " holds " + std::to_string(t.numel()) + " values, got " +
                           std::to_string(values.size()));
  }
  // The format is little-endian; so are all hosts this suite runs on (x86-64, aarch64).
  t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return t;
}

template <typename T>
std::vector<T> values_of(const StTensor& t) {
  std::vector<T> out(t.bytes.size() / sizeof(T));
  std::memcpy(out.data(), t.bytes.data(), out.size() * sizeof(T));
  return out;
}

}  // namespace

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}};
  const auto it = sizes.find(dtype);
  if (it == sizes.end()) {
    throw SafeTensorsError("unknown dtype '" + dtype +
                           "' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)");
  }
  return it->second;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafeTensors parse_safetensors(const std::string& file, const std::string& source) {
  if (file.size() < 8) {
    fail(source, "is " + std::to_string(file.size()) +
                     " bytes, too short for a safetensors file (8-byte header length first)");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(file[i]);
  if (header_len > file.size() - 8) {
    fail(source, "header length " + std::to_string(header_len) + " exceeds the " +
                     std::to_string(file.size() - 8) +
                     " bytes after the length field (truncated or not a safetensors file)");
  }
  const std::string header_text = file.substr(8, header_len);
  const uint64_t data_size = file.size() - 8 - header_len;
  const char* data = file.data() + 8 + header_len;

  json header;
  try {
    header = json::parse(header_text);
  } catch (const json::parse_error& e) {
    fail(source, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(source, "header is not a JSON object");

  SafeTensors st;
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(source, "__metadata__ must be an object of strings");
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string()) fail(source, "__metadata__ value of '" + k + "' is not a string");
        st.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    const std::string what = tensor_what(name);
    if (!v.is_object()) fail(source, what + ": entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(source, what + ": no string dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(source, what + ": no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2) {
      fail(source, what + ": data_offsets must be [begin, end]");
    }
    StTensor t;
    t.dtype = v["dtype"].get<std::string>();
    int64_t elem = 0;
    try {
      elem = dtype_size(t.dtype);
    } catch (const SafeTensorsError& e) {
      fail(source, what + ": " + e.what());
    }
    // numel * elem must not overflow before it is compared with the data size.
    uint64_t bytes = static_cast<uint64_t>(elem);
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      const uint64_t dim = as_index(d, source, what + ": shape entry");
      t.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(dim, INT64_MAX)));
      if (dim != 0 && bytes > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      bytes *= dim;
    }
    const uint64_t begin = as_index(v["data_offsets"][0], source, what + ": data_offsets[0]");
    const uint64_t end = as_index(v["data_offsets"][1], source, what + ": data_offsets[1]");
    if (end < begin) {
      fail(source, what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       "] end before begin");
    }
    if (end > data_size) {
      fail(source, what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       "] out of range: the data section has " + std::to_string(data_size) +
                       " bytes (file truncated?)");
    }
    if (overflow || bytes != end - begin) {
      fail(source, what + ": shape " + shape_string(t.shape) + " of " + t.dtype + " needs " +
                       (overflow ? std::string("more than 2^64") : std::to_string(bytes)) +
                       " bytes but data_offsets span " + std::to_string(end - begin));
    }
    t.bytes.assign(data + begin, end - begin);
    entries.push_back({name, begin, end});
    st.tensors.emplace(name, std::move(t));
  }

  // The tensors must tile the data section exactly, as the reference implementation requires:
  // an overlap or a gap means a corrupt or hand-edited file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < cursor) {
      fail(source, tensor_what(e.name) + " (bytes " + std::to_string(e.begin) + ".." +
                       std::to_string(e.end) + ") overlaps " + tensor_what(prev->name) +
                       " (bytes " + std::to_string(prev->begin) + ".." + std::to_string(prev->end) +
                       ")");
    }
    if (e.begin > cursor) {
      fail(source, "bytes " + std::to_string(cursor) + ".." + std::to_string(e.begin) +
                       " of the data section belong to no tensor (before " + tensor_what(e.name) +
                       ")");
    }
    cursor = e.end;
    prev = &e;
  }
  if (cursor != data_size) {
    fail(source, std::to_string(data_size - cursor) +
                     " trailing bytes after the last tensor's data (data section " +
                     std::to_string(data_size) + " bytes, tensors end at " +
                     std::to_string(cursor) + ")");
  }
  return st;
}

SafeTensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SafeTensorsError(path + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw SafeTensorsError(path + ": read error");
  return parse_safetensors(ss.str(), path);
}

std::string serialize_safetensors(const SafeTensors& st) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : st.tensors) {
    if (name == "__metadata__") throw SafeTensorsError("'__metadata__' cannot name a tensor");
    const int64_t need = t.numel() * dtype_size(t.dtype);
    if (need != static_cast<int64_t>(t.bytes.size())) {
      throw SafeTensorsError(tensor_what(name) + ": shape " + shape_string(t.shape) + " of " +
                             t.dtype + " needs " + std::to_string(need) + " bytes, has " +
                             std::to_string(t.bytes.size()));
    }
    header[name] = {{"dtype", t.dtype},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  if (!st.metadata.empty()) header["__metadata__"] = st.metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned in the file

  std::string out;
  out.reserve(8 + text.size() + offset);
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(len >> (8 * i) & 0xff));
  out += text;
  for (const auto& [name, t] : st.tensors) out += t.bytes;  // std::map: same sorted order
  return out;
}

void write_safetensors(const std::string& path, const SafeTensors& st) {
  const std::string bytes = serialize_safetensors(st);
  // Write a sibling then rename, so a failed run never leaves a half-written file behind.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw SafeTensorsError(path + ": cannot open for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw SafeTensorsError(path + ": write error");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw SafeTensorsError(path + ": cannot rename the written file: " + ec.message());
}

StTensor make_f32(std::vector<int64_t> shape, const std::vector<float>& values) {
  return make_tensor("F32", std::move(shape), values);
}
StTensor make_f64(std::vector<int64_t> shape, const std::vector<double>& values) {
  return make_tensor("F64", std::move(shape), values);
}
StTensor make_i64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return make_tensor("I64", std::move(shape), values);
}

std::vector<double> to_doubles(const StTensor& t, const std::string& name) {
  if (t.dtype == "F64") return values_of<double>(t);
  if (t.dtype == "F32") {
    const auto f = values_of<float>(t);
    return std::vector<double>(f.begin(), f.end());
  }
  throw SafeTensorsError(tensor_what(name) + " has dtype " + t.dtype + ", expected F32 or F64");
}

std::vector<int64_t> to_int64s(const StTensor& t, const std::string& name) {
  if (t.dtype == "I64") return values_of<int64_t>(t);
  throw SafeTensorsError(tensor_what(name) + " has dtype " + t.dtype + ", expected I64");
}

}  // namespace moebench
