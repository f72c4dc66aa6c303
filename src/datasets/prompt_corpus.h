#pragma once
// PromptCorpus: the prompts and conversations of a dataset folder, grouped by the roles its
// MANIFEST.json assigns (organic, distill, cot, benchmark, jailbreak, contrast). The folder
// layout is the contract; nothing here knows a dataset by name.
//
// Every row also belongs to one of two fixed *splits* decided by a hash of its text alone:
// `train` (about 80 %) and `eval` (about 20 %). The detection models are trained on `train`
// rows only and the traffic benchmark draws its prompts from `eval` rows by default, so the
// benchmark measures detection on prompts the shipped models have never seen.

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"

namespace moat::datasets {

// One message of a multi-turn conversation taken from the data.
struct Turn {
  bool from_user = true;
  std::string text;
};
// Messages in order; contains at least two user turns.
using Conversation = std::vector<Turn>;

// The rows of one MANIFEST entry.
struct PromptSet {
  std::string name;
  std::string role;
  std::string licence;                       // the MANIFEST `licence` string, "" when absent
  std::vector<std::string> prompts;          // standalone user-facing prompts (`text` fields)
  std::vector<Conversation> conversations;   // real multi-turn conversations, when present
};

// Which rows to keep (see the file comment).
enum class Split { kAll, kTrain, kEval };

// "all", "train", "eval" -> Split; InvalidArgument otherwise.
StatusOr<Split> ParseSplit(std::string_view name);

// True when a row with this text belongs to the `eval` split. Stable across versions: changing
// it would silently mix training rows into every benchmark.
bool IsEvalText(std::string_view text);

struct CorpusOptions {
  size_t max_rows_per_file = 0;     // 0: read every row
  size_t max_prompt_chars = 12000;  // longer prompts are cut (keeps request bodies realistic)
  Split split = Split::kAll;        // prompts by their own text, conversations by their first turn
  // Sets (MANIFEST names) not to load; Load fails on a name the manifest does not have.
  std::vector<std::string> leave_out;
};

// Move-only: the role index points into the owned sets.
class PromptCorpus {
 public:
  PromptCorpus() = default;
  PromptCorpus(PromptCorpus&&) = default;
  PromptCorpus& operator=(PromptCorpus&&) = default;
  PromptCorpus(const PromptCorpus&) = delete;
  PromptCorpus& operator=(const PromptCorpus&) = delete;

  // Reads <dir>/MANIFEST.json and every file it lists (plain or gzip JSONL). Rows without a
  // string `text` field are skipped. Conversations are recognised by their fields: rows with
  // a `conversations` array of {from, value}, or message trees (message_id, parent_id, role).
  // Returns NotFound when the manifest is missing, InvalidArgument when it is malformed.
  static StatusOr<PromptCorpus> Load(const std::filesystem::path& dir,
                                     const CorpusOptions& options = {});

  // Sets of a role, in manifest order; empty when the role is absent.
  const std::vector<const PromptSet*>& SetsOf(std::string_view role) const;
  // Number of prompts across the sets of a role.
  size_t PromptCount(std::string_view role) const;
  const std::vector<PromptSet>& sets() const { return sets_; }
  size_t conversation_count() const;

 private:
  void Index();

  std::vector<PromptSet> sets_;
  std::map<std::string, std::vector<const PromptSet*>, std::less<>> by_role_;
};

// Reads a whole file, transparently gunzipping it. Exposed for tests.
StatusOr<std::string> ReadMaybeGzip(const std::filesystem::path& path);

}  // namespace moat::datasets
