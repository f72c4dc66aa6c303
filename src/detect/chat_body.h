#pragma once
// ChatBody: the fields of an OpenAI chat-completions (or legacy completions) request body that
// detection reads, taken in one SAX pass over the JSON text (Boost.JSON's basic_parser): no
// document tree is built and nothing is allocated once the caller's ChatBodyBuffers have grown
// to the texts it sees.
//
// A message's text is what the gateway serves (server/openai.cc, PromptText): a string
// "content", or the "text" strings of the objects of a content-part array joined by newlines.
// A completions body's "prompt" (a string, or an array of strings joined by newlines) is read
// too; which of the two the request is, the caller tells by its endpoint.
//
// The result is exactly what reading a fully parsed document (boost::json::parse with default
// options) would give: invalid JSON (including trailing data and nesting deeper than 32) or a
// body that is not an object reads as `object == false`; a key given twice counts with its last
// value, as in the parsed document; a field of the wrong type reads as absent.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::detect {

// Reusable text buffers for ParseChatBody. The views of a ChatBody point into them: they stay
// valid until the buffers are used for the next parse or destroyed.
struct ChatBodyBuffers {
  // Message contents: last user, previous user, last system, last tool, last assistant, the
  // assistant before the last user, and the message being read.
  std::string text[7];
  std::string completion_prompt;  // the "prompt" of a completions body
  std::string model;
  std::string role;
  std::string key;
  // Frees buffers grown past `max_bytes` (so that one huge body does not stay pinned).
  void Trim(size_t max_bytes);
};

struct ChatBody {
  bool object = false;        // valid JSON whose top-level value is an object
  bool has_messages = false;  // ... whose "messages" is an array
  // Of the "messages" array: object elements, those with role "assistant", whether one had role
  // "system" or "developer", and the summed length of every element's string "content".
  int messages = 0;
  int assistant_turns = 0;
  bool has_system = false;
  size_t content_chars = 0;
  // The text of the last "user" element ("" when its content is neither a string nor an array
  // of content parts), of the "user" element before it, and of the last "system" / "developer"
  // element. A conversation without a "user" element has the text of its last "tool" /
  // "function" element as its prompt (what the model is then answering).
  std::string_view prompt, previous_prompt, system;
  // The text of the last "assistant" element before the last "user" element: the answer the
  // prompt goes on from ("" when there is none).
  std::string_view previous_answer;
  // The text of the last "tool" / "function" element when it comes after the last "user"
  // element (a tool's output that the model is answering now); "" otherwise, and "" in a
  // conversation without a "user" element (whose prompt is that text already).
  std::string_view tool_reply;
  // "prompt" (a completions body) when it is a string or an array of strings: the text, and how
  // many prompts it holds (each is answered on its own).
  bool has_completion_prompt = false;
  std::string_view completion_prompt;
  int completion_prompts = 0;
  std::optional<std::string_view> model;  // "model" when a string
  std::optional<double> temperature;      // each number field converted to double
  std::optional<double> max_tokens, max_completion_tokens, n, top_logprobs;
  std::optional<bool> logprobs, stream;   // each bool field
  bool reasoning_key = false;             // "reasoning_effort" or "reasoning" present (any value)
};

// Parses `json` into *out, using `buffers` for the texts it keeps. Never throws.
void ParseChatBody(std::string_view json, ChatBodyBuffers* buffers, ChatBody* out);

}  // namespace moat::detect
