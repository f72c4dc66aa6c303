#include "server/openai.h"

#include <boost/json/serialize.hpp>

namespace moat::server {

namespace json = boost::json;

namespace {

moat::Status Bad(std::string* param, std::string_view p, std::string message) {
  *param = std::string(p);
  return moat::InvalidArgumentError(std::move(message));
}

bool IsInteger(const json::value& v) { return v.is_int64() || v.is_uint64(); }

int64_t AsInt(const json::value& v) {
  return v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64());
}

// Appends the text of a message's content (a string or an array of parts) to out.
bool AppendContent(const json::value& content, std::string* out) {
  if (content.is_string()) {
    out->append(content.as_string().data(), content.as_string().size());
    return true;
  }
  if (content.is_null()) return true;
  if (!content.is_array()) return false;
  bool first = true;
  for (const auto& part : content.as_array()) {
    if (!part.is_object()) return false;
    const auto& po = part.as_object();
    if (const auto* t = po.if_contains("text"); t && t->is_string()) {
      if (!first) out->push_back('\n');
      first = false;
      out->append(t->as_string().data(), t->as_string().size());
    }
  }
  return true;
}

}  // namespace

moat::Status ValidateCompletionRequest(std::string_view endpoint, const json::object& body,
                                       int64_t default_max_tokens, int64_t max_tokens_limit,
                                       RequestContext* ctx, std::string* param) {
  const json::value* model = body.if_contains("model");
  if (!model) return Bad(param, "model", "you must provide a model parameter");
  if (!model->is_string() || model->as_string().empty())
    return Bad(param, "model", "'model' must be a non-empty string");
  ctx->model = std::string(model->as_string());

  int64_t text_bytes = 0;
  int64_t overhead = 0;
  int64_t prompts = 1;  // a completions request answers each prompt of an array
  if (endpoint == "/v1/chat/completions") {
    const json::value* msgs = body.if_contains("messages");
    if (!msgs) return Bad(param, "messages", "'messages' is a required property");
    if (!msgs->is_array()) return Bad(param, "messages", "'messages' must be an array");
    if (msgs->as_array().empty()) return Bad(param, "messages", "'messages' must not be empty");
    size_t i = 0;
    for (const auto& m : msgs->as_array()) {
      std::string where = "messages[" + std::to_string(i++) + "]";
      if (!m.is_object()) return Bad(param, where, "'" + where + "' must be an object");
      const auto& mo = m.as_object();
      const json::value* role = mo.if_contains("role");
      if (!role || !role->is_string()) return Bad(param, where + ".role", "'" + where + ".role' must be a string");
      // The roles of the chat API, spelt as it spells them: a role detection does not know
      // (say "User") must not carry a prompt past it to an upstream whose template accepts it.
      const std::string_view r = role->as_string();
      if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool" && r != "function")
        return Bad(param, where + ".role",
                   "'" + where + ".role' must be one of system, developer, user, assistant, tool, function");
      const json::value* content = mo.if_contains("content");
      std::string text;
      if (content && !AppendContent(*content, &text))
        return Bad(param, where + ".content", "'" + where + ".content' must be a string or an array of content parts");
      text_bytes += static_cast<int64_t>(text.size());
      overhead += 4;
    }
  } else {
    const json::value* prompt = body.if_contains("prompt");
    if (!prompt) return Bad(param, "prompt", "'prompt' is a required property");
    if (prompt->is_string()) {
      text_bytes = static_cast<int64_t>(prompt->as_string().size());
    } else if (prompt->is_array()) {
      const auto& arr = prompt->as_array();
      if (arr.empty()) return Bad(param, "prompt", "'prompt' must not be an empty array");
      if (arr.size() > kMaxPromptsPerRequest)
        return Bad(param, "prompt", "'prompt' holds more than " + std::to_string(kMaxPromptsPerRequest) + " prompts");
      for (const auto& p : arr) {
        if (!p.is_string()) return Bad(param, "prompt", "'prompt' must be a string or an array of strings");
        text_bytes += static_cast<int64_t>(p.as_string().size());
      }
      prompts = static_cast<int64_t>(arr.size());
    } else {
      return Bad(param, "prompt", "'prompt' must be a string or an array of strings");
    }
  }

  ctx->stream = false;
  if (const json::value* s = body.if_contains("stream"); s && !s->is_null()) {
    if (!s->is_bool()) return Bad(param, "stream", "'stream' must be a boolean");
    ctx->stream = s->as_bool();
  }
  int64_t max_tokens = default_max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (const json::value* v = body.if_contains(key); v && !v->is_null()) {
      if (!IsInteger(*v) || AsInt(*v) < 1) return Bad(param, key, std::string("'") + key + "' must be a positive integer");
      if (AsInt(*v) > max_tokens_limit)
        return Bad(param, key, std::string("'") + key + "' is larger than this gateway allows (" +
                                   std::to_string(max_tokens_limit) + ")");
      max_tokens = AsInt(*v);
    }
  }
  int64_t n = 1;
  if (const json::value* v = body.if_contains("n"); v && !v->is_null()) {
    if (!IsInteger(*v) || AsInt(*v) < 1 || AsInt(*v) > 16) return Bad(param, "n", "'n' must be an integer from 1 to 16");
    n = AsInt(*v);
  }
  // best_of (completions): the server generates that many completions per prompt and returns n.
  if (const json::value* v = body.if_contains("best_of"); v && !v->is_null()) {
    if (!IsInteger(*v) || AsInt(*v) < 1 || AsInt(*v) > 16)
      return Bad(param, "best_of", "'best_of' must be an integer from 1 to 16");
    if (AsInt(*v) < n) return Bad(param, "best_of", "'best_of' must be at least 'n'");
    n = AsInt(*v);
  }
  for (const char* key : {"temperature", "top_p", "presence_penalty", "frequency_penalty"}) {
    if (const json::value* v = body.if_contains(key); v && !v->is_null()) {
      if (!v->is_number()) return Bad(param, key, std::string("'") + key + "' must be a number");
      double d = v->to_number<double>();
      if (std::string_view(key) == "temperature" && (d < 0 || d > 2)) return Bad(param, key, "'temperature' must be between 0 and 2");
      if (std::string_view(key) == "top_p" && (d < 0 || d > 1)) return Bad(param, key, "'top_p' must be between 0 and 1");
    }
  }
  if (const json::value* v = body.if_contains("user"); v && !v->is_null() && !v->is_string())
    return Bad(param, "user", "'user' must be a string");
  if (const json::value* v = body.if_contains("stop"); v && !v->is_null() && !v->is_string() && !v->is_array())
    return Bad(param, "stop", "'stop' must be a string or an array of strings");

  ctx->max_tokens = max_tokens * n * prompts;
  ctx->prompt_tokens_estimate = (text_bytes + 3) / 4 + overhead;
  return moat::Status::Ok();
}

std::string PromptText(std::string_view endpoint, const json::object& body) {
  std::string out;
  if (endpoint == "/v1/chat/completions") {
    if (const auto* msgs = body.if_contains("messages"); msgs && msgs->is_array()) {
      for (const auto& m : msgs->as_array()) {
        if (!m.is_object()) continue;
        const auto& mo = m.as_object();
        if (!out.empty()) out.push_back('\n');
        if (const auto* r = mo.if_contains("role"); r && r->is_string()) {
          out.append(r->as_string().data(), r->as_string().size());
          out += ": ";
        }
        if (const auto* c = mo.if_contains("content")) AppendContent(*c, &out);
      }
    }
  } else if (const auto* p = body.if_contains("prompt")) {
    if (p->is_string()) out.assign(p->as_string().data(), p->as_string().size());
    if (p->is_array())
      for (const auto& s : p->as_array())
        if (s.is_string()) {
          if (!out.empty()) out.push_back('\n');
          out.append(s.as_string().data(), s.as_string().size());
        }
  }
  return out;
}

std::string SamplingParamsJson(const json::object& body) {
  json::object out;
  for (const char* key : {"temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n",
                          "stream", "logprobs", "top_logprobs", "seed", "presence_penalty",
                          "frequency_penalty", "stop", "reasoning_effort"}) {
    if (const auto* v = body.if_contains(key)) out[key] = *v;
  }
  if (const auto* v = body.if_contains("logit_bias"); v && v->is_object())
    out["logit_bias_entries"] = v->as_object().size();
  if (const auto* v = body.if_contains("tools"); v && v->is_array()) out["tools"] = v->as_array().size();
  return json::serialize(out);
}

int64_t EstimateTokens(std::string_view text) { return (static_cast<int64_t>(text.size()) + 3) / 4; }

}  // namespace moat::server
