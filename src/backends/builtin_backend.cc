#include "backends/builtin_backend.h"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include <boost/asio/this_coro.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/utf8.h"
#include "moat/clock.h"
#include "resistance/hardening.h"
#include "server/openai.h"

namespace moat::backends {

using server::Backend;
using server::BackendCall;
using server::BackendResult;
using server::ModelConfig;
using server::PromptText;
using server::WatermarkSettings;

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Pieces handed from the generating pool thread to the connection's thread.
struct Handoff {
  explicit Handoff(asio::any_io_executor ex) : timer(ex, asio::steady_timer::time_point::max()), executor(ex) {}
  std::mutex mu;
  std::deque<model::GeneratedPiece> pieces;          // GUARDED_BY(mu)
  bool done = false;                                 // GUARDED_BY(mu)
  moat::StatusOr<model::GenerationResult> result = moat::InternalError("generation did not finish");
  std::atomic<bool> cancelled{false};
  asio::steady_timer timer;  // touched only on `executor`
  asio::any_io_executor executor;

  void Wake(const std::shared_ptr<Handoff>& self) {
    asio::post(executor, [self] { self->timer.cancel(); });
  }
};

// The generation request for an OpenAI body the validate filter has checked (it refuses the
// parameters the engine does not support before a request reaches a backend).
model::GenerationRequest ToGenerationRequest(const RequestContext& ctx) {
  model::GenerationRequest req;
  const json::object& b = ctx.body;
  const bool chat = ctx.endpoint == "/v1/chat/completions";
  req.prompt = PromptText(ctx.endpoint, b);
  if (chat) req.prompt += "\nassistant:";
  req.max_tokens = static_cast<int>(std::min<int64_t>(ctx.max_tokens, 1'000'000));
  if (const auto* v = b.if_contains("temperature"); v && v->is_number())
    req.temperature = v->to_number<double>();
  if (const auto* v = b.if_contains("top_p"); v && v->is_number())
    req.top_p = v->to_number<double>();
  if (const auto* v = b.if_contains("top_k"); v && v->is_int64())
    req.top_k = static_cast<int>(v->as_int64());
  if (const auto* v = b.if_contains("seed"); v && v->is_int64())
    req.seed = static_cast<uint64_t>(v->as_int64());
  if (const auto* v = b.if_contains("seed"); v && v->is_uint64()) req.seed = v->as_uint64();
  if (const auto* v = b.if_contains("stop"); v && v->is_string())
    req.stop.emplace_back(v->as_string());
  if (const auto* v = b.if_contains("stop"); v && v->is_array()) {
    for (const auto& s : v->as_array())
      if (s.is_string()) req.stop.emplace_back(s.as_string());
  }
  if (chat) {
    if (const auto* v = b.if_contains("logprobs"); v && v->is_bool() && v->as_bool()) {
      req.top_logprobs = 0;
      if (const auto* t = b.if_contains("top_logprobs"); t && t->is_int64())
        req.top_logprobs = static_cast<int>(t->as_int64());
    }
  } else if (const auto* v = b.if_contains("logprobs"); v && v->is_int64()) {
    req.top_logprobs = static_cast<int>(v->as_int64());
  }
  if (const auto* v = b.if_contains("logit_bias"); v && v->is_object()) {
    for (const auto& [k, bias] : v->as_object()) {
      const long id = std::strtol(std::string(k).c_str(), nullptr, 10);
      if (bias.is_number())
        req.logit_bias.emplace_back(static_cast<model::TokenId>(id),
                                    static_cast<float>(bias.to_number<double>()));
    }
  }
  return req;
}

json::value LogprobsJson(const std::vector<model::GeneratedPiece>& pieces, bool chat) {
  if (chat) {
    json::array content;
    for (const auto& p : pieces) {
      if (p.token < 0) continue;
      json::object o;
      o["token"] = ReplaceInvalidUtf8(p.text);
      o["logprob"] = p.logprob;
      json::array top;
      for (const auto& [t, lp] : p.top) top.push_back(json::object{{"token", ReplaceInvalidUtf8(t)}, {"logprob", lp}});
      o["top_logprobs"] = std::move(top);
      content.push_back(std::move(o));
    }
    return json::object{{"content", std::move(content)}};
  }
  json::array tokens, token_logprobs, top_logprobs;
  for (const auto& p : pieces) {
    if (p.token < 0) continue;
    tokens.emplace_back(ReplaceInvalidUtf8(p.text));
    token_logprobs.emplace_back(p.logprob);
    json::object top;
    for (const auto& [t, lp] : p.top) top[ReplaceInvalidUtf8(t)] = lp;
    top_logprobs.push_back(std::move(top));
  }
  return json::object{{"tokens", std::move(tokens)}, {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", std::move(top_logprobs)}};
}

json::object Usage(const model::GenerationResult& r) {
  return json::object{{"prompt_tokens", r.prompt_tokens},
                      {"completion_tokens", r.completion_tokens},
                      {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

}  // namespace

moat::StatusOr<watermark::WatermarkConfig> ToWatermarkConfig(const WatermarkSettings& s) {
  watermark::WatermarkConfig c;
  c.enabled = s.enabled;
  c.scheme = s.scheme == "unigram" ? watermark::Scheme::kUnigram : watermark::Scheme::kKgw;
  c.gamma = s.gamma;
  c.delta = s.delta;
  c.context_width = s.context_width;
  MOAT_RETURN_IF_ERROR(c.Validate());
  return c;
}

moat::StatusOr<std::unique_ptr<BuiltinBackend>> BuiltinBackend::Create(const ModelConfig& model,
                                                                       const WatermarkSettings& wm,
                                                                       const std::string& secret_path,
                                                                       const Clock* clock, Random* random) {
  MOAT_ASSIGN_OR_RETURN(watermark::WatermarkConfig wcfg, ToWatermarkConfig(wm));
  auto engine = model::BuiltinEngine::Load(model.model_path, wcfg);
  if (!engine.ok())
    return moat::FailedPreconditionError("model \"" + model.name + "\": cannot load " + model.model_path + " (" +
                                         engine.status().message() + "); train it with `moat model train --out " +
                                         model.model_path + "`");
  MOAT_ASSIGN_OR_RETURN(watermark::MasterSecret secret, watermark::MasterSecret::LoadOrCreate(secret_path));
  return std::unique_ptr<BuiltinBackend>(
      new BuiltinBackend(model, std::move(*engine), std::move(secret), wm.enabled, wm.epoch, clock, random));
}

BuiltinBackend::BuiltinBackend(const ModelConfig& model, std::unique_ptr<model::BuiltinEngine> engine,
                               watermark::MasterSecret secret, bool watermark_enabled, uint32_t epoch,
                               const Clock* clock, Random* random)
    : config_(model), engine_(std::move(engine)), secret_(std::move(secret)),
      watermark_enabled_(watermark_enabled), epoch_(epoch), clock_(clock), random_(random),
      pool_(model.generation_threads > 0 ? model.generation_threads
                                         : std::max(1u, std::thread::hardware_concurrency())) {}

BuiltinBackend::~BuiltinBackend() {
  pool_.stop();
  pool_.join();
}

asio::awaitable<BackendResult> BuiltinBackend::Handle(BackendCall& call) {
  RequestContext& ctx = call.ctx;
  const bool chat = ctx.endpoint == "/v1/chat/completions";
  model::GenerationRequest req = ToGenerationRequest(ctx);
  if (!req.seed) req.seed = random_->Next();
  std::optional<watermark::WatermarkKey> key;
  if (watermark_enabled_ && !ctx.account_id.empty()) {
    key = watermark::DeriveKey(secret_, ctx.account_id, epoch_);
    req.key = &*key;
    ctx.watermark_key_id = key->key_id;
  }
  if (ctx.hardening != nullptr) {
    // One gateway-wide key: sybil accounts pooling their answers see the same shift.
    req.antidistill_kl = ctx.hardening->antidistill_kl;
    req.antidistill_key = watermark::DeriveKey(secret_, "moat.antidistill", epoch_).seed;
  }

  auto executor = co_await asio::this_coro::executor;
  auto h = std::make_shared<Handoff>(executor);
  const bool stream = ctx.stream;
  // `req` and `key` live in this coroutine frame, which waits for `done` before returning.
  asio::post(pool_, [this, h, &req, stream] {
    auto result = engine_->Generate(req, [&](const model::GeneratedPiece& piece) {
      if (h->cancelled.load()) return false;
      {
        std::lock_guard lock(h->mu);
        h->pieces.push_back(piece);
      }
      if (stream) h->Wake(h);
      return true;
    });
    {
      std::lock_guard lock(h->mu);
      h->result = std::move(result);
      h->done = true;
    }
    h->Wake(h);
  });

  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + ctx.request_id;
  const int64_t created = clock_->NowNanos() / 1'000'000'000;
  bool client_wants_usage = false;
  if (const auto* so = ctx.body.if_contains("stream_options"); so && so->is_object())
    if (const auto* iu = so->as_object().if_contains("include_usage"); iu && iu->is_bool())
      client_wants_usage = iu->as_bool();
  auto chunk = [&](json::object delta_or_text, json::value finish, json::value logprobs) {
    json::object choice;
    choice["index"] = 0;
    if (chat) {
      choice["delta"] = std::move(delta_or_text);
    } else {
      choice["text"] = delta_or_text.contains("content") ? delta_or_text["content"] : json::value("");
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = std::move(finish);
    json::object o{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                   {"created", created}, {"model", ctx.model}};
    o["choices"] = json::array{std::move(choice)};
    return "data: " + json::serialize(o) + "\n\n";
  };

  std::vector<model::GeneratedPiece> all;  // for non-streamed logprobs
  bool first = true;
  bool client_gone = false;
  for (;;) {
    std::deque<model::GeneratedPiece> batch;
    bool done;
    {
      std::lock_guard lock(h->mu);
      batch.swap(h->pieces);
      done = h->done;
    }
    if (stream && !batch.empty() && !client_gone) {
      std::string out;
      for (auto& p : batch) {
        if (p.text.empty() && req.top_logprobs < 0) continue;
        json::object delta;
        if (first && chat) delta["role"] = "assistant";
        first = false;
        // JSON carries text: a byte token that forms no character is served as U+FFFD (the
        // engine never splits a character across pieces; the audit keeps the exact bytes).
        delta["content"] = ReplaceInvalidUtf8(p.text);
        ctx.completion_text += p.text;
        json::value lp = nullptr;
        if (req.top_logprobs >= 0 && p.token >= 0) lp = LogprobsJson({p}, chat);
        out += chunk(std::move(delta), nullptr, std::move(lp));
        if (p.token >= 0) ++ctx.completion_tokens;
      }
      if (!out.empty()) {
        if (!call.client->begun() && !co_await call.client->Begin(ctx)) client_gone = true;
        if (!client_gone && !co_await call.client->Send(out)) client_gone = true;
        if (client_gone) h->cancelled.store(true);
        if (!client_gone && call.on_progress && !call.on_progress()) {
          h->cancelled.store(true);
          client_gone = true;  // stop sending; the pipeline reports the local reply
        }
      }
    } else if (!stream) {
      for (auto& p : batch) all.push_back(std::move(p));
    }
    if (done) break;
    h->timer.expires_at(asio::steady_timer::time_point::max());
    co_await h->timer.async_wait(kNoThrow);
  }

  if (!h->result.ok()) {
    const auto& s = h->result.status();
    const bool invalid = s.code() == moat::StatusCode::kInvalidArgument;
    ctx.SetLocalReply(LocalReply{invalid ? 400 : 500, invalid ? "invalid_request_error" : "server_error",
                                 invalid ? "invalid_value" : "generation_failed", s.message(), {}, "", {}});
    co_return BackendResult{};
  }
  const model::GenerationResult& r = *h->result;
  ctx.prompt_tokens = r.prompt_tokens;
  ctx.completion_tokens = r.completion_tokens;
  ctx.usage_from_upstream = true;
  ctx.completion_text = r.text;
  if (!r.watermark_key_id.empty()) ctx.watermark_key_id = r.watermark_key_id;
  if (ctx.local_reply()) co_return BackendResult{};  // a filter stopped the stream
  if (client_gone) {
    ctx.SetResponseStatus(499, "client_disconnected");
    co_return BackendResult{};
  }
  ctx.SetResponseStatus(200);
  const std::string finish = r.finish_reason == "cancelled" ? "stop" : r.finish_reason;

  if (stream) {
    std::string out = chunk(json::object{}, json::value(finish), nullptr);
    if (client_wants_usage) {
      json::object o{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                     {"created", created}, {"model", ctx.model}, {"choices", json::array{}}};
      o["usage"] = Usage(r);
      out += "data: " + json::serialize(o) + "\n\n";
    }
    if (!call.client->begun() && !co_await call.client->Begin(ctx)) client_gone = true;
    if (!client_gone && !co_await call.client->Send(out)) client_gone = true;
    if (client_gone) {
      ctx.SetResponseStatus(499, "client_disconnected");
    }
    co_return BackendResult{};
  }

  json::object choice;
  choice["index"] = 0;
  std::string answer = r.text;
  if (ctx.hardening != nullptr) {
    resistance::HardenAnswer(*ctx.hardening, resistance::RequestAsksForSteps(ctx.raw_body), &answer, nullptr);
  }
  if (chat) {
    choice["message"] = json::object{{"role", "assistant"}, {"content", ReplaceInvalidUtf8(answer)}};
  } else {
    choice["text"] = ReplaceInvalidUtf8(answer);
  }
  choice["logprobs"] = req.top_logprobs >= 0 ? LogprobsJson(all, chat) : json::value(nullptr);
  choice["finish_reason"] = finish;
  json::object o{{"id", id}, {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created}, {"model", ctx.model}};
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = Usage(r);
  co_return BackendResult{json::serialize(o)};
}

}  // namespace moat::backends
