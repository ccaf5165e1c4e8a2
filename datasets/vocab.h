// Where vocabularies live in the data cache, and the names the suite accepts.
// "gpt2" is the pinned GPT-2 file pair; any other name is a BPE trained by `data prepare`.
#pragma once

#include <filesystem>
#include <string>

#include "datasets/bpe.h"

namespace moebench::data {

// <data>/src/gpt2/package for "gpt2"; <data>/vocab/<name> for a trained vocabulary.
std::filesystem::path vocab_dir(const std::filesystem::path& data_dir, const std::string& name);

// Trained vocabulary names look like "bpe8k" / "bpe4096": returns the size, or 0 if the name is
// not of that form ("gpt2" -> 0).
int trained_vocab_size(const std::string& name);

// Loads a vocabulary by name; a clear error says which command creates a missing one.
BpeTokenizer load_vocab(const std::filesystem::path& data_dir, const std::string& name);

}  // namespace moebench::data
