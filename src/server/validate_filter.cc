#include "server/validate_filter.h"

#include "server/openai.h"

namespace moat::server {
namespace {

class RequestValidationFilter final : public Filter {
 public:
  explicit RequestValidationFilter(const RequestValidationFilterFactory& f) : f_(f) {}

  FilterStatus OnRequest(RequestContext& ctx) override {
    if (!ctx.body_error.empty()) {
      return FilterStatus::Reply(400, "invalid_request_error", "invalid_json",
                                 "We could not parse the JSON body of your request: " + ctx.body_error);
    }
    std::string param;
    moat::Status s = ValidateCompletionRequest(ctx.endpoint, ctx.body, f_.default_max_tokens_,
                                               f_.max_tokens_limit_, &ctx, &param);
    if (!s.ok()) return FilterStatus::Reply(400, "invalid_request_error", "invalid_value", s.message(), {}, param);
    if (!f_.models_.count(ctx.model)) {
      return FilterStatus::Reply(404, "invalid_request_error", "model_not_found",
                                 "The model '" + ctx.model + "' does not exist or you do not have access to it.");
    }
    if (const auto* u = ctx.body.if_contains("user"); u && u->is_string()) {
      ctx.end_user = std::string(u->as_string());
    } else if (const std::string* h = ctx.FindHeader(f_.end_user_header_)) {
      ctx.end_user = *h;
    }
    return FilterStatus::Continue();
  }

 private:
  const RequestValidationFilterFactory& f_;
};

}  // namespace

std::unique_ptr<Filter> RequestValidationFilterFactory::Create() const {
  return std::make_unique<RequestValidationFilter>(*this);
}

}  // namespace moat::server
