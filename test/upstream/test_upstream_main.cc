// moat-test-upstream: a small, fast OpenAI-compatible server with controllable delays and faults,
// used by the gateway's integration tests and by the load benchmark.
//
// THROUGH THE GATEWAY: moat forwards no client headers by default. To let a test's x-test-*
// headers reach this server through moat, configure the model with
//   forward_headers = ["x-test-fault", "x-test-delay-ms", "x-test-chunk-delay-ms",
//                      "x-test-tokens", "x-test-echo"]
// (see ModelConfig::forward_headers in src/server/config.h).
//
// Flags
//   --host 127.0.0.1        address to listen on
//   --port 0                port; 0 picks a free one (read it from --port-file)
//   --threads 1             I/O threads (one io_context each; accepted sockets are spread
//   round-robin)
//   --port-file PATH        once listening, write "<port>\n" to PATH (atomically, via rename)
//   --api-key K             if set, every endpoint except /health and /stats requires
//                           "Authorization: Bearer K", else 401 with OpenAI error JSON
//   --model-id test-model   the model id listed by /v1/models and used when a request names none
//   --tokenize / --no-tokenize   enable (default) or disable POST /tokenize (disabled -> 404)
//   --hang-ms 60000         how long the `hang` fault keeps a connection before closing it
//   --tls-cert PEM --tls-key PEM   serve HTTPS instead of HTTP
//   --tls-client-ca PEM     with HTTPS: require a client certificate signed by this CA
//
// Endpoints
//   GET  /health                 200 {"status":"ok"}
//   GET  /stats                  {"requests":n,"connections_accepted":n,"active_connections":n,
//                                 "tls_handshakes":n,"tls_resumed":n}
//                                ("requests" counts every request except GET /stats itself)
//   GET  /v1/models {"object":"list","data":[{"id":"test-model","object":"model",...}]} POST
//   /v1/chat/completions    OpenAI chat completion (stream or not) POST /v1/completions OpenAI
//   legacy completion (stream or not) POST /tokenize               {"model":..,"prompt":".."} (or
//   "messages") ->
//                                {"tokens":[ids],"count":n,"max_model_len":8192};
//                                id = FNV-1a-64(word) % 50000
//
// Generated text. Tokens are whitespace-separated words. The completion has N tokens where
// N = min(max_tokens or max_completion_tokens (default 16), x-test-tokens if given). Its words are
// "echo:", then the words of the last user message (last prompt string for /v1/completions),
// then padding "w1 w2 ..." until there are N words; the words are joined by single spaces.
// finish_reason is "length" when N was capped by the request's max_tokens (or x-test-tokens
// exceeds the cap), else "stop". usage.prompt_tokens = words in all messages' content (text
// parts of array content count too) or in the prompt(s).
// Streaming (stream:true): text/event-stream with chunked transfer encoding; one event per token
// (the first carries delta.role="assistant"), then a chunk with empty delta and finish_reason,
// then, if stream_options.include_usage is true, a chunk with "choices":[] and "usage", then
// "data: [DONE]". Every event is written to the socket on its own as soon as it is due.
//
// Controls (request headers; absent = normal behaviour; apply to every endpoint but /stats)
//   x-test-delay-ms: D        wait D ms before the response headers (time to first byte)
//   x-test-chunk-delay-ms: D  wait D ms between consecutive stream events
//   x-test-tokens: N          completion tokens (capped by max_tokens, see above)
//   x-test-close: 1           close the connection after the (complete) completion answer
//   x-test-echo: 1            the completion content is the exact request body received, split
//                             into tokens at whitespace boundaries (concatenating the stream's
//                             deltas gives the body back byte for byte; max_tokens is ignored)
//   x-test-fault: F           status-500 | status-429 (with Retry-After: 7) | status-400 |
//                             reset-before-headers (TCP RST, no response) |
//                             reset-mid-stream (headers + 2 token events, or half of a
//                             non-stream body, then TCP RST) |
//                             hang (never answers; the connection is closed after --hang-ms) |
//                             garbage (200 with a non-JSON body; for stream requests, SSE
//                             events whose data is not JSON) |
//                             no-usage (omit usage, stream or not). Unknown values -> 400.
// Every response carries "x-upstream-received-auth: <Authorization value received>" when the
// request had an Authorization header (the header is absent otherwise).

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace moat::test_upstream {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// Completion token for awaiting without exceptions: results come back as a tuple (ec, ...).
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr std::uint32_t kMaxHeaderBytes = 64 * 1024;
constexpr std::int64_t kDefaultMaxTokens = 16;
constexpr std::size_t kMidStreamEvents = 2;
constexpr std::uint64_t kTokenIdModulus = 50000;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int threads = 1;
  std::string port_file;
  std::string api_key;
  std::string model_id = "test-model";
  bool tokenize = true;
  int hang_ms = 60000;
  std::string tls_cert;       // serve HTTPS with this PEM certificate chain ...
  std::string tls_key;        // ... and key
  std::string tls_client_ca;  // require client certificates signed by this CA
};

// Process-wide counters exposed by GET /stats.
struct Counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::int64_t> active_connections{0};
  std::atomic<std::uint64_t> next_completion_id{1};
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> tls_resumed{0};
};

struct ServerState {
  Options options;
  Counters counters;
  std::unique_ptr<ssl::context> tls;  // set when serving HTTPS
};

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// What the connection loop does after a request has been answered.
enum class Outcome { kKeepAlive, kClose, kAbandoned };

// ---------------------------------------------------------------------------------------------
// Text helpers.

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::vector<std::string_view> SplitWords(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    std::size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// Splits `text` into pieces "leading whitespace + word" (trailing whitespace joins the last
// piece) so that concatenating the pieces gives `text` back exactly.
std::vector<std::string> SplitPreservingBytes(std::string_view text) {
  std::vector<std::string> pieces;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && IsSpace(text[i])) ++i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    pieces.emplace_back(text.substr(start, i - start));
  }
  if (pieces.size() >= 2 && SplitWords(pieces.back()).empty()) {
    pieces[pieces.size() - 2] += pieces.back();
    pieces.pop_back();
  }
  return pieces;
}

std::uint64_t Fnv1a64(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The text of a message "content": a string, or the "text" fields of an array of parts.
std::string ContentText(const json::value* content) {
  if (content == nullptr) return {};
  if (content->is_string()) return std::string(content->get_string());
  std::string out;
  if (content->is_array()) {
    for (const json::value& part : content->get_array()) {
      if (!part.is_object()) continue;
      const json::value* text = part.get_object().if_contains("text");
      if (text != nullptr && text->is_string()) {
        if (!out.empty()) out += ' ';
        out += text->get_string();
      }
    }
  }
  return out;
}

std::optional<std::int64_t> ParseInt(std::string_view s) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> JsonInt(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Responses.

std::string ErrorJson(std::string_view message, std::string_view type, std::string_view code) {
  json::object error;
  error["message"] = message;
  error["type"] = type;
  error["param"] = nullptr;
  if (code.empty()) {
    error["code"] = nullptr;
  } else {
    error["code"] = code;
  }
  json::object root;
  root["error"] = std::move(error);
  return json::serialize(root);
}

void SetCommonHeaders(const Request& req, http::fields& fields) {
  fields.set(http::field::server, "moat-test-upstream");
  auto auth = req.find(http::field::authorization);
  if (auth != req.end()) fields.set("x-upstream-received-auth", auth->value());
}

Response MakeResponse(const Request& req, http::status status, std::string body,
                      std::string_view content_type = "application/json") {
  Response res{status, req.version()};
  SetCommonHeaders(req, res.base());
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response MakeError(const Request& req, http::status status, std::string_view message,
                   std::string_view type, std::string_view code = {}) {
  return MakeResponse(req, status, ErrorJson(message, type, code));
}

// ---------------------------------------------------------------------------------------------
// Completions.

// A parsed completion request and the deterministic answer to it.
struct Completion {
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  bool with_usage = true;  // false under the no-usage fault
  std::string id;
  std::string model;
  std::int64_t created = 0;
  std::vector<std::string> pieces;  // one per completion token; their concatenation is the text
  std::string finish_reason = "stop";
  std::size_t prompt_tokens = 0;
};

json::object UsageJson(const Completion& c) {
  json::object usage;
  usage["prompt_tokens"] = c.prompt_tokens;
  usage["completion_tokens"] = c.pieces.size();
  usage["total_tokens"] = c.prompt_tokens + c.pieces.size();
  return usage;
}

json::object ChunkEnvelope(const Completion& c) {
  json::object chunk;
  chunk["id"] = c.id;
  chunk["object"] = c.chat ? "chat.completion.chunk" : "text_completion";
  chunk["created"] = c.created;
  chunk["model"] = c.model;
  return chunk;
}

std::string SseEvent(const json::object& chunk) {
  std::string out = "data: ";
  out += json::serialize(chunk);
  out += "\n\n";
  return out;
}

// One JSON chunk carrying `text` (or, when `finish` is set, the end of the choice).
std::string TokenEvent(const Completion& c, std::string_view text, bool first, const char* finish) {
  json::object choice;
  choice["index"] = 0;
  if (c.chat) {
    json::object delta;
    if (first) delta["role"] = "assistant";
    if (finish == nullptr) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish == nullptr ? json::value(nullptr) : json::value(finish);
  json::object chunk = ChunkEnvelope(c);
  chunk["choices"] = json::array{std::move(choice)};
  return SseEvent(chunk);
}

std::vector<std::string> StreamEvents(const Completion& c) {
  std::vector<std::string> events;
  events.reserve(c.pieces.size() + 3);
  if (c.pieces.empty() && c.chat) events.push_back(TokenEvent(c, "", true, nullptr));
  for (std::size_t i = 0; i < c.pieces.size(); ++i) {
    events.push_back(TokenEvent(c, c.pieces[i], i == 0, nullptr));
  }
  events.push_back(TokenEvent(c, "", false, c.finish_reason.c_str()));
  if (c.include_usage && c.with_usage) {
    json::object chunk = ChunkEnvelope(c);
    chunk["choices"] = json::array();
    chunk["usage"] = UsageJson(c);
    events.push_back(SseEvent(chunk));
  }
  events.push_back("data: [DONE]\n\n");
  return events;
}

std::string CompletionBody(const Completion& c) {
  std::string text;
  for (const std::string& piece : c.pieces) text += piece;
  json::object choice;
  choice["index"] = 0;
  if (c.chat) {
    choice["message"] = json::object{{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = c.finish_reason;
  json::object root;
  root["id"] = c.id;
  root["object"] = c.chat ? "chat.completion" : "text_completion";
  root["created"] = c.created;
  root["model"] = c.model;
  root["choices"] = json::array{std::move(choice)};
  if (c.with_usage) root["usage"] = UsageJson(c);
  return json::serialize(root);
}

// Builds the Completion for `req`; on a malformed request returns the 400 error message.
std::optional<std::string> BuildCompletion(const Request& req, bool chat, ServerState& state,
                                           Completion& c) {
  json::error_code ec;
  json::value body = json::parse(req.body(), ec);
  if (ec || !body.is_object()) return "request body must be a JSON object";
  const json::object& obj = body.get_object();
  c.chat = chat;

  // Prompt text: every message's content (chat) or every prompt string (legacy).
  std::size_t prompt_tokens = 0;
  std::string last_user;
  if (chat) {
    const json::value* messages = obj.if_contains("messages");
    if (messages == nullptr || !messages->is_array()) return "'messages' must be an array";
    for (const json::value& m : messages->get_array()) {
      if (!m.is_object()) return "each message must be an object";
      std::string text = ContentText(m.get_object().if_contains("content"));
      prompt_tokens += SplitWords(text).size();
      const json::value* role = m.get_object().if_contains("role");
      if (role != nullptr && role->is_string() && role->get_string() == "user") last_user = text;
    }
  } else {
    const json::value* prompt = obj.if_contains("prompt");
    if (prompt == nullptr) return "'prompt' is required";
    if (prompt->is_string()) {
      last_user = std::string(prompt->get_string());
      prompt_tokens = SplitWords(last_user).size();
    } else if (prompt->is_array()) {
      for (const json::value& p : prompt->get_array()) {
        if (!p.is_string()) continue;
        last_user = std::string(p.get_string());
        prompt_tokens += SplitWords(last_user).size();
      }
    } else {
      return "'prompt' must be a string or an array of strings";
    }
  }
  c.prompt_tokens = prompt_tokens;

  const json::value* model = obj.if_contains("model");
  c.model = model != nullptr && model->is_string() ? std::string(model->get_string())
                                                   : state.options.model_id;
  const json::value* stream = obj.if_contains("stream");
  c.stream = stream != nullptr && stream->is_bool() && stream->get_bool();
  if (const json::value* so = obj.if_contains("stream_options"); so != nullptr && so->is_object()) {
    const json::value* iu = so->get_object().if_contains("include_usage");
    c.include_usage = iu != nullptr && iu->is_bool() && iu->get_bool();
  }

  std::uint64_t serial = state.counters.next_completion_id.fetch_add(1);
  c.id = (chat ? "chatcmpl-test-" : "cmpl-test-") + std::to_string(serial);
  c.created = static_cast<std::int64_t>(std::time(nullptr));

  if (auto echo = req.find("x-test-echo"); echo != req.end() && echo->value() == "1") {
    c.pieces = SplitPreservingBytes(req.body());
    c.finish_reason = "stop";
    return std::nullopt;
  }

  // Token budget.
  std::optional<std::int64_t> max_tokens = JsonInt(obj.if_contains("max_tokens"));
  if (!max_tokens) max_tokens = JsonInt(obj.if_contains("max_completion_tokens"));
  if (max_tokens && *max_tokens < 0) return "'max_tokens' must be >= 0";
  std::int64_t cap = max_tokens.value_or(kDefaultMaxTokens);
  std::int64_t n = cap;
  c.finish_reason = max_tokens ? "length" : "stop";
  if (auto h = req.find("x-test-tokens"); h != req.end()) {
    std::optional<std::int64_t> wanted = ParseInt(h->value());
    if (!wanted || *wanted < 0) return "x-test-tokens must be a non-negative integer";
    n = std::min(cap, *wanted);
    c.finish_reason = *wanted <= cap ? "stop" : "length";
  }

  std::vector<std::string_view> user_words = SplitWords(last_user);
  c.pieces.reserve(static_cast<std::size_t>(n));
  std::size_t pad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::string word;
    if (i == 0) {
      word = "echo:";
    } else if (static_cast<std::size_t>(i - 1) < user_words.size()) {
      word = user_words[static_cast<std::size_t>(i - 1)];
    } else {
      word = "w" + std::to_string(++pad);
    }
    c.pieces.push_back(i == 0 ? std::move(word) : " " + word);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Socket helpers.

template <class Stream>
void AbortConnection(Stream& stream) {
  tcp::socket& socket = beast::get_lowest_layer(stream);
  boost::system::error_code ignored;
  socket.set_option(asio::socket_base::linger(true, 0), ignored);  // close() then sends RST
  socket.close(ignored);
}

asio::awaitable<void> SleepMs(std::int64_t ms) {
  if (ms <= 0) co_return;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(std::chrono::milliseconds(ms));
  co_await timer.async_wait(kNoThrow);
}

template <class Stream>
asio::awaitable<Outcome> WriteResponse(Stream& socket, Response res) {
  bool keep_alive = res.keep_alive();
  auto [ec, n] = co_await http::async_write(socket, res, kNoThrow);
  if (ec) co_return Outcome::kClose;
  co_return keep_alive ? Outcome::kKeepAlive : Outcome::kClose;
}

// Sends a complete response head and the first half of its body, then resets the connection.
template <class Stream>
asio::awaitable<Outcome> WriteHalfThenReset(Stream& socket, Response res) {
  http::response_serializer<http::string_body> sr{res};
  auto [ec, n] = co_await http::async_write_header(socket, sr, kNoThrow);
  if (!ec) {
    std::string_view half(res.body().data(), res.body().size() / 2);
    co_await asio::async_write(socket, asio::buffer(half), kNoThrow);
  }
  AbortConnection(socket);
  co_return Outcome::kAbandoned;
}

// Writes `events` as a chunked text/event-stream, one chunk per event, `chunk_delay_ms` apart.
// With `reset_after` set, resets the connection after that many events.
template <class Stream>
asio::awaitable<Outcome> WriteEventStream(Stream& socket, const Request& req,
                                          const std::vector<std::string>& events,
                                          std::int64_t chunk_delay_ms,
                                          std::optional<std::size_t> reset_after) {
  http::response<http::empty_body> res{http::status::ok, req.version()};
  SetCommonHeaders(req, res.base());
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(req.keep_alive());
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  auto [ec, n] = co_await http::async_write_header(socket, sr, kNoThrow);
  if (ec) co_return Outcome::kClose;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (reset_after && i == *reset_after) break;
    if (i > 0) co_await SleepMs(chunk_delay_ms);
    auto [wec, wn] =
        co_await asio::async_write(socket, http::make_chunk(asio::buffer(events[i])), kNoThrow);
    if (wec) co_return Outcome::kClose;
  }
  if (reset_after) {
    AbortConnection(socket);
    co_return Outcome::kAbandoned;
  }
  auto [lec, ln] = co_await asio::async_write(socket, http::make_chunk_last(), kNoThrow);
  if (lec) co_return Outcome::kClose;
  co_return req.keep_alive() ? Outcome::kKeepAlive : Outcome::kClose;
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

std::string ModelsBody(const ServerState& state) {
  json::object model;
  model["id"] = state.options.model_id;
  model["object"] = "model";
  model["created"] = 1700000000;
  model["owned_by"] = "moat-test-upstream";
  json::object root;
  root["object"] = "list";
  root["data"] = json::array{std::move(model)};
  return json::serialize(root);
}

std::string StatsBody(const ServerState& state) {
  json::object root;
  root["requests"] = state.counters.requests.load();
  root["connections_accepted"] = state.counters.connections_accepted.load();
  root["active_connections"] = state.counters.active_connections.load();
  root["tls_handshakes"] = state.counters.tls_handshakes.load();
  root["tls_resumed"] = state.counters.tls_resumed.load();
  return json::serialize(root);
}

Response HandleTokenize(const Request& req) {
  json::error_code ec;
  json::value body = json::parse(req.body(), ec);
  if (ec || !body.is_object()) {
    return MakeError(req, http::status::bad_request, "request body must be a JSON object",
                     "invalid_request_error");
  }
  const json::object& obj = body.get_object();
  std::string text;
  if (const json::value* prompt = obj.if_contains("prompt"); prompt != nullptr) {
    if (!prompt->is_string()) {
      return MakeError(req, http::status::bad_request, "'prompt' must be a string",
                       "invalid_request_error");
    }
    text = std::string(prompt->get_string());
  } else if (const json::value* messages = obj.if_contains("messages");
             messages != nullptr && messages->is_array()) {
    for (const json::value& m : messages->get_array()) {
      if (!m.is_object()) continue;
      text += ContentText(m.get_object().if_contains("content"));
      text += ' ';
    }
  } else {
    return MakeError(req, http::status::bad_request, "'prompt' or 'messages' is required",
                     "invalid_request_error");
  }
  json::array tokens;
  std::vector<std::string_view> words = SplitWords(text);
  tokens.reserve(words.size());
  for (std::string_view w : words) tokens.push_back(Fnv1a64(w) % kTokenIdModulus);
  json::object root;
  root["count"] = words.size();
  root["max_model_len"] = 8192;
  root["tokens"] = std::move(tokens);
  return MakeResponse(req, http::status::ok, json::serialize(root));
}

std::string_view HeaderOr(const Request& req, std::string_view name, std::string_view fallback) {
  auto it = req.find(name);
  if (it == req.end()) return fallback;
  return std::string_view(it->value().data(), it->value().size());
}

template <class Stream>
asio::awaitable<Outcome> HandleCompletion(Stream& socket, const Request& req, bool chat,
                                          std::string_view fault, std::int64_t chunk_delay_ms,
                                          ServerState& state) {
  Completion c;
  if (std::optional<std::string> error = BuildCompletion(req, chat, state, c)) {
    co_return co_await WriteResponse(
        socket, MakeError(req, http::status::bad_request, *error, "invalid_request_error"));
  }
  if (fault == "no-usage") c.with_usage = false;
  if (fault == "garbage") {
    if (c.stream) {
      std::vector<std::string> events = {"data: {this is not json\n\n", "data: ]]garbage[[\n\n"};
      co_return co_await WriteEventStream(socket, req, events, chunk_delay_ms, std::nullopt);
    }
    co_return co_await WriteResponse(
        socket,
        MakeResponse(req, http::status::ok, "<html>this is not JSON {\"", "application/json"));
  }
  bool reset_mid = fault == "reset-mid-stream";
  if (c.stream) {
    std::optional<std::size_t> reset_after;
    if (reset_mid) reset_after = kMidStreamEvents;
    co_return co_await WriteEventStream(socket, req, StreamEvents(c), chunk_delay_ms, reset_after);
  }
  Response res = MakeResponse(req, http::status::ok, CompletionBody(c));
  if (reset_mid) co_return co_await WriteHalfThenReset(socket, std::move(res));
  co_return co_await WriteResponse(socket, std::move(res));
}

bool IsKnownFault(std::string_view f) {
  static constexpr std::string_view kFaults[] = {
      "status-500",       "status-429", "status-400", "reset-before-headers",
      "reset-mid-stream", "hang",       "garbage",    "no-usage"};
  for (std::string_view k : kFaults) {
    if (f == k) return true;
  }
  return false;
}

template <class Stream>
asio::awaitable<Outcome> Handle(Stream& socket, const Request& req, ServerState& state) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  bool is_get = req.method() == http::verb::get;
  bool is_post = req.method() == http::verb::post;

  if (path == "/stats" && is_get) {
    co_return co_await WriteResponse(socket, MakeResponse(req, http::status::ok, StatsBody(state)));
  }
  state.counters.requests.fetch_add(1, std::memory_order_relaxed);

  // Controls.
  std::int64_t delay_ms = 0;
  std::int64_t chunk_delay_ms = 0;
  for (auto [name, out] : {std::pair<std::string_view, std::int64_t*>{"x-test-delay-ms", &delay_ms},
                           {"x-test-chunk-delay-ms", &chunk_delay_ms}}) {
    auto it = req.find(name);
    if (it == req.end()) continue;
    std::optional<std::int64_t> v = ParseInt(it->value());
    if (!v || *v < 0) {
      co_return co_await WriteResponse(
          socket, MakeError(req, http::status::bad_request,
                            std::string(name) + " must be a non-negative integer",
                            "invalid_request_error"));
    }
    *out = *v;
  }
  std::string_view fault = HeaderOr(req, "x-test-fault", "");
  if (!fault.empty() && !IsKnownFault(fault)) {
    co_return co_await WriteResponse(
        socket, MakeError(req, http::status::bad_request,
                          "unknown x-test-fault: " + std::string(fault), "invalid_request_error"));
  }

  co_await SleepMs(delay_ms);

  const std::string& key = state.options.api_key;
  if (!key.empty() && path != "/health") {
    std::string_view auth = HeaderOr(req, "authorization", "");
    if (auth.size() != key.size() + 7 || auth.substr(0, 7) != "Bearer " || auth.substr(7) != key) {
      co_return co_await WriteResponse(
          socket, MakeError(req, http::status::unauthorized, "Incorrect API key provided.",
                            "invalid_request_error", "invalid_api_key"));
    }
  }

  if (fault == "reset-before-headers") {
    AbortConnection(socket);
    co_return Outcome::kAbandoned;
  }
  if (fault == "hang") {
    co_await SleepMs(state.options.hang_ms);
    co_return Outcome::kClose;
  }
  if (fault == "status-500") {
    co_return co_await WriteResponse(
        socket,
        MakeError(req, http::status::internal_server_error,
                  "The server had an error while processing your request.", "server_error"));
  }
  if (fault == "status-429") {
    Response res = MakeError(req, http::status::too_many_requests,
                             "Rate limit reached for requests.", "requests", "rate_limit_exceeded");
    res.set(http::field::retry_after, "7");
    co_return co_await WriteResponse(socket, std::move(res));
  }
  if (fault == "status-400") {
    co_return co_await WriteResponse(
        socket, MakeError(req, http::status::bad_request, "Injected bad request.",
                          "invalid_request_error"));
  }

  if (is_post && (path == "/v1/chat/completions" || path == "/v1/completions")) {
    Outcome done = co_await HandleCompletion(socket, req, path == "/v1/chat/completions", fault,
                                             chunk_delay_ms, state);
    // x-test-close: 1 ends the connection after a complete answer (a fresh one next time).
    if (done == Outcome::kKeepAlive && HeaderOr(req, "x-test-close", "") == "1") co_return Outcome::kClose;
    co_return done;
  }

  Response res;
  if (fault == "garbage") {
    res = MakeResponse(req, http::status::ok, "<html>this is not JSON {\"");
  } else if (path == "/health" && is_get) {
    res = MakeResponse(req, http::status::ok, R"({"status":"ok"})");
  } else if (path == "/v1/models" && is_get) {
    res = MakeResponse(req, http::status::ok, ModelsBody(state));
  } else if (path == "/tokenize" && is_post && state.options.tokenize) {
    res = HandleTokenize(req);
  } else {
    res =
        MakeError(req, http::status::not_found,
                  "Unknown endpoint: " + std::string(req.method_string()) + " " + std::string(path),
                  "invalid_request_error", "unknown_url");
  }
  if (fault == "reset-mid-stream") co_return co_await WriteHalfThenReset(socket, std::move(res));
  co_return co_await WriteResponse(socket, std::move(res));
}

// ---------------------------------------------------------------------------------------------
// Connections.

// Serves requests on one connection (plain or TLS) until it closes.
template <class Stream>
asio::awaitable<Outcome> Serve(Stream& socket, ServerState& state) {
  beast::flat_buffer buffer;
  Outcome outcome = Outcome::kKeepAlive;
  while (outcome == Outcome::kKeepAlive) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(kMaxBodyBytes);
    auto [hec, hn] = co_await http::async_read_header(socket, buffer, parser, kNoThrow);
    if (hec) break;
    if (parser.get()[http::field::expect] == "100-continue") {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      auto [cec, cn] = co_await http::async_write(socket, cont, kNoThrow);
      if (cec) break;
    }
    auto [ec, n] = co_await http::async_read(socket, buffer, parser, kNoThrow);
    if (ec) {
      if (ec == http::error::body_limit) {
        Request head = parser.release();
        head.keep_alive(false);
        co_await WriteResponse(
            socket, MakeError(head, http::status::payload_too_large, "request body too large",
                              "invalid_request_error"));
      }
      break;
    }
    outcome = co_await Handle(socket, parser.get(), state);
  }
  co_return outcome;
}

asio::awaitable<void> Session(tcp::socket socket, ServerState& state) {
  state.counters.active_connections.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  Outcome outcome = Outcome::kClose;
  if (state.tls) {
    ssl::stream<tcp::socket> tls(std::move(socket), *state.tls);
    auto [hec] = co_await tls.async_handshake(ssl::stream_base::server, kNoThrow);
    if (!hec) {
      state.counters.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
      if (SSL_session_reused(tls.native_handle())) state.counters.tls_resumed.fetch_add(1, std::memory_order_relaxed);
      outcome = co_await Serve(tls, state);
      if (outcome != Outcome::kAbandoned) co_await tls.async_shutdown(kNoThrow);
    }
    if (outcome != Outcome::kAbandoned && tls.next_layer().is_open()) tls.next_layer().close(ignored);
  } else {
    outcome = co_await Serve(socket, state);
    if (outcome != Outcome::kAbandoned && socket.is_open()) {
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      socket.close(ignored);
    }
  }
  state.counters.active_connections.fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> AcceptLoop(tcp::acceptor& acceptor,
                                 std::vector<std::unique_ptr<asio::io_context>>& contexts,
                                 ServerState& state) {
  std::size_t next = 0;
  for (;;) {
    asio::io_context& target = *contexts[next];
    next = (next + 1) % contexts.size();
    auto [ec, socket] = co_await acceptor.async_accept(target.get_executor(), kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      co_await SleepMs(10);  // e.g. EMFILE: back off instead of spinning
      continue;
    }
    state.counters.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(target, Session(std::move(socket), state), asio::detached);
  }
}

bool WritePortFile(const std::string& path, std::uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int Run(const Options& options) {
  ServerState state;
  state.options = options;
  if (!options.tls_cert.empty()) {
    state.tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    state.tls->use_certificate_chain_file(options.tls_cert, ec);
    if (!ec) state.tls->use_private_key_file(options.tls_key, ssl::context::pem, ec);
    if (!ec && !options.tls_client_ca.empty()) {
      state.tls->load_verify_file(options.tls_client_ca, ec);
      state.tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    if (ec) {
      std::cerr << "moat-test-upstream: cannot load the TLS files: " << ec.message() << "\n";
      return 2;
    }
  }
  int threads = std::max(1, options.threads);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));

  boost::system::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(options.host, ec), options.port);
  if (ec) {
    std::cerr << "moat-test-upstream: bad --host " << options.host << ": " << ec.message() << "\n";
    return 2;
  }
  tcp::acceptor acceptor(*contexts[0]);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "moat-test-upstream: cannot listen on " << options.host << ":" << options.port
              << ": " << ec.message() << "\n";
    return 1;
  }
  std::uint16_t port = acceptor.local_endpoint().port();
  if (!options.port_file.empty() && !WritePortFile(options.port_file, port)) {
    std::cerr << "moat-test-upstream: cannot write --port-file " << options.port_file << "\n";
    return 1;
  }
  std::cerr << "moat-test-upstream: listening on " << options.host << ":" << port << " (" << threads
            << " threads)\n";

  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    for (auto& ctx : contexts) ctx->stop();
  });
  asio::co_spawn(*contexts[0], AcceptLoop(acceptor, contexts, state), asio::detached);

  std::vector<std::jthread> workers;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (int i = 1; i < threads; ++i) {
    guards.push_back(asio::make_work_guard(*contexts[i]));
    workers.emplace_back([ctx = contexts[i].get()] { ctx->run(); });
  }
  contexts[0]->run();
  for (auto& ctx : contexts) ctx->stop();
  workers.clear();  // joins
  return 0;
}

}  // namespace
}  // namespace moat::test_upstream

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  moat::test_upstream::Options options;
  CLI::App app{"moat-test-upstream: OpenAI-compatible test server with injectable faults"};
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port (0 = pick a free one)")->capture_default_str();
  app.add_option("--threads", options.threads, "I/O threads")->capture_default_str();
  app.add_option("--port-file", options.port_file, "write the bound port to this file");
  app.add_option("--api-key", options.api_key, "require 'Authorization: Bearer KEY'");
  app.add_option("--model-id", options.model_id, "model id to report")->capture_default_str();
  app.add_flag("--tokenize,!--no-tokenize", options.tokenize, "serve POST /tokenize")
      ->capture_default_str();
  app.add_option("--hang-ms", options.hang_ms, "how long the hang fault holds a connection")
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert, "serve HTTPS with this PEM certificate chain");
  app.add_option("--tls-key", options.tls_key, "the PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", options.tls_client_ca,
                 "require client certificates signed by this PEM CA");
  CLI11_PARSE(app, argc, argv);
  return moat::test_upstream::Run(options);
}
