// Vocabulary lookup by name in the data cache (GPT-2 files or a trained byte-level BPE).
// See shared/spec/DATA.md "Tokenizer".
#include "datasets/vocab.h"

#include <fmt/format.h>

#include <cctype>
#include <stdexcept>

namespace moebench::data {

std::filesystem::path vocab_dir(const std::filesystem::path& data_dir, const std::string& name) {
  if (name == "gpt2") return data_dir / "src" / "gpt2" / "package";
  return data_dir / "vocab" / name;
}

int trained_vocab_size(const std::string& name) {
  if (name.rfind("bpe", 0) != 0 || name.size() < 4) return 0;
  std::string digits = name.substr(3);
  int mult = 1;
  if (digits.back() == 'k') {
    mult = 1024;
    digits.pop_back();
  }
  if (digits.empty() || digits.size() > 6) return 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return 0;
  }
  const long v = std::stol(digits) * mult;
  return (v >= 260 && v <= 65535) ? static_cast<int>(v) : 0;
}

BpeTokenizer load_vocab(const std::filesystem::path& data_dir, const std::string& name) {
  if (name != "gpt2" && trained_vocab_size(name) == 0) {
    throw std::invalid_argument(fmt::format(
        "unknown vocabulary '{}': use 'gpt2' or a trained name 'bpe<size>' such as 'bpe8k' "
        "(8192) or 'bpe4096' (260..65535)",
        name));
  }
  const auto dir = vocab_dir(data_dir, name);
  if (!std::filesystem::exists(dir / "encoder.json")) {
    throw std::runtime_error(fmt::format(
        "vocabulary '{}' not found in {}; {}", name, dir.string(),
        name == "gpt2" ? "run `moebench data fetch`"
                       : fmt::format("run `moebench data prepare --vocab {}` to train it", name)));
  }
  return BpeTokenizer::load(dir, name);
}

}  // namespace moebench::data
