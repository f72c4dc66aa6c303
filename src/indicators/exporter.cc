#include "indicators/exporter.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "detect/features.h"
#include "forensics/log_reader.h"

namespace moat::indicators {
namespace {

struct KeyUse {
  std::unordered_set<std::string> restricted, all;
  int64_t first_ns = 0, last_ns = 0;
};

// A table key: the kind and its value string.
std::string TableKey(IndicatorKind kind, const std::string& value) {
  return std::string(1, static_cast<char>('0' + static_cast<int>(kind))) + value;
}

}  // namespace

StatusOr<ExportResult> ExportIndicators(const std::string& audit_db, const IndicatorHasher& hasher,
                                        const ExportOptions& options) {
  MOAT_ASSIGN_OR_RETURN(auto source, forensics::OpenAuditStoreSource(audit_db));
  ExportResult result;
  std::unordered_map<std::string, KeyUse> uses;
  std::unordered_set<std::string> restricted_accounts;
  forensics::LogRecord rec;
  for (;;) {
    uint64_t bad_line = 0;
    auto next = source->Next(&rec, &bad_line);
    if (!next.ok()) {
      if (next.status().code() == StatusCode::kInvalidArgument) continue;  // a record it cannot use
      return next.status();
    }
    if (!*next) break;
    const detect::RequestEvent& e = rec.event;
    if (e.time_ns < options.since_ns || e.time_ns >= options.until_ns || e.account_id.empty()) continue;
    ++result.requests;
    const bool restricted = !rec.logged_action.empty() && rec.logged_action != "allow";
    if (restricted) {
      ++result.restricted_requests;
      restricted_accounts.insert(e.account_id);
      if (result.first_restricted_ns == 0) result.first_restricted_ns = e.time_ns;
      result.last_restricted_ns = std::max(result.last_restricted_ns, e.time_ns);
    }
    const detect::RequestFeatures f = detect::Extract(e);
    const RequestKeys keys = RequestKeysOf(e, f);
    auto note = [&](IndicatorKind kind, const std::string& value) {
      if (value.empty() || !options.kinds.contains(kind)) return;
      KeyUse& u = uses[TableKey(kind, value)];
      u.all.insert(e.account_id);
      if (restricted) u.restricted.insert(e.account_id);
      if (u.first_ns == 0) u.first_ns = e.time_ns;
      u.last_ns = std::max(u.last_ns, e.time_ns);
    };
    if (auto cidr = PrefixToCidr(keys.network_prefix)) note(IndicatorKind::kNetworkPrefix, *cidr);
    if (keys.client != 0) note(IndicatorKind::kClientFingerprint, Hex64(hasher.Hash(IndicatorKind::kClientFingerprint, keys.client)));
    if (keys.template_prefix != 0) {
      note(IndicatorKind::kTemplatePrefix, Hex64(hasher.Hash(IndicatorKind::kTemplatePrefix, keys.template_prefix)));
    }
    if (keys.template_suffix != 0) {
      note(IndicatorKind::kTemplateSuffix, Hex64(hasher.Hash(IndicatorKind::kTemplateSuffix, keys.template_suffix)));
    }
    if (keys.item.valid) {
      std::string v;
      for (uint32_t b : keys.item.band) {
        if (!v.empty()) v.push_back(' ');
        v += Hex64(hasher.Hash(IndicatorKind::kWorkQueueItem, b));
      }
      note(IndicatorKind::kWorkQueueItem, v);
    }
  }
  result.restricted_accounts = restricted_accounts.size();

  std::vector<std::vector<IndicatorRecord>> by_kind(kNumIndicatorKinds);
  for (const auto& [key, u] : uses) {
    const auto kind = static_cast<IndicatorKind>(key[0] - '0');
    const size_t n = u.restricted.size();
    const double share = static_cast<double>(n) / static_cast<double>(u.all.size());
    const bool item = kind == IndicatorKind::kWorkQueueItem;
    if (item ? (n < options.min_item_subjects || n != u.all.size()) : (n < options.min_subjects || share < options.min_share)) {
      continue;
    }
    IndicatorRecord r;
    r.kind = kind;
    r.value = key.substr(1);
    r.subjects = static_cast<uint32_t>(n);
    r.all_subjects = static_cast<uint32_t>(u.all.size());
    r.confidence = static_cast<int>(std::lround(100.0 * share * static_cast<double>(n) / static_cast<double>(n + 1)));
    r.first_seen_ns = u.first_ns;
    r.last_seen_ns = u.last_ns;
    by_kind[static_cast<size_t>(kind)].push_back(std::move(r));
  }
  for (auto& list : by_kind) {
    std::sort(list.begin(), list.end(), [](const IndicatorRecord& a, const IndicatorRecord& b) {
      return a.subjects != b.subjects ? a.subjects > b.subjects : a.value < b.value;
    });
    if (list.size() > options.max_per_kind) list.resize(options.max_per_kind);
    for (auto& r : list) result.records.push_back(std::move(r));
  }
  return result;
}

}  // namespace moat::indicators
