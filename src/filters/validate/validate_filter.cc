#include "filters/validate/validate_filter.h"

#include <cstdint>
#include <cstdlib>
#include <limits>

#include <boost/json.hpp>

#include "server/openai.h"

namespace moat::filters {
namespace {

namespace json = boost::json;

moat::Status Bad(std::string* param, std::string_view p, std::string message) {
  *param = std::string(p);
  return moat::InvalidArgumentError(std::move(message));
}

// The sampling parameters the built-in engine supports, beyond the OpenAI checks every model
// gets: top_k, seed, at most 4 stop sequences, logprobs 0..20, logit_bias by token id, n = 1.
moat::Status CheckBuiltinParameters(std::string_view endpoint, const json::object& b,
                                    std::string* param) {
  if (const auto* v = b.if_contains("top_k"); v && !v->is_null()) {
    if (!v->is_int64() || v->as_int64() < 0)
      return Bad(param, "top_k", "'top_k' must be a non-negative integer");
  }
  if (const auto* v = b.if_contains("seed");
      v && !v->is_null() && !v->is_int64() && !v->is_uint64())
    return Bad(param, "seed", "'seed' must be an integer");
  if (const auto* v = b.if_contains("stop"); v && v->is_array()) {
    for (const auto& s : v->as_array())
      if (!s.is_string())
        return Bad(param, "stop", "'stop' must be a string or an array of strings");
    if (v->as_array().size() > 4) return Bad(param, "stop", "'stop' may hold at most 4 sequences");
  }
  if (endpoint == "/v1/chat/completions") {
    if (const auto* v = b.if_contains("logprobs"); v && v->is_bool() && v->as_bool()) {
      if (const auto* t = b.if_contains("top_logprobs");
          t && t->is_int64() && (t->as_int64() < 0 || t->as_int64() > 20))
        return Bad(param, "top_logprobs", "'top_logprobs' must be 0..20");
    }
  } else if (const auto* v = b.if_contains("logprobs"); v && v->is_int64()) {
    if (v->as_int64() < 0 || v->as_int64() > 20)
      return Bad(param, "logprobs", "'logprobs' must be 0..20");
  }
  if (const auto* v = b.if_contains("logit_bias"); v && !v->is_null()) {
    if (!v->is_object())
      return Bad(param, "logit_bias", "'logit_bias' must be an object of token id -> bias");
    for (const auto& [k, bias] : v->as_object()) {
      char* end = nullptr;
      const std::string key(k);
      const long id = std::strtol(key.c_str(), &end, 10);
      // Token ids are 32-bit: a larger key would wrap around to another token.
      if (key.empty() || !end || *end != '\0' || id < 0 || id > std::numeric_limits<int32_t>::max())
        return Bad(param, "logit_bias", "'logit_bias' keys must be token ids");
      if (!bias.is_number() || bias.to_number<double>() < -100 || bias.to_number<double>() > 100)
        return Bad(param, "logit_bias", "'logit_bias' values must be numbers in [-100, 100]");
    }
  }
  if (const auto* v = b.if_contains("n"); v && v->is_int64() && v->as_int64() != 1)
    return Bad(param, "n", "the builtin model supports only n = 1");
  return moat::Status::Ok();
}

class RequestValidationFilter final : public Filter {
 public:
  explicit RequestValidationFilter(const RequestValidationFilterFactory& f) : f_(f) {}

  FilterStatus OnRequest(RequestContext& ctx) override {
    const ValidationSettings& s = f_.settings();
    if (!ctx.body_error.empty()) {
      return Refuse(400, "invalid_json",
                    "We could not parse the JSON body of your request: " + ctx.body_error);
    }
    std::string param;
    moat::Status valid = server::ValidateCompletionRequest(
        ctx.endpoint, ctx.body, s.default_max_tokens, s.max_tokens_limit, &ctx, &param);
    if (!valid.ok()) return Refuse(400, "invalid_value", valid.message(), param);
    if (!s.models.count(ctx.model)) {
      return Refuse(
          404, "model_not_found",
          "The model '" + ctx.model + "' does not exist or you do not have access to it.");
    }
    if (s.builtin_models.count(ctx.model)) {
      valid = CheckBuiltinParameters(ctx.endpoint, ctx.body, &param);
      if (!valid.ok()) return Refuse(400, "invalid_value", valid.message(), param);
    }
    if (const auto* u = ctx.body.if_contains("user"); u && u->is_string()) {
      ctx.end_user = std::string(u->as_string());
    } else if (const std::string* h = ctx.FindHeader(s.end_user_header)) {
      ctx.end_user = *h;
    }
    return FilterStatus::Continue();
  }

 private:
  FilterStatus Refuse(int status, std::string code, std::string message, std::string param = {}) {
    f_.rejections().With({code}).Inc();
    return FilterStatus::Reply(status, "invalid_request_error", std::move(code), std::move(message),
                               {}, std::move(param));
  }

  const RequestValidationFilterFactory& f_;
};

}  // namespace

RequestValidationFilterFactory::RequestValidationFilterFactory(ValidationSettings settings,
                                                               MetricsRegistry* metrics)
    : settings_(std::move(settings)),
      rejections_(&metrics->AddCounter("moat_validation_rejections_total",
                                       "Requests refused by request validation, by error code.",
                                       {"code"})) {}

std::unique_ptr<Filter> RequestValidationFilterFactory::Create() const {
  return std::make_unique<RequestValidationFilter>(*this);
}

}  // namespace moat::filters
