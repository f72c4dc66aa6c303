#pragma once
// SuspectClient: the forensics tools' view of a remote model (http:// only), over the internal
// HTTP client (net/http_client.h). It asks any OpenAI-compatible endpoint for chat completions
// (radioactivity testing of a suspected distilled model) and calls a vLLM-style tokenize
// endpoint (detection in upstream mode, where token ids must come from the upstream's
// tokenizer). Calls reuse one kept-alive connection; each is bounded by one deadline covering
// resolve, connect, write and read. Not thread-safe: use one client per thread.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_url.h"
#include "moat/status.h"
#include "net/http_client.h"

namespace moat::watermark {

struct ChatRequest {
  std::string model;
  std::string prompt;  // sent as one user message
  int max_tokens = 64;
  double temperature = 1.0;
  std::optional<uint64_t> seed;
};

class SuspectClient {
 public:
  // `base_url` is the server root or its /v1 prefix ("http://h:p" or "http://h:p/v1"); `api_key`
  // is sent as "Authorization: Bearer" when not empty.
  static StatusOr<SuspectClient> Create(std::string_view base_url, std::string api_key = "",
                                        std::chrono::milliseconds timeout =
                                            std::chrono::milliseconds(30000));

  // POST <base>/v1/chat/completions; returns choices[0].message.content. kUnavailable when the
  // connection fails or the status is not 2xx (the message carries the status and the start of
  // the body), kDeadlineExceeded on timeout, kResourceExhausted when the answer exceeds 64 MiB,
  // kDataLoss when the body is not a completion.
  StatusOr<std::string> ChatCompletion(const ChatRequest& request) const;

  // POST `path` (default: the base URL's path, or "/tokenize" when it has none) with
  // {"model": model, "prompt": text}; returns the "tokens" array. Errors as ChatCompletion.
  StatusOr<std::vector<int32_t>> Tokenize(std::string_view model, std::string_view text) const;

  // POST `target` with a JSON body and returns the response body of a 2xx answer.
  StatusOr<std::string> PostJson(const std::string& target, const std::string& body) const;

  const HttpUrl& url() const { return http_.url(); }

 private:
  explicit SuspectClient(net::HttpClient http) : http_(std::move(http)) {}

  // Mutable: the kept-alive connection is a cache, not part of what the client is.
  mutable net::HttpClient http_;  // sends the API key as its bearer token
};

}  // namespace moat::watermark
