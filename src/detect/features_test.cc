#include "detect/features.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <algorithm>
#include <random>

#include "detect/chat_body.h"
#include "detect/detection_model.h"
#include "detect/test_corpus.h"

namespace moat::detect {
namespace {

RequestEvent Chat(const std::string& body) {
  RequestEvent e;
  e.account_id = "acct";
  e.client_ip = "10.1.2.3";
  e.body_json = body;
  return e;
}

TEST(SkeletonTest, MasksContentWordsAndNumbers) {
  EXPECT_EQ(Skeleton("Question: How many apples does Tom have?"),
            "question : how many w does w have ?");
  EXPECT_EQ(Skeleton("I bought 12 red apples"), "i w # w");
  // Two prompts from one template share a skeleton; unrelated prompts do not.
  EXPECT_EQ(Skeleton("Translate the sentence to French"), Skeleton("Summarise the article to Spanish"));
  EXPECT_NE(Skeleton("Translate the sentence to French"), Skeleton("Why is the sky blue?"));
}

TEST(ExtractTest, ContentScoresFromTheModel) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 21)[0];
  RequestFeatures f = Extract(Chat(R"({"messages":[{"role":"user","content":")" + question + R"("}]})"),
                              model.get());
  EXPECT_GT(f.content.combined, 1.0f);
  EXPECT_EQ(f.content.top_head, kHeadReasoning);
  EXPECT_EQ(f.signal[kContentReasoning], f.content.llr[kHeadReasoning] >= kStrongContentLlr ? 1.0f : 0.0f);
  EXPECT_TRUE(f.item.valid);
  EXPECT_GT(f.cohort_feature_count, 20);
  // No model: no content evidence, but the sketch and features are still there.
  RequestFeatures g = Extract(Chat(R"({"messages":[{"role":"user","content":")" + question + R"("}]})"));
  EXPECT_EQ(g.content.combined, 0.0f);
  EXPECT_TRUE(g.item.valid);
}

// A prompt sent as content parts, or to the legacy completions endpoint, is read as the same
// text sent as a string: what the gateway answers is what detection scores.
TEST(ExtractTest, ContentPartsAndCompletionPromptsAreScoredLikeStrings) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 23)[0];
  const RequestFeatures plain =
      Extract(Chat(R"({"messages":[{"role":"user","content":")" + question + R"("}]})"), model.get());
  ASSERT_GT(plain.content.combined, 1.0f);
  const RequestFeatures parts = Extract(
      Chat(R"({"messages":[{"role":"user","content":[{"type":"text","text":")" + question + R"("}]}]})"),
      model.get());
  EXPECT_EQ(parts.content.combined, plain.content.combined);
  EXPECT_EQ(parts.text_hash, plain.text_hash);
  EXPECT_EQ(parts.item.band, plain.item.band);
  RequestEvent completion = Chat(R"({"model":"m","prompt":")" + question + R"(","max_tokens":100})");
  completion.endpoint = "/v1/completions";
  const RequestFeatures legacy = Extract(completion, model.get());
  EXPECT_TRUE(legacy.parsed);
  EXPECT_EQ(legacy.content.combined, plain.content.combined);
  EXPECT_EQ(legacy.text_hash, plain.text_hash);
  EXPECT_EQ(legacy.signal[kSingleTurn], 1.0f);
  EXPECT_EQ(legacy.expected_answer_tokens, 100);
  // A batch of prompts is answered once per prompt.
  completion.body_json = R"({"prompt":["a","b","c"],"max_tokens":100,"n":2})";
  EXPECT_EQ(Extract(completion, model.get()).expected_answer_tokens, 600);
  // The chat endpoint reads its messages, whatever else the body holds.
  RequestEvent chat = Chat(R"({"prompt":"ignored","messages":[{"role":"user","content":")" + question + R"("}]})");
  chat.endpoint = "/v1/chat/completions";
  EXPECT_EQ(Extract(chat, model.get()).text_hash, plain.text_hash);
}

TEST(ExtractTest, AShortFollowUpIsJudgedByTheQuestionBeforeIt) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 22)[0];
  const std::string body = R"({"messages":[{"role":"user","content":")" + question +
                           R"("},{"role":"assistant","content":"The answer is 12."},)"
                           R"({"role":"user","content":"how did you get that?"}]})";
  RequestFeatures f = Extract(Chat(body), model.get());
  const ContentScores q = model->content.Score(question);
  EXPECT_NEAR(f.content.combined, q.combined * kFollowUpDiscount, 1e-4);
}

// What a next turn shares with the user turn or the answer before it: distinct content words
// (function words and repeats do not count), for prompts longer than a short follow-up.
TEST(ExtractTest, ANextTurnCountsTheContentWordsItSharesWithTheTurnsBefore) {
  auto turns = [](const std::string& first, const std::string& answer, const std::string& next) {
    return Extract(Chat(R"({"messages":[{"role":"user","content":")" + first +
                        R"("},{"role":"assistant","content":")" + answer + R"("},{"role":"user","content":")" +
                        next + R"("}]})"));
  };
  const std::string garden = "My tomato plants in the garden have yellow leaves after the rain";
  // "tomato", "plants", "yellow", "leaves" ("leaves" twice in the prompt, counted once; "leave"
  // is another word); "the", "my", "or" are function words.
  RequestFeatures f = turns(garden, "Sure.", "Should I cut the yellow leaves off the tomato plants or leave the leaves on them for now");
  EXPECT_FALSE(f.short_follow_up);
  EXPECT_EQ(f.words_shared_with_previous, 4);
  f = turns(garden, "Sure.", "Write a formal letter to my landlord about the broken heating in the flat this winter");
  EXPECT_FALSE(f.short_follow_up);
  EXPECT_EQ(f.words_shared_with_previous, 0);
  // The answer counts too: "nitrogen", "fertiliser" are in the answer, not in the question.
  f = turns(garden, "It may lack nitrogen: try a balanced fertiliser.",
            "Which nitrogen fertiliser is safe for vegetables that we are going to eat this summer");
  EXPECT_EQ(f.words_shared_with_previous, 2);
  f = turns(garden, "Sure.", "why is that?");
  EXPECT_TRUE(f.short_follow_up);
  EXPECT_EQ(f.words_shared_with_previous, 0);
  // Without a user turn before it, neither.
  f = Extract(Chat(R"({"messages":[{"role":"user","content":"Should I cut the yellow leaves off the tomato plants"}]})"));
  EXPECT_FALSE(f.short_follow_up);
  EXPECT_EQ(f.words_shared_with_previous, 0);
}

// A request hidden in a tool's output, or in the system message, under a plain user carrier: the
// tool output counts when it scores higher (discounted); the system message's scores are kept
// aside for the engine (which counts them when the account's system message changed).
TEST(ExtractTest, ARequestCarriedByAToolOrSystemMessageIsScored) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 22)[0];
  const ContentScores q = model->content.Score(question);
  const ContentScores carrier = model->content.Score("Please answer it.");
  ASSERT_GT(q.combined * kCarriedDiscount, carrier.combined + 1.0f);
  const RequestFeatures tool = Extract(
      Chat(R"({"messages":[{"role":"user","content":"Please answer it."},{"role":"tool","content":")" + question +
           R"("}]})"),
      model.get());
  EXPECT_NEAR(tool.content.combined, q.combined * kCarriedDiscount, 1e-4);
  EXPECT_EQ(tool.signal[kContentReasoning], tool.content.llr[kHeadReasoning] >= kStrongContentLlr ? 1.0f : 0.0f);
  // A tool output before the user's last message is history, not what is answered now.
  const RequestFeatures earlier = Extract(
      Chat(R"({"messages":[{"role":"tool","content":")" + question +
           R"("},{"role":"user","content":"Please answer it."}]})"),
      model.get());
  EXPECT_NEAR(earlier.content.combined, carrier.combined, 1e-4);
  const RequestFeatures system = Extract(
      Chat(R"({"messages":[{"role":"system","content":")" + question +
           R"("},{"role":"user","content":"Please answer it."}]})"),
      model.get());
  EXPECT_NEAR(system.content.combined, carrier.combined, 1e-4);  // the engine decides
  EXPECT_NEAR(system.system_content.combined, q.combined * kCarriedDiscount, 1e-4);
  EXPECT_NE(SystemTag(system), 0);
  // Too short to carry a request: not scored.
  const RequestFeatures persona = Extract(
      Chat(R"({"messages":[{"role":"system","content":"You are a helpful assistant."},)"
           R"({"role":"user","content":"Please answer it."}]})"),
      model.get());
  EXPECT_EQ(persona.system_content.combined, 0.0f);
}

TEST(ExtractTest, ExpectedAnswerTokens) {
  EXPECT_EQ(Extract(Chat(R"({"messages":[{"role":"user","content":"hi"}]})")).expected_answer_tokens, 300);
  EXPECT_EQ(Extract(Chat(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":50,"n":5})"))
                .expected_answer_tokens,
            250);
}

TEST(ExtractTest, ParsesBodyAndSampling) {
  RequestFeatures f = Extract(Chat(
      R"({"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},)"
      R"({"role":"user","content":"hi"},{"role":"assistant","content":"hello"},)"
      R"({"role":"user","content":"Solve step by step: 2+2"}],"temperature":0,"max_tokens":4096,)"
      R"("logprobs":true,"top_logprobs":5,"n":3,"reasoning_effort":"high"})"));
  EXPECT_TRUE(f.parsed);
  EXPECT_EQ(f.messages, 4);
  EXPECT_EQ(f.assistant_turns, 1);
  EXPECT_TRUE(f.has_system);
  EXPECT_NE(f.system_hash, 0u);
  EXPECT_EQ(f.temperature, 0.0);
  EXPECT_EQ(f.max_tokens, 4096);
  EXPECT_EQ(f.n, 3);
  EXPECT_TRUE(f.logprobs);
  EXPECT_TRUE(f.reasoning);
  EXPECT_EQ(f.signal[kLogprobs], 1.0f);
  EXPECT_EQ(f.signal[kLongOutput], 1.0f);
  EXPECT_EQ(f.signal[kMultiSample], 1.0f);
  EXPECT_EQ(f.signal[kGreedy], 1.0f);
  EXPECT_EQ(f.signal[kSingleTurn], 0.0f);  // a real follow-up
}

TEST(ExtractTest, GarbageBodyIsSafe) {
  RequestFeatures f = Extract(Chat("{not json"));
  EXPECT_FALSE(f.parsed);
  EXPECT_EQ(f.signal[kSingleTurn], 0.0f);
  f = Extract(Chat(R"({"messages":"nope"})"));
  EXPECT_FALSE(f.parsed);
  f = Extract(Chat(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})"));
  EXPECT_TRUE(f.parsed);
}

TEST(ExtractTest, TemplatePrefixAndSuffixAreShared) {
  auto body = [](const std::string& q) {
    return R"({"messages":[{"role":"user","content":"Answer the following question carefully now. )" +
           q + R"( Give the final answer after Answer please."}]})";
  };
  RequestFeatures a = Extract(Chat(body("What is the boiling point of water at sea level?")));
  RequestFeatures b = Extract(Chat(body("Who wrote the novel Moby Dick in the nineteenth century?")));
  RequestFeatures c = Extract(Chat(R"({"messages":[{"role":"user","content":"Tell me a long story about dragons and knights and castles"}]})"));
  EXPECT_EQ(a.prefix_hash, b.prefix_hash);
  EXPECT_EQ(a.suffix_hash, b.suffix_hash);
  EXPECT_NE(a.prefix_hash, c.prefix_hash);
  EXPECT_GT(a.minhash.Similarity(b.minhash), a.minhash.Similarity(c.minhash));
}

TEST(NetworkPrefixTest, V4AndV6) {
  EXPECT_EQ(NetworkPrefix("203.0.113.7"), "203.0.113");
  EXPECT_EQ(NetworkPrefix("2001:db8:abcd:12::1"), "2001:db8:abcd");
  EXPECT_EQ(NetworkPrefix("local"), "local");
}

// ---- chat_body.h ---------------------------------------------------------------------------

// The straightforward reading ParseChatBody must equal: the whole document parsed by
// boost::json::parse, then the fields read from it (as Extract did before the SAX parser).
struct ReferenceBody {
  ChatBody body;
  std::string prompt, previous_prompt, previous_answer, system, tool_reply, model, completion_prompt;  // what body's views point at
};

// A message's text as the gateway serves it (server/openai.cc): a string, or the "text" strings
// of an array's object parts joined by newlines.
std::string ReferenceContent(const boost::json::value* content) {
  if (content == nullptr) return "";
  if (content->is_string()) return std::string(content->get_string());
  std::string out;
  if (!content->is_array()) return out;
  bool first = true;
  for (const boost::json::value& part : content->get_array()) {
    if (!part.is_object()) continue;
    const boost::json::value* t = part.get_object().if_contains("text");
    if (t == nullptr || !t->is_string()) continue;
    if (!first) out.push_back('\n');
    first = false;
    out.append(t->get_string().data(), t->get_string().size());
  }
  return out;
}

ReferenceBody ReadWithDocumentParser(std::string_view text) {
  namespace json = boost::json;
  ReferenceBody r;
  ChatBody& b = r.body;
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) return r;
  b.object = true;
  const json::object& o = doc.get_object();
  std::string tool;
  std::string answer;
  bool has_tool = false, has_user = false, tool_after_user = false;
  if (const json::value* m = o.if_contains("messages"); m != nullptr && m->is_array()) {
    b.has_messages = true;
    for (const json::value& msg : m->get_array()) {
      if (!msg.is_object()) continue;
      ++b.messages;
      const json::object& mo = msg.get_object();
      const json::value* role = mo.if_contains("role");
      const json::value* content = mo.if_contains("content");
      const std::string content_text = ReferenceContent(content);
      b.content_chars += content_text.size();
      if (role == nullptr || !role->is_string()) continue;
      const std::string_view role_name = role->get_string();
      if (role_name == "user") {
        has_user = true;
        tool_after_user = false;
        r.previous_prompt = r.prompt;
        r.prompt = content_text;
        r.previous_answer = answer;
      } else if (role_name == "assistant") {
        ++b.assistant_turns;
        answer = content_text;
      } else if (role_name == "system" || role_name == "developer") {
        b.has_system = true;
        r.system = content_text;
      } else if (role_name == "tool" || role_name == "function") {
        tool = content_text;
        has_tool = true;
        tool_after_user = has_user;
      }
    }
  }
  auto number = [&](const char* key, std::optional<double>* out) {
    if (const json::value* v = o.if_contains(key); v != nullptr && v->is_number()) *out = v->to_number<double>(ec);
  };
  auto boolean = [&](const char* key, std::optional<bool>* out) {
    if (const json::value* v = o.if_contains(key); v != nullptr && v->is_bool()) *out = v->get_bool();
  };
  if (const json::value* v = o.if_contains("model"); v != nullptr && v->is_string()) {
    r.model = std::string(v->get_string());
    b.model = r.model;
  }
  number("temperature", &b.temperature);
  number("max_tokens", &b.max_tokens);
  number("max_completion_tokens", &b.max_completion_tokens);
  number("n", &b.n);
  number("top_logprobs", &b.top_logprobs);
  boolean("logprobs", &b.logprobs);
  boolean("stream", &b.stream);
  b.reasoning_key = o.contains("reasoning_effort") || o.contains("reasoning");
  if (const json::value* p = o.if_contains("prompt"); p != nullptr && p->is_string()) {
    b.has_completion_prompt = true;
    r.completion_prompt = std::string(p->get_string());
    b.completion_prompts = 1;
  } else if (p != nullptr && p->is_array() &&
             std::all_of(p->get_array().begin(), p->get_array().end(), [](const json::value& v) { return v.is_string(); })) {
    b.has_completion_prompt = true;
    for (const json::value& v : p->get_array()) {
      if (b.completion_prompts++ > 0) r.completion_prompt.push_back('\n');
      r.completion_prompt.append(v.get_string().data(), v.get_string().size());
    }
  }
  b.completion_prompt = r.completion_prompt;
  if (!has_user && has_tool) r.prompt = tool;
  if (tool_after_user) r.tool_reply = tool;
  b.prompt = r.prompt;
  b.tool_reply = r.tool_reply;
  b.previous_prompt = r.previous_prompt;
  b.previous_answer = r.previous_answer;
  b.system = r.system;
  return r;
}

void ExpectSameBody(const ChatBody& got, const ChatBody& want, std::string_view text) {
  SCOPED_TRACE(std::string(text.substr(0, 400)));
  EXPECT_EQ(got.object, want.object);
  EXPECT_EQ(got.has_messages, want.has_messages);
  EXPECT_EQ(got.messages, want.messages);
  EXPECT_EQ(got.assistant_turns, want.assistant_turns);
  EXPECT_EQ(got.has_system, want.has_system);
  EXPECT_EQ(got.content_chars, want.content_chars);
  EXPECT_EQ(got.prompt, want.prompt);
  EXPECT_EQ(got.previous_prompt, want.previous_prompt);
  EXPECT_EQ(got.previous_answer, want.previous_answer);
  EXPECT_EQ(got.system, want.system);
  EXPECT_EQ(got.tool_reply, want.tool_reply);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.temperature, want.temperature);
  EXPECT_EQ(got.max_tokens, want.max_tokens);
  EXPECT_EQ(got.max_completion_tokens, want.max_completion_tokens);
  EXPECT_EQ(got.n, want.n);
  EXPECT_EQ(got.top_logprobs, want.top_logprobs);
  EXPECT_EQ(got.logprobs, want.logprobs);
  EXPECT_EQ(got.stream, want.stream);
  EXPECT_EQ(got.reasoning_key, want.reasoning_key);
  EXPECT_EQ(got.has_completion_prompt, want.has_completion_prompt);
  EXPECT_EQ(got.completion_prompt, want.completion_prompt);
  EXPECT_EQ(got.completion_prompts, want.completion_prompts);
}

// Random chat bodies: the fields detection reads with values of every type, repeated keys,
// escapes, long strings and keys, nesting, and broken or trailing text.
class RandomBody {
 public:
  explicit RandomBody(uint64_t seed) : rng_(seed) {}

  std::string Next() {
    std::string out;
    const int members = Pick(8);
    out += '{';
    if (Pick(4) != 0) out += "\"messages\":" + Messages() + (members > 0 ? "," : "");  // mostly a chat
    for (int i = 0; i < members; ++i) {
      if (i > 0) out += ',';
      static const char* kKeys[] = {"messages", "messages", "model", "temperature", "max_tokens",
                                    "max_completion_tokens", "n", "logprobs", "top_logprobs", "stream",
                                    "reasoning_effort", "reasoning", "tools", "m\\u006fdel", "user", "prompt",
                                    "prompt"};
      const std::string key = Pick(20) == 0 ? LongKey() : kKeys[Pick(std::size(kKeys))];
      out += '"' + key + "\":";
      if (key == "prompt") {
        out += Prompt();
      } else {
        out += key == "messages" && Pick(5) != 0 ? Messages() : Value(0);
      }
    }
    out += '}';
    switch (Pick(12)) {
      case 0: out.resize(Pick(out.size() + 1)); break;  // truncated
      case 1: out += Pick(2) == 0 ? " {}" : "x"; break;  // trailing data
      case 2: out = std::string(Pick(3) + 31, '[') + out + std::string(40, ']'); break;  // deep
      case 3: out = Value(0); break;  // any value, rarely an object
      default: break;
    }
    return out;
  }

 private:
  size_t Pick(size_t n) { return n == 0 ? 0 : rng_() % n; }

  std::string LongKey() { return std::string(30 + Pick(8), 'k') + (Pick(2) == 0 ? "\\n" : "model"); }

  std::string Text() {
    static const char* kPieces[] = {"Hello", " world", "\\n", "\\\"", "\\u00e9", "\\ud83d\\ude00", "Solve 2+2?",
                                    " ", "\\t", "user", "\\/", "caf\xc3\xa9", "Answer:"};
    std::string s = "\"";
    const size_t pieces = Pick(10) == 0 ? 2000 + Pick(3000) : Pick(12);  // long: parsed in parts
    for (size_t i = 0; i < pieces; ++i) s += kPieces[Pick(std::size(kPieces))];
    return s + '"';
  }

  std::string Value(int depth) {
    switch (Pick(depth > 2 ? 6 : 8)) {
      case 0: return Text();
      case 1: return std::to_string(static_cast<int64_t>(rng_() % 20000) - 100);
      case 2: return Pick(2) == 0 ? "0.7" : "1e3";
      case 3: return Pick(2) == 0 ? "true" : "false";
      case 4: return "null";
      case 5: return "18446744073709551615";
      case 6: return "[" + Value(depth + 1) + "," + Value(depth + 1) + "]";
      default: return "{\"role\":" + Value(depth + 1) + ",\"content\":" + Value(depth + 1) + "}";
    }
  }

  std::string Message() {
    static const char* kRoles[] = {"\"user\"", "\"user\"", "\"assistant\"", "\"system\"", "\"developer\"",
                                   "\"tool\"", "\"function\"", "\"us\\u0065r\"", "5", "null", "[\"user\"]"};
    std::string m = "{";
    const int members = Pick(5);
    for (int i = 0; i < members; ++i) {
      if (i > 0) m += ',';
      switch (Pick(5)) {
        case 0:
        case 1: m += std::string("\"role\":") + kRoles[Pick(std::size(kRoles))]; break;
        case 2:
        case 3: {
          const size_t kind = Pick(8);
          m += "\"content\":" + (kind == 0 ? Value(3) : kind <= 2 ? Parts() : Text());
          break;
        }
        default: m += "\"name\":" + Value(3); break;
      }
    }
    return m + '}';
  }

  // An array of content parts: text parts (some with a repeated or non-string "text"), image
  // parts, and now and then something that is not a part.
  std::string Parts() {
    std::string a = "[";
    const int n = Pick(5);
    for (int i = 0; i < n; ++i) {
      if (i > 0) a += ',';
      switch (Pick(6)) {
        case 0: a += R"({"type":"image_url","image_url":{"url":"data:x","text":"nested"}})"; break;
        case 1: a += R"({"text":)" + Text() + R"(,"type":"text","text":)" + Value(3) + "}"; break;
        case 2: a += Value(3); break;
        default: a += R"({"type":"text","text":)" + Text() + "}"; break;
      }
    }
    return a + ']';
  }

  // A completions "prompt": a string, an array of strings, token ids, or anything else.
  std::string Prompt() {
    switch (Pick(5)) {
      case 0: return Value(1);
      case 1: return "[1,2,3]";
      case 2: return Text();
      default: {
        std::string a = "[";
        const int n = Pick(4);
        for (int i = 0; i < n; ++i) a += (i > 0 ? "," : "") + (Pick(10) == 0 ? Value(2) : Text());
        return a + ']';
      }
    }
  }

  std::string Messages() {
    std::string a = "[";
    const int n = Pick(7);
    for (int i = 0; i < n; ++i) {
      if (i > 0) a += ',';
      a += Pick(8) == 0 ? Value(2) : Message();
    }
    return a + ']';
  }

  std::mt19937_64 rng_;
};

TEST(ChatBodyTest, ReadsTheFieldsDetectionUses) {
  ChatBodyBuffers buffers;
  ChatBody b;
  ParseChatBody(
      R"({"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},)"
      R"({"role":"assistant","content":"hello"},{"role":"user","content":"Solve: 2+2"}],"temperature":0,)"
      R"("max_tokens":4096,"logprobs":true,"top_logprobs":5,"n":3,"stream":false,"reasoning_effort":"high"})",
      &buffers, &b);
  EXPECT_TRUE(b.object);
  EXPECT_TRUE(b.has_messages);
  EXPECT_EQ(b.messages, 4);
  EXPECT_EQ(b.assistant_turns, 1);
  EXPECT_TRUE(b.has_system);
  EXPECT_EQ(b.prompt, "Solve: 2+2");
  EXPECT_EQ(b.previous_prompt, "hi");
  EXPECT_EQ(b.previous_answer, "hello");
  EXPECT_EQ(b.system, "Be brief.");
  EXPECT_EQ(b.model, "gpt-4o");
  EXPECT_EQ(b.temperature, 0.0);
  EXPECT_EQ(b.max_tokens, 4096.0);
  EXPECT_EQ(b.n, 3.0);
  EXPECT_EQ(b.logprobs, true);
  EXPECT_EQ(b.stream, false);
  EXPECT_TRUE(b.reasoning_key);
}

TEST(ChatBodyTest, RepeatedKeysCountWithTheirLastValue) {
  for (const char* text : {R"({"model":"a","model":"b","messages":[{"role":"user","content":"x"}],"messages":5})",
                           R"({"messages":[{"role":"user","content":"x","content":7,"role":"user"}]})",
                           R"({"messages":[{"content":"x","role":"system","role":"user"}],"stream":true,"stream":1})",
                           R"({"temperature":1,"temperature":"hot","n":2,"n":3})"}) {
    ChatBodyBuffers buffers;
    ChatBody b;
    ParseChatBody(text, &buffers, &b);
    ExpectSameBody(b, ReadWithDocumentParser(text).body, text);
  }
}

TEST(ChatBodyTest, SameAsTheDocumentParserOnRandomBodies) {
  RandomBody gen(21);
  ChatBodyBuffers buffers;  // reused, as Extract does
  int objects = 0, with_prompt = 0, with_previous = 0, with_answer = 0, with_tool_reply = 0, with_completion_prompt = 0, with_prompts = 0;
  for (int trial = 0; trial < 8000; ++trial) {
    const std::string text = gen.Next();
    ChatBody b;
    ParseChatBody(text, &buffers, &b);
    const ReferenceBody want = ReadWithDocumentParser(text);
    ExpectSameBody(b, want.body, text);
    objects += want.body.object;
    with_prompt += !want.body.prompt.empty();
    with_previous += !want.body.previous_prompt.empty();
    with_answer += !want.body.previous_answer.empty();
    with_tool_reply += !want.body.tool_reply.empty();
    with_completion_prompt += want.body.has_completion_prompt;
    with_prompts += want.body.completion_prompts > 1;
    if (trial % 500 == 0) buffers.Trim(1024);
    if (HasFailure()) break;
  }
  // The generator reaches the interesting cases.
  EXPECT_GT(objects, 4000);
  EXPECT_GT(with_prompt, 400);
  EXPECT_GT(with_previous, 80);
  EXPECT_GT(with_answer, 20);
  EXPECT_GT(with_tool_reply, 40);
  EXPECT_GT(with_completion_prompt, 400);
  EXPECT_GT(with_prompts, 100);
}

// What the gateway serves is what detection reads: content parts (joined by newlines, as the
// gateway joins them) and a completions request's prompt, one string or several.
TEST(ChatBodyTest, ReadsContentPartsAndCompletionPrompts) {
  ChatBodyBuffers buffers;
  ChatBody b;
  ParseChatBody(R"({"messages":[{"role":"user","content":[{"type":"text","text":"Solve step by step:"},)"
                R"({"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"text","text":"2+2?"}]}]})",
                &buffers, &b);
  EXPECT_EQ(b.prompt, "Solve step by step:\n2+2?");
  EXPECT_EQ(b.content_chars, b.prompt.size());
  EXPECT_FALSE(b.has_completion_prompt);
  ParseChatBody(R"({"model":"m","prompt":"Write a haiku about rain."})", &buffers, &b);
  EXPECT_TRUE(b.has_completion_prompt);
  EXPECT_EQ(b.completion_prompt, "Write a haiku about rain.");
  EXPECT_EQ(b.completion_prompts, 1);
  EXPECT_FALSE(b.has_messages);
  ParseChatBody(R"({"prompt":["first item","second item","third"]})", &buffers, &b);
  EXPECT_EQ(b.completion_prompt, "first item\nsecond item\nthird");
  EXPECT_EQ(b.completion_prompts, 3);
  ParseChatBody(R"({"prompt":[[1,2],[3]]})", &buffers, &b);
  EXPECT_FALSE(b.has_completion_prompt);  // token ids: no text
  // Without a user message, the last tool message is what the model answers.
  ParseChatBody(R"({"messages":[{"role":"system","content":"s"},{"role":"tool","content":"Solve: 3+4"}]})",
                &buffers, &b);
  EXPECT_EQ(b.prompt, "Solve: 3+4");
  ParseChatBody(R"({"messages":[{"role":"user","content":"q"},{"role":"tool","content":"result"}]})", &buffers, &b);
  EXPECT_EQ(b.prompt, "q");
  EXPECT_EQ(b.tool_reply, "result");  // what the model answers now, besides the user's question
  ParseChatBody(R"({"messages":[{"role":"tool","content":"result"},{"role":"user","content":"q"}]})", &buffers, &b);
  EXPECT_EQ(b.prompt, "q");
  EXPECT_EQ(b.tool_reply, "");  // an earlier tool output: the user's message is what is answered
}

TEST(ChatBodyTest, GarbageReadsAsNoObject) {
  for (const char* text : {"", "{", "[]", "\"x\"", "{\"messages\":[}", "{} {}", "{\"a\":1,}", "nul"}) {
    ChatBodyBuffers buffers;
    ChatBody b;
    ParseChatBody(text, &buffers, &b);
    EXPECT_FALSE(b.object) << text;
    EXPECT_FALSE(b.has_messages) << text;
    EXPECT_TRUE(b.prompt.empty()) << text;
  }
}

}  // namespace
}  // namespace moat::detect
