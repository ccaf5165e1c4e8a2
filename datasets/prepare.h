// `moebench data prepare`: corpus -> (trained vocabulary) -> train/val/heldout token shards,
// plus a manifest with per-source, per-split statistics (`moebench data stats` prints it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace moebench::data {

struct PrepareOptions {
  std::filesystem::path data_dir;
  std::string vocab = "gpt2";  // "gpt2" or a trained "bpe<size>" (trained on the train split)
  int threads = 2;
  bool force = false;  // rebuild even when the manifest says the shards are current
};

// <data>/tokens/<vocab>/
std::filesystem::path shard_dir(const std::filesystem::path& data_dir, const std::string& vocab);

// Builds the shards (or returns at once when they are current) and returns the manifest:
// {"vocab":..., "splits": {"train": {"imdb": {"docs","tokens","bytes"}, ...}, ...}, timings}.
nlohmann::json prepare_shards(const PrepareOptions& opts);

// The manifest of prepared shards; throws naming the command to run when absent.
nlohmann::json read_manifest(const std::filesystem::path& data_dir, const std::string& vocab);

}  // namespace moebench::data
