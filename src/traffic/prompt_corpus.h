#pragma once
// PromptCorpus: the prompts and conversations of a dataset folder, grouped by the roles its
// MANIFEST.json assigns (organic, distill, cot, benchmark, jailbreak, contrast). The folder
// layout is the contract; nothing here knows a dataset by name.

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"

namespace moat::traffic {

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
  std::vector<std::string> prompts;          // standalone user-facing prompts (`text` fields)
  std::vector<Conversation> conversations;   // real multi-turn conversations, when present
};

struct CorpusOptions {
  size_t max_rows_per_file = 0;     // 0: read every row
  size_t max_prompt_chars = 12000;  // longer prompts are cut (keeps request bodies realistic)
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

}  // namespace moat::traffic
