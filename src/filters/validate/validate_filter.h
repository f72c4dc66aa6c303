#pragma once
// RequestValidationFilter: the pipeline stage after auth that checks the OpenAI request body
// (types, required fields, known model, max_tokens bounds, and for models served by the
// built-in engine the sampling parameters it supports) and fills the RequestContext fields later
// stages rely on (model, stream, max_tokens, prompt token estimate, end user). Refusals are
// 400 invalid_request_error (code invalid_json or invalid_value, naming the parameter) or
// 404 model_not_found, counted in moat_validation_rejections_total{code}.

#include <set>
#include <string>

#include "common/metrics.h"
#include "moat/filter.h"

namespace moat::filters {

struct ValidationSettings {
  std::set<std::string> models;          // the models the gateway serves
  std::set<std::string> builtin_models;  // those of them the built-in engine serves
  int64_t default_max_tokens = 256;
  int64_t max_tokens_limit = 4096;
  std::string end_user_header;  // lower-case header naming the end user when `user` is absent
};

class RequestValidationFilterFactory final : public FilterFactory {
 public:
  RequestValidationFilterFactory(ValidationSettings settings, MetricsRegistry* metrics);
  std::string_view name() const override { return "validate"; }
  std::unique_ptr<Filter> Create() const override;

  const ValidationSettings& settings() const { return settings_; }
  Family<Counter>& rejections() const { return *rejections_; }

 private:
  const ValidationSettings settings_;
  Family<Counter>* rejections_;
};

}  // namespace moat::filters
