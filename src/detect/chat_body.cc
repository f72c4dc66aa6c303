#include "detect/chat_body.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/object.hpp>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <type_traits>

namespace moat::detect {
namespace {

namespace json = boost::json;

enum class TopKey : uint8_t {
  kOther, kMessages, kModel, kTemperature, kMaxTokens, kMaxCompletionTokens, kN, kLogprobs,
  kTopLogprobs, kStream, kPrompt
};
enum class MessageKey : uint8_t { kOther, kRole, kContent };

// Keys and roles longer than this match nothing we look for.
constexpr size_t kMaxNameChars = 32;

TopKey ClassifyTopKey(std::string_view k) {
  if (k == "messages") return TopKey::kMessages;
  if (k == "model") return TopKey::kModel;
  if (k == "temperature") return TopKey::kTemperature;
  if (k == "max_tokens") return TopKey::kMaxTokens;
  if (k == "max_completion_tokens") return TopKey::kMaxCompletionTokens;
  if (k == "n") return TopKey::kN;
  if (k == "logprobs") return TopKey::kLogprobs;
  if (k == "top_logprobs") return TopKey::kTopLogprobs;
  if (k == "stream") return TopKey::kStream;
  if (k == "prompt") return TopKey::kPrompt;
  return TopKey::kOther;
}

// The SAX handler. Depth 0 is outside the document; the top-level object's members sit at
// depth 1, the "messages" array's elements (and a "prompt" array's strings) at depth 2, a
// message's members at depth 3, the parts of an array "content" at depth 4 and their members
// at depth 5. A key resets the field it names, so that a repeated key counts with its last
// value.
class ChatBodyHandler {
 public:
  // The same limits as the document parser's (boost/json/detail/handler.hpp).
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  ChatBodyHandler(ChatBodyBuffers* buffers, ChatBody* out) : b_(*buffers), out_(*out) {
    b_.model.clear();
    b_.role.clear();
    b_.key.clear();
    b_.completion_prompt.clear();
  }

  // Fills in the message texts once the document parsed.
  void Finish() {
    out_.prompt = Text(prompt_ >= 0 ? prompt_ : tool_);
    out_.previous_prompt = Text(previous_);
    out_.system = Text(system_);
    out_.previous_answer = Text(previous_answer_);
    if (prompt_ >= 0 && tool_after_prompt_) out_.tool_reply = Text(tool_);
    if (prompt_kind_ == PromptKind::kString || prompt_kind_ == PromptKind::kArray) {
      out_.has_completion_prompt = true;
      out_.completion_prompt = b_.completion_prompt;
      out_.completion_prompts = prompt_kind_ == PromptKind::kString ? 1 : prompt_strings_;
    }
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code&) {
    if (depth_ == 0) {
      out_.object = true;
    } else if (depth_ == 2 && in_messages_) {
      BeginMessage();
    } else if (depth_ == 4 && in_parts_) {
      in_part_ = true;
      part_key_text_ = false;
      part_begin_ = b_.text[current_].size();
      part_text_ = false;
    } else if (depth_ == 2 && top_key_ == TopKey::kPrompt && prompt_kind_ == PromptKind::kArray) {
      prompt_kind_ = PromptKind::kInvalid;  // an element that is not a string
    }
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    if (depth_ == 2 && in_message_) EndMessage();
    if (depth_ == 4 && in_part_) {
      in_part_ = false;
      if (part_text_) ++part_texts_;
    }
    return true;
  }
  bool on_array_begin(json::error_code&) {
    if (depth_ == 1 && top_key_ == TopKey::kMessages) {
      in_messages_ = true;
      out_.has_messages = true;
    } else if (depth_ == 1 && top_key_ == TopKey::kPrompt) {
      prompt_kind_ = PromptKind::kArray;
      prompt_strings_ = 0;
    } else if (depth_ == 2 && top_key_ == TopKey::kPrompt && prompt_kind_ == PromptKind::kArray) {
      prompt_kind_ = PromptKind::kInvalid;  // an array of token ids: no text to read
    } else if (InMessageMember() && message_key_ == MessageKey::kContent) {
      in_parts_ = true;
      content_ok_ = true;
      part_texts_ = 0;
      b_.text[current_].clear();
    }
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    if (depth_ == 1) in_messages_ = false;
    if (depth_ == 3 && in_parts_) in_parts_ = false;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t n, json::error_code&) {
    if (WantsKey() && n <= kMaxNameChars) b_.key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, json::error_code&) {
    if (!WantsKey()) return true;
    std::string_view key(s.data(), s.size());
    if (n > kMaxNameChars) {
      key = std::string_view();  // too long to be a key we read; still resets nothing
    } else if (n != s.size()) {
      b_.key.append(s.data(), s.size());
      key = b_.key;
    }
    if (depth_ == 1) {
      OnTopKey(key);
    } else if (depth_ == 3) {
      OnMessageKey(key);
    } else {
      OnPartKey(key);
    }
    b_.key.clear();
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    AppendString(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    AppendString(s);
    if (depth_ == 1 && top_key_ == TopKey::kModel) {
      out_.model = std::string_view(b_.model);
    } else if (depth_ == 1 && top_key_ == TopKey::kPrompt) {
      prompt_kind_ = PromptKind::kString;
    } else if (depth_ == 2 && top_key_ == TopKey::kPrompt && prompt_kind_ == PromptKind::kArray) {
      ++prompt_strings_;
      prompt_open_ = false;
    } else if (InMessageMember()) {
      if (message_key_ == MessageKey::kRole) role_is_string_ = true;
      if (message_key_ == MessageKey::kContent) content_ok_ = true;
    } else if (InPartText()) {
      part_text_ = true;
      part_open_ = false;
    }
    return true;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    OnNumber(static_cast<double>(i));
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    OnNumber(static_cast<double>(u));
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    OnNumber(d);
    return true;
  }
  bool on_bool(bool v, json::error_code&) {
    NotAPromptString();
    if (depth_ != 1) return true;
    if (top_key_ == TopKey::kLogprobs) out_.logprobs = v;
    if (top_key_ == TopKey::kStream) out_.stream = v;
    return true;
  }
  bool on_null(json::error_code&) {
    NotAPromptString();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  enum class PromptKind : uint8_t { kNone, kString, kArray, kInvalid };

  bool WantsKey() const { return depth_ == 1 || (depth_ == 3 && in_message_) || (depth_ == 5 && in_part_); }
  bool InMessageMember() const { return depth_ == 3 && in_message_; }
  // The value of a content part's "text" member.
  bool InPartText() const { return depth_ == 5 && in_part_ && part_key_text_; }

  // A "prompt" array holds only strings; anything else in it (numbers: token ids) leaves no text.
  void NotAPromptString() {
    if (depth_ == 2 && top_key_ == TopKey::kPrompt && prompt_kind_ == PromptKind::kArray) {
      prompt_kind_ = PromptKind::kInvalid;
    }
  }

  std::string_view Text(int i) const { return i < 0 ? std::string_view() : std::string_view(b_.text[i]); }

  // A buffer that holds none of the kept texts.
  int FreeText() const {
    for (int i = 0; i < kTexts; ++i) {
      if (i != prompt_ && i != previous_ && i != system_ && i != tool_ && i != answer_ && i != previous_answer_) {
        return i;
      }
    }
    return kTexts - 1;  // unreachable: seven buffers, at most six kept
  }

  void OnTopKey(std::string_view key) {
    top_key_ = ClassifyTopKey(key);
    switch (top_key_) {
      case TopKey::kMessages:
        out_.has_messages = false;
        out_.messages = 0;
        out_.assistant_turns = 0;
        out_.has_system = false;
        out_.content_chars = 0;
        prompt_ = previous_ = system_ = tool_ = answer_ = previous_answer_ = -1;
        tool_after_prompt_ = false;
        break;
      case TopKey::kModel:
        out_.model.reset();
        b_.model.clear();
        break;
      case TopKey::kTemperature: out_.temperature.reset(); break;
      case TopKey::kMaxTokens: out_.max_tokens.reset(); break;
      case TopKey::kMaxCompletionTokens: out_.max_completion_tokens.reset(); break;
      case TopKey::kN: out_.n.reset(); break;
      case TopKey::kLogprobs: out_.logprobs.reset(); break;
      case TopKey::kTopLogprobs: out_.top_logprobs.reset(); break;
      case TopKey::kStream: out_.stream.reset(); break;
      case TopKey::kPrompt:
        prompt_kind_ = PromptKind::kNone;
        prompt_strings_ = 0;
        prompt_open_ = false;
        b_.completion_prompt.clear();
        break;
      case TopKey::kOther:
        if (key == "reasoning_effort" || key == "reasoning") out_.reasoning_key = true;
        break;
    }
  }

  void OnMessageKey(std::string_view key) {
    if (key == "role") {
      message_key_ = MessageKey::kRole;
      role_is_string_ = false;
      b_.role.clear();
    } else if (key == "content") {
      message_key_ = MessageKey::kContent;
      content_ok_ = false;
      in_parts_ = false;
      b_.text[current_].clear();
    } else {
      message_key_ = MessageKey::kOther;
    }
  }

  // A member of a content part: its "text" (a repeated one replaces the part's earlier text).
  void OnPartKey(std::string_view key) {
    part_key_text_ = key == "text";
    if (!part_key_text_) return;
    b_.text[current_].resize(part_begin_);
    part_text_ = false;
    part_open_ = false;
  }

  void AppendString(json::string_view s) {
    if (depth_ == 1) {
      if (top_key_ == TopKey::kModel) b_.model.append(s.data(), s.size());
      if (top_key_ == TopKey::kPrompt) b_.completion_prompt.append(s.data(), s.size());
    } else if (depth_ == 2 && top_key_ == TopKey::kPrompt && prompt_kind_ == PromptKind::kArray) {
      if (!prompt_open_) {
        if (prompt_strings_ > 0) b_.completion_prompt.push_back('\n');
        prompt_open_ = true;
      }
      b_.completion_prompt.append(s.data(), s.size());
    } else if (InPartText()) {
      // Texts of parts are joined by newlines, as the gateway joins them (PromptText).
      if (!part_open_) {
        if (part_texts_ > 0) b_.text[current_].push_back('\n');
        part_open_ = true;
      }
      b_.text[current_].append(s.data(), s.size());
    } else if (InMessageMember()) {
      if (message_key_ == MessageKey::kContent) {
        b_.text[current_].append(s.data(), s.size());
      } else if (message_key_ == MessageKey::kRole && b_.role.size() <= kMaxNameChars) {
        b_.role.append(s.data(), s.size());
      }
    }
  }

  void OnNumber(double v) {
    NotAPromptString();
    if (depth_ != 1) return;
    switch (top_key_) {
      case TopKey::kTemperature: out_.temperature = v; break;
      case TopKey::kMaxTokens: out_.max_tokens = v; break;
      case TopKey::kMaxCompletionTokens: out_.max_completion_tokens = v; break;
      case TopKey::kN: out_.n = v; break;
      case TopKey::kTopLogprobs: out_.top_logprobs = v; break;
      default: break;
    }
  }

  void BeginMessage() {
    in_message_ = true;
    message_key_ = MessageKey::kOther;
    role_is_string_ = false;
    content_ok_ = false;
    in_parts_ = false;
    b_.role.clear();
    current_ = FreeText();
    b_.text[current_].clear();
  }

  void EndMessage() {
    in_message_ = false;
    ++out_.messages;
    if (!content_ok_) b_.text[current_].clear();
    out_.content_chars += b_.text[current_].size();
    if (!role_is_string_) return;
    const std::string_view role = b_.role;
    if (role == "user") {
      previous_ = prompt_;
      prompt_ = current_;
      previous_answer_ = answer_;
      tool_after_prompt_ = false;
    } else if (role == "assistant") {
      ++out_.assistant_turns;
      answer_ = current_;
    } else if (role == "system" || role == "developer") {
      out_.has_system = true;
      system_ = current_;
    } else if (role == "tool" || role == "function") {
      tool_ = current_;
      tool_after_prompt_ = true;
    }
  }

  ChatBodyBuffers& b_;
  ChatBody& out_;
  int depth_ = 0;
  TopKey top_key_ = TopKey::kOther;
  bool in_messages_ = false;
  bool in_message_ = false;
  MessageKey message_key_ = MessageKey::kOther;
  bool role_is_string_ = false;
  bool content_ok_ = false;   // the message's "content" is a string or an array (of parts)
  // An array "content": inside it, inside one of its objects (a part), whether the part's
  // current key is "text", whether that text's string is being read, whether the part has a
  // string text, and how many earlier parts had one (their texts are joined by newlines).
  bool in_parts_ = false, in_part_ = false, part_key_text_ = false, part_open_ = false, part_text_ = false;
  int part_texts_ = 0;
  size_t part_begin_ = 0;     // the length of the message's text when the part began
  // A top-level "prompt": its kind, how many strings an array of them held, and whether one of
  // them is being read.
  PromptKind prompt_kind_ = PromptKind::kNone;
  int prompt_strings_ = 0;
  bool prompt_open_ = false;
  int current_ = 0;  // the buffer of the message being read
  static constexpr int kTexts = static_cast<int>(std::extent_v<decltype(ChatBodyBuffers::text)>);
  int prompt_ = -1, previous_ = -1, system_ = -1, tool_ = -1, answer_ = -1, previous_answer_ = -1;
  bool tool_after_prompt_ = false;  // the last "tool" / "function" element follows the last "user" one
};

}  // namespace

void ChatBodyBuffers::Trim(size_t max_bytes) {
  for (std::string* s : {&text[0], &text[1], &text[2], &text[3], &text[4], &text[5], &text[6], &completion_prompt,
                         &model, &role, &key}) {
    if (s->capacity() > max_bytes) std::string().swap(*s);
  }
}

void ParseChatBody(std::string_view text, ChatBodyBuffers* buffers, ChatBody* out) {
  *out = ChatBody{};
  json::basic_parser<ChatBodyHandler> parser(json::parse_options(), buffers, out);
  json::error_code ec;
  const size_t n = parser.write_some(false, text.data(), text.size(), ec);
  // As boost::json::parser::write: the whole text must be one JSON value.
  if (ec || n < text.size() || !out->object) {
    *out = ChatBody{};
    return;
  }
  parser.handler().Finish();
}

}  // namespace moat::detect
