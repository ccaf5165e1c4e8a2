// Offline zero-shot evaluation tasks built deterministically from held-out documents only
// (shared/spec/DATA.md "Zero-shot evaluation available offline"). Torch-free: the evaluator in
// suite/ scores the items with a model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/corpus.h"

namespace moebench::data {

// How an item is scored.
//  kMultipleChoice: log-likelihood of each choice given the context; acc = argmax of the sum,
//                   acc_norm = argmax of the sum divided by the choice's length in UTF-8 bytes
//                   (as lm-eval does).
//  kGreedyTarget:   one choice (the target); correct when every target token is the model's
//                   greedy prediction (LAMBADA-style); also the target's perplexity.
enum class TaskKind { kMultipleChoice, kGreedyTarget };

struct EvalItem {
  std::string context;               // prompt text, scored as given
  std::vector<std::string> choices;  // continuations, each with its leading space if any
  int answer = 0;                    // index of the correct choice
  std::string doc_id;                // the held-out document the item came from
};

struct EvalTask {
  std::string name;  // "imdb", "cloze", "next_sentence", "wordnet"
  TaskKind kind = TaskKind::kMultipleChoice;
  std::string primary_metric;  // "acc" or "acc_norm": what tables show first
  double chance = 0;           // accuracy of a uniform random guess (0 for kGreedyTarget)
  std::vector<EvalItem> items;
};

// The task names build_eval_task knows, in table order.
const std::vector<std::string>& eval_task_names();

// Builds one task. `docs` is the whole corpus (load_corpus) and `splits` its assign_splits;
// only documents whose split is kHeldout are used. `data_dir` holds the fetched sources (WordNet
// is read from <data>/src/wordnet). At most `max_items` items (0 = all), chosen
// deterministically. Same input, same items, on every machine. Throws std::invalid_argument for
// an unknown name and std::runtime_error (naming the file and the command to run) for missing
// sources.
EvalTask build_eval_task(const std::string& name, const std::vector<Document>& docs,
                         const std::vector<Split>& splits, const std::filesystem::path& data_dir,
                         size_t max_items);

// Every context is cut to at most this many bytes, keeping its end (what the answer follows) and
// starting at a word boundary, so that prompts fit a 512-token model (~3.5 bytes per token).
constexpr size_t kEvalMaxContextBytes = 1500;

}  // namespace moebench::data
