#pragma once
// RequestValidationFilter: the pipeline stage after auth that checks the OpenAI request body
// (types, required fields, known model, max_tokens bounds) and fills the RequestContext fields
// later stages rely on (model, stream, max_tokens, prompt token estimate, end user).

#include <set>
#include <string>

#include "moat/filter.h"

namespace moat::server {

class RequestValidationFilterFactory final : public FilterFactory {
 public:
  RequestValidationFilterFactory(std::set<std::string> models, int64_t default_max_tokens,
                                 int64_t max_tokens_limit, std::string end_user_header)
      : models_(std::move(models)), default_max_tokens_(default_max_tokens),
        max_tokens_limit_(max_tokens_limit), end_user_header_(std::move(end_user_header)) {}
  std::string_view name() const override { return "validate"; }
  std::unique_ptr<Filter> Create() const override;

  const std::set<std::string> models_;
  const int64_t default_max_tokens_;
  const int64_t max_tokens_limit_;
  const std::string end_user_header_;
};

}  // namespace moat::server
