#pragma once
// AuthFilter: the first pipeline stage. Resolves the presented API key to an account through
// the AccountStore's in-memory snapshot (no disk I/O) and fills the account fields of the
// RequestContext; answers 401 in the OpenAI format otherwise.

#include "common/metrics.h"
#include "moat/filter.h"
#include "store/account_store.h"

namespace moat::filters {

class AuthFilterFactory final : public FilterFactory {
 public:
  AuthFilterFactory(const store::AccountStore* accounts, MetricsRegistry* metrics);
  std::string_view name() const override { return "auth"; }
  std::unique_ptr<Filter> Create() const override;

  const store::AccountStore* accounts() const { return accounts_; }
  Family<Counter>& failures() const { return *failures_; }

 private:
  const store::AccountStore* accounts_;
  Family<Counter>* failures_;
};

}  // namespace moat::filters
