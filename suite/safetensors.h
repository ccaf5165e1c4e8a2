// A torch-free reader/writer of the safetensors format (huggingface/safetensors), the exchange
// format of `moebench layer` (shared/spec/METHODS.md §1 checked against other implementations).
//
// Layout: u64 little-endian header length L, then L bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the raw little-endian tensor data; offsets are relative to the first byte after the header.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace moebench {

// Thrown for every malformed file; the message names the file and, where known, the tensor.
class SafeTensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One tensor as stored: dtype name as in the format ("F32", "F64", "I64", ...), shape, and the
// raw little-endian bytes (exactly numel * dtype_size of them).
struct StTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;

  int64_t numel() const;
};

struct SafeTensors {
  std::map<std::string, StTensor> tensors;  // sorted by name, the order the writer uses
  std::map<std::string, std::string> metadata;
};

// Bytes per element of a dtype name of the format; throws SafeTensorsError for unknown names.
int64_t dtype_size(const std::string& dtype);

// Parses a whole file image. `source` names it in error messages (usually the path). Checks the
// header length against the size, each dtype, shape and offsets, that shape x dtype size equals
// the offsets' span, and (as the reference implementation does) that the tensors tile the data
// exactly: no overlap, no gap, no trailing bytes.
SafeTensors parse_safetensors(const std::string& file_bytes, const std::string& source);
SafeTensors read_safetensors(const std::string& path);

// The file image: header with tensors in sorted name order, padded with spaces to a multiple of
// 8 bytes (so the data starts 8-aligned), then the data in the same order.
std::string serialize_safetensors(const SafeTensors& st);
void write_safetensors(const std::string& path, const SafeTensors& st);

// Conversions for the common dtypes (host byte order must be little-endian, as on x86/ARM).
StTensor make_f32(std::vector<int64_t> shape, const std::vector<float>& values);
StTensor make_f64(std::vector<int64_t> shape, const std::vector<double>& values);
StTensor make_i64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
// Values of an F32 or F64 tensor, widened to double; any other dtype throws SafeTensorsError.
std::vector<double> to_doubles(const StTensor& t, const std::string& name);
// Values of an I64 tensor; any other dtype throws SafeTensorsError.
std::vector<int64_t> to_int64s(const StTensor& t, const std::string& name);

// "[2, 3]": shapes in error messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace moebench
