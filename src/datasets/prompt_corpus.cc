#include "datasets/prompt_corpus.h"

#include <algorithm>

#include "common/file_contents.h"

#include <xxhash.h>
#include <zlib.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace moat::datasets {
namespace json = boost::json;

StatusOr<std::string> ReadMaybeGzip(const std::filesystem::path& path) {
  // gzopen reads plain files transparently, so one path serves both kinds.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return NotFoundError("cannot open " + path.string());
  gzbuffer(file, 1 << 17);
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(file, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(file, &err);
      gzclose(file);
      return DataLossError("gzip read of " + path.string() + ": " + msg);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(file);
  return out;
}

StatusOr<Split> ParseSplit(std::string_view name) {
  if (name == "all") return Split::kAll;
  if (name == "train") return Split::kTrain;
  if (name == "eval") return Split::kEval;
  return InvalidArgumentError("unknown split \"" + std::string(name) + "\" (all, train, eval)");
}

bool IsEvalText(std::string_view text) {
  // A fixed seed: the split must never change between versions.
  return XXH64(text.data(), text.size(), 0x6d6f61742d73706cULL) % 5 == 0;
}

namespace {

bool Keep(Split split, std::string_view text) {
  return split == Split::kAll || IsEvalText(text) == (split == Split::kEval);
}

// Drops the rows of the other split.
void ApplySplit(Split split, PromptSet& set) {
  if (split == Split::kAll) return;
  std::erase_if(set.prompts, [&](const std::string& p) { return !Keep(split, p); });
  std::erase_if(set.conversations,
                [&](const Conversation& c) { return c.empty() || !Keep(split, c.front().text); });
}

std::string_view StringField(const json::object& row, std::string_view key) {
  auto it = row.find(key);
  if (it == row.end() || !it->value().is_string()) return {};
  const json::string& s = it->value().get_string();
  return {s.data(), s.size()};
}

std::string Clip(std::string_view s, size_t max_chars) {
  if (max_chars == 0 || s.size() <= max_chars) return std::string(s);
  size_t n = max_chars;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
  return std::string(s.substr(0, n));
}

// A node of a message tree (oasst style).
struct TreeMessage {
  std::string parent_id;
  bool from_user = true;
  std::string text;
  std::vector<std::string> children;
};

// Follows the first-listed child from each root, keeping chains with >= 2 user turns.
void ConversationsFromTrees(const std::vector<std::string>& order,
                            std::unordered_map<std::string, TreeMessage>& nodes,
                            std::vector<Conversation>& out) {
  for (const auto& id : order) {
    const TreeMessage& root = nodes[id];
    if (!root.parent_id.empty() || !root.from_user) continue;
    Conversation conv;
    const TreeMessage* node = &root;
    while (node != nullptr && conv.size() < 16) {
      if (!conv.empty() && conv.back().from_user == node->from_user) break;
      conv.push_back({node->from_user, node->text});
      const TreeMessage* next = nullptr;
      for (const auto& child : node->children) {
        auto it = nodes.find(child);
        if (it != nodes.end() && it->second.from_user != node->from_user) {
          next = &it->second;
          break;
        }
      }
      node = next;
    }
    int user_turns = 0;
    for (const auto& t : conv) user_turns += t.from_user;
    if (user_turns >= 2) out.push_back(std::move(conv));
  }
}

Status LoadFile(const std::filesystem::path& path, const CorpusOptions& options, PromptSet& set) {
  MOAT_ASSIGN_OR_RETURN(std::string content, ReadMaybeGzip(path));
  std::unordered_map<std::string, TreeMessage> tree;
  std::vector<std::string> tree_order;
  size_t rows = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string_view line(content.data() + pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    if (options.max_rows_per_file && rows >= options.max_rows_per_file) break;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;  // a malformed row is skipped, not fatal
    ++rows;
    const json::object& row = v.get_object();
    std::string_view text = StringField(row, "text");
    if (text.empty()) continue;
    std::string_view message_id = StringField(row, "message_id");
    std::string_view role = StringField(row, "role");
    if (!message_id.empty() && !role.empty()) {
      TreeMessage& m = tree[std::string(message_id)];
      m.parent_id = std::string(StringField(row, "parent_id"));
      m.from_user = role == "prompter" || role == "user";
      m.text = Clip(text, options.max_prompt_chars);
      tree_order.emplace_back(message_id);
      if (m.from_user && m.parent_id.empty()) set.prompts.push_back(m.text);
      continue;
    }
    set.prompts.push_back(Clip(text, options.max_prompt_chars));
    auto conv_it = row.find("conversations");
    if (conv_it != row.end() && conv_it->value().is_array()) {
      Conversation conv;
      int user_turns = 0;
      for (const auto& turn : conv_it->value().get_array()) {
        if (!turn.is_object()) continue;
        std::string_view from = StringField(turn.get_object(), "from");
        std::string_view value = StringField(turn.get_object(), "value");
        if (value.empty()) continue;
        bool user = from == "human" || from == "user";
        if (conv.empty() && !user) continue;  // a chunk that starts mid-conversation
        if (!conv.empty() && conv.back().from_user == user) break;
        conv.push_back({user, Clip(value, options.max_prompt_chars)});
        user_turns += user;
        if (conv.size() >= 16) break;
      }
      if (user_turns >= 2) set.conversations.push_back(std::move(conv));
    }
  }
  for (const auto& id : tree_order) {
    const std::string& parent = tree[id].parent_id;
    if (!parent.empty()) {
      auto it = tree.find(parent);
      if (it != tree.end()) it->second.children.push_back(id);
    }
  }
  ConversationsFromTrees(tree_order, tree, set.conversations);
  return Status::Ok();
}

}  // namespace

StatusOr<PromptCorpus> PromptCorpus::Load(const std::filesystem::path& dir,
                                          const CorpusOptions& options) {
  const auto manifest_path = dir / "MANIFEST.json";
  auto text = ReadFileContents(manifest_path.string());
  if (!text.ok()) return NotFoundError("no MANIFEST.json in " + dir.string());
  boost::system::error_code ec;
  json::value manifest = json::parse(*text, ec);
  if (ec || !manifest.is_object()) {
    return InvalidArgumentError("malformed " + manifest_path.string());
  }
  const json::value* datasets = manifest.get_object().if_contains("datasets");
  if (datasets == nullptr || !datasets->is_object()) {
    return InvalidArgumentError(manifest_path.string() + " has no \"datasets\" object");
  }
  for (const std::string& name : options.leave_out) {
    if (!datasets->get_object().contains(name)) {
      return InvalidArgumentError("no dataset named " + name + " in " + manifest_path.string());
    }
  }
  PromptCorpus corpus;
  for (const auto& [name, entry] : datasets->get_object()) {
    if (!entry.is_object()) continue;
    if (std::find(options.leave_out.begin(), options.leave_out.end(), std::string_view(name)) !=
        options.leave_out.end()) {
      continue;
    }
    const json::object& e = entry.get_object();
    std::string_view role = StringField(e, "role");
    const json::value* files = e.if_contains("files");
    if (role.empty() || files == nullptr || !files->is_array()) {
      return InvalidArgumentError("dataset " + std::string(name) + " lacks role or files");
    }
    PromptSet set;
    set.name = std::string(name);
    set.role = std::string(role);
    set.licence = std::string(StringField(e, "licence"));
    for (const auto& f : files->get_array()) {
      if (!f.is_string()) continue;
      auto path = dir / std::string(name) / std::string(f.get_string());
      MOAT_RETURN_IF_ERROR(LoadFile(path, options, set));
    }
    ApplySplit(options.split, set);
    if (!set.prompts.empty()) corpus.sets_.push_back(std::move(set));
  }
  corpus.Index();
  return corpus;
}

void PromptCorpus::Index() {
  by_role_.clear();
  for (const auto& s : sets_) by_role_[s.role].push_back(&s);
}

const std::vector<const PromptSet*>& PromptCorpus::SetsOf(std::string_view role) const {
  static const std::vector<const PromptSet*> kEmpty;
  auto it = by_role_.find(role);
  return it == by_role_.end() ? kEmpty : it->second;
}

size_t PromptCorpus::PromptCount(std::string_view role) const {
  size_t n = 0;
  for (const auto* s : SetsOf(role)) n += s->prompts.size();
  return n;
}

size_t PromptCorpus::conversation_count() const {
  size_t n = 0;
  for (const auto& s : sets_) n += s.conversations.size();
  return n;
}

}  // namespace moat::datasets
