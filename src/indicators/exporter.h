#pragma once
// Builds the indicators of an export from the audit log: the keys (indicator_keys.h) that the
// accounts this gateway restricted used, and that accounts it did not restrict rarely used.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "indicators/indicator_keys.h"
#include "indicators/stix.h"
#include "moat/status.h"

namespace moat::indicators {

struct ExportOptions {
  int64_t since_ns = 0;
  int64_t until_ns = INT64_MAX;
  // A key is exported when at least min_subjects restricted accounts used it and they are at
  // least min_share of the accounts that used it; work-queue items (each asked once by a
  // queue) need min_item_subjects restricted accounts and no unrestricted one.
  uint32_t min_subjects = 2;
  double min_share = 0.8;
  uint32_t min_item_subjects = 1;
  size_t max_per_kind = 500;  // the best-supported keys of each kind
  std::set<IndicatorKind> kinds = {IndicatorKind::kNetworkPrefix, IndicatorKind::kClientFingerprint,
                                   IndicatorKind::kTemplatePrefix, IndicatorKind::kTemplateSuffix,
                                   IndicatorKind::kWorkQueueItem};
};

struct ExportResult {
  std::vector<IndicatorRecord> records;
  uint64_t requests = 0, restricted_requests = 0;
  size_t restricted_accounts = 0;
  int64_t first_restricted_ns = 0, last_restricted_ns = 0;
};

// Reads the audit database `audit_db` (read-only) and derives the indicators. Confidence:
// round(100 * share * n / (n + 1)) for a key n restricted accounts used (share: their part of
// every account that used it).
StatusOr<ExportResult> ExportIndicators(const std::string& audit_db, const IndicatorHasher& hasher,
                                        const ExportOptions& options);

}  // namespace moat::indicators
