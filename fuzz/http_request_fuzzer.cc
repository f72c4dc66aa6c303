// Fuzzes the gateway's request path up to the end of the filter chain: raw bytes through the
// HTTP request parser with the server's limits, the framing checks (request_framing.h), the
// request context built from the head (client address behind a trusted proxy, bearer key), the
// header-phase authentication against a real account store, then the body parse and the
// request-phase filters (validation, rate limits), as HttpServer and Gateway run them.
#include <stdlib.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "filters/auth/auth_filter.h"
#include "filters/ratelimit/ratelimit_filter.h"
#include "filters/validate/validate_filter.h"
#include "moat/clock.h"
#include "ratelimit/failed_auth_limiter.h"
#include "ratelimit/quota_enforcer.h"
#include "server/config.h"
#include "server/gateway.h"
#include "server/request_framing.h"
#include "store/account_store.h"

namespace {

namespace http = boost::beast::http;
using moat::RequestContext;

// What the fuzzer may write as its key to reach the filters after authentication.
constexpr std::string_view kValidKeyStandIn = "valid";
constexpr size_t kMaxTrackedKeys = 1000;

// The account store's scratch directory, removed when the fuzzer exits.
std::string& ScratchDir() {
  static std::string dir;
  return dir;
}

struct Pipeline {
  Pipeline() {
    char dir[] = "/tmp/moat-fuzz-http-XXXXXX";
    if (::mkdtemp(dir) == nullptr) std::abort();
    ScratchDir() = dir;
    std::atexit([] { std::filesystem::remove_all(ScratchDir()); });
    auto opened = moat::store::AccountStore::Open(std::string(dir) + "/moat.db", std::string(32, 'p'), &clock);
    if (!opened.ok()) std::abort();
    accounts = std::move(*opened);
    auto account = accounts->CreateAccount("fuzz", "", moat::store::Tier::kUnverified);
    key = accounts->CreateKey(account->id, "")->secret;
    failed_auth = std::make_unique<moat::ratelimit::FailedAuthLimiter>(&clock, moat::ratelimit::FailedAuthLimits{});
    moat::ratelimit::TierLimits limits;
    limits.key_requests = {60, 60};
    limits.key_tokens = {100'000, 100'000};
    factories.push_back(std::make_unique<moat::filters::AuthFilterFactory>(accounts.get(), &metrics, failed_auth.get()));
    moat::filters::ValidationSettings validation;
    validation.models = {"test-model"};
    validation.default_max_tokens = config.default_max_tokens;
    validation.max_tokens_limit = config.max_tokens_limit;
    validation.end_user_header = config.end_user_header;
    factories.push_back(
        std::make_unique<moat::filters::RequestValidationFilterFactory>(validation, &metrics));
    factories.push_back(std::make_unique<moat::filters::RateLimitFilterFactory>(
        std::make_unique<moat::ratelimit::QuotaEnforcer>(&clock, std::map<std::string, moat::ratelimit::TierLimits>{{"unverified", limits}},
                                                         kMaxTrackedKeys),
        &metrics));
  }
  moat::ManualClock clock;
  moat::MetricsRegistry metrics;
  moat::server::ServerConfig config;
  std::unique_ptr<moat::store::AccountStore> accounts;
  std::string key;
  std::unique_ptr<moat::ratelimit::FailedAuthLimiter> failed_auth;
  std::vector<std::unique_ptr<moat::FilterFactory>> factories;
};

// Feeds `in` from `*used` to the parser until it stops: false on a parse error.
bool Feed(http::request_parser<http::string_body>& parser, std::string_view in, size_t* used, bool until_done) {
  while (*used < in.size() && !(until_done ? parser.is_done() : parser.is_header_done())) {
    boost::beast::error_code ec;
    const size_t n = parser.put(boost::asio::buffer(in.data() + *used, in.size() - *used), ec);
    *used += n;
    if (ec == http::error::need_more) return true;
    if (ec) return false;
    if (n == 0) return true;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Pipeline* p = new Pipeline();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(p->config.max_header_bytes));
  parser.body_limit(p->config.max_body_bytes);
  parser.eager(false);
  size_t used = 0;
  if (!Feed(parser, in, &used, /*until_done=*/false) || !parser.is_header_done()) return 0;
  moat::server::HttpRequest& req = parser.get();
  if (moat::server::CheckRequestFraming(req)) return 0;
  (void)moat::server::ExpectsContinue(req);

  RequestContext ctx;
  ctx.endpoint = req.target() == "/v1/completions" ? "/v1/completions" : "/v1/chat/completions";
  moat::server::Gateway::FillFromHead(req, "127.0.0.1", {"127.0.0.1"}, &ctx);
  if (ctx.bearer_token == kValidKeyStandIn) ctx.bearer_token = p->key;
  std::vector<std::unique_ptr<moat::Filter>> filters;
  for (const auto& f : p->factories) {
    filters.push_back(f->Create());
    if (filters.back()->OnHeaders(ctx).is_local_reply()) return 0;
  }

  parser.eager(true);
  if (!Feed(parser, in, &used, /*until_done=*/true) || !parser.is_done()) return 0;
  moat::server::Gateway::ParseBody(req.body(), &ctx);
  size_t ran = 0;
  for (auto& f : filters) {
    ++ran;
    if (f->OnRequest(ctx).is_local_reply()) break;
  }
  ctx.prompt_tokens = ctx.prompt_tokens_estimate;
  for (size_t i = ran; i-- > 0;) filters[i]->OnComplete(ctx);
  p->clock.AdvanceSeconds(1);
  return 0;
}
