#include "indicators/indicator_set.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <boost/json.hpp>

#include "common/file_contents.h"
#include "common/private_files.h"
#include "indicators/stix.h"

namespace moat::indicators {
namespace json = boost::json;
namespace fs = std::filesystem;
namespace {

constexpr int64_t kDayNs = 86'400LL * 1'000'000'000LL;

// Splits "h1 h2 ... h8" into keyed band hashes.
bool ParseBands(std::string_view v, std::array<uint64_t, detect::kCorpusBands>* out) {
  int n = 0;
  size_t pos = 0;
  while (pos < v.size()) {
    size_t sp = v.find(' ', pos);
    if (sp == std::string_view::npos) sp = v.size();
    auto h = ParseHex64(v.substr(pos, sp - pos));
    if (!h || n >= detect::kCorpusBands) return false;
    (*out)[n++] = *h;
    pos = sp + 1;
  }
  return n == detect::kCorpusBands;
}

}  // namespace

std::vector<ImportedIndicator> ReadIndicators(const json::value& bundle, const std::string& salt_id,
                                              const ImportOptions& options, int64_t now_ns,
                                              ImportSummary* summary) {
  std::vector<ImportedIndicator> out;
  const auto* objects = bundle.as_object().if_contains("objects");
  if (objects == nullptr) return out;
  const int64_t import_end = options.imported_ns + static_cast<int64_t>(options.expiry_days * kDayNs);
  for (const json::value& v : objects->as_array()) {
    const json::object& o = v.as_object();
    if (o.at("type").as_string() != "indicator") continue;
    if (o.at("pattern_type").as_string() != "stix") {
      ++summary->unsupported;
      continue;
    }
    auto comparisons = ParsePattern(o.at("pattern").as_string());
    // moat matches single-comparison patterns of its own kinds.
    if (!comparisons.ok() || comparisons->size() != 1) {
      ++summary->unsupported;
      continue;
    }
    const PatternComparison& c = comparisons->front();
    ImportedIndicator ind;
    ind.stix_id = std::string(o.at("id").as_string());
    if (auto* name = o.if_contains("name"); name && name->is_string()) ind.name = std::string(name->as_string());
    bool keyed = true;
    if ((c.object_type == "ipv4-addr" || c.object_type == "ipv6-addr") && c.property == "value" &&
        (c.op == "ISSUBSET" || c.op == "=")) {
      auto prefix = CidrToPrefix(c.value);
      if (!prefix) {
        ++summary->unsupported;
        continue;
      }
      ind.kind = IndicatorKind::kNetworkPrefix;
      ind.network_prefix = *prefix;
      keyed = false;
    } else if (c.object_type == "x-moat-request" && c.op == "=") {
      if (c.property == "client_fingerprint") {
        ind.kind = IndicatorKind::kClientFingerprint;
      } else if (c.property == "template_prefix") {
        ind.kind = IndicatorKind::kTemplatePrefix;
      } else if (c.property == "template_suffix") {
        ind.kind = IndicatorKind::kTemplateSuffix;
      } else if (c.property == "item_sketch") {
        ind.kind = IndicatorKind::kWorkQueueItem;
      } else {
        ++summary->unsupported;
        continue;
      }
      bool parsed;
      if (ind.kind == IndicatorKind::kWorkQueueItem) {
        parsed = ParseBands(c.value, &ind.bands);
        if (auto* m = o.if_contains("x_moat_min_band_matches"); m && m->is_int64()) {
          ind.min_band_matches = static_cast<int>(std::clamp<int64_t>(m->as_int64(), 1, detect::kCorpusBands));
        }
      } else {
        auto h = ParseHex64(c.value);
        parsed = h.has_value();
        if (h) ind.hash = *h;
      }
      if (!parsed) {
        ++summary->unsupported;
        continue;
      }
    } else {
      ++summary->unsupported;
      continue;
    }
    if (keyed) {
      auto* sid = o.if_contains("x_moat_salt_id");
      if (sid == nullptr || !sid->is_string() || sid->as_string() != salt_id) {
        ++summary->other_salt;
        continue;
      }
    }
    if (auto* conf = o.if_contains("confidence")) {
      ind.confidence = static_cast<int>(conf->is_int64() ? conf->as_int64() : static_cast<int64_t>(conf->as_uint64()));
    }
    ind.valid_from_ns = *ParseStixTimestamp(o.at("valid_from").as_string());
    ind.valid_until_ns = import_end;
    if (auto* until = o.if_contains("valid_until")) {
      ind.valid_until_ns = std::min(ind.valid_until_ns, *ParseStixTimestamp(until->as_string()));
    }
    if (ind.valid_until_ns <= now_ns) {
      ++summary->expired;
      continue;
    }
    ind.weight = static_cast<float>(options.weight * ind.confidence / 100.0);
    ++summary->indicators;
    out.push_back(std::move(ind));
  }
  return out;
}

IndicatorSet::IndicatorSet(std::vector<ImportedIndicator> indicators, std::shared_ptr<const IndicatorHasher> hasher)
    : indicators_(std::move(indicators)), hasher_(std::move(hasher)) {
  for (uint32_t i = 0; i < indicators_.size(); ++i) {
    const ImportedIndicator& ind = indicators_[i];
    keys_.push_back(detect::IndicatorKeyOf(ind.stix_id));
    by_key_.emplace(keys_.back(), i);
    switch (ind.kind) {
      case IndicatorKind::kNetworkPrefix: networks_[ind.network_prefix].push_back(i); break;
      case IndicatorKind::kWorkQueueItem:
        for (uint64_t b : ind.bands) bands_[b].push_back(i);
        break;
      default: keyed_[static_cast<size_t>(ind.kind)][ind.hash].push_back(i); break;
    }
  }
}

void IndicatorSet::Consider(uint32_t index, int64_t now_ns, std::optional<detect::IndicatorHit>* best) const {
  const ImportedIndicator& ind = indicators_[index];
  if (now_ns < ind.valid_from_ns || now_ns >= ind.valid_until_ns) return;
  if (!*best || ind.weight > (*best)->weight) *best = detect::IndicatorHit{keys_[index], ind.weight};
}

std::optional<detect::IndicatorHit> IndicatorSet::Match(const detect::RequestEvent& event,
                                                        const detect::RequestFeatures& f, int64_t now_ns) const {
  std::optional<detect::IndicatorHit> best;
  if (indicators_.empty()) return best;
  const RequestKeys keys = RequestKeysOf(event, f);
  if (!networks_.empty() && !keys.network_prefix.empty()) {
    if (auto it = networks_.find(keys.network_prefix); it != networks_.end()) {
      for (uint32_t i : it->second) Consider(i, now_ns, &best);
    }
  }
  const std::pair<IndicatorKind, uint64_t> keyed[] = {{IndicatorKind::kClientFingerprint, keys.client},
                                                      {IndicatorKind::kTemplatePrefix, keys.template_prefix},
                                                      {IndicatorKind::kTemplateSuffix, keys.template_suffix}};
  for (const auto& [kind, raw] : keyed) {
    const auto& table = keyed_[static_cast<size_t>(kind)];
    if (raw == 0 || table.empty()) continue;
    if (auto it = table.find(hasher_->Hash(kind, raw)); it != table.end()) {
      for (uint32_t i : it->second) Consider(i, now_ns, &best);
    }
  }
  if (!bands_.empty() && keys.item.valid) {
    // Votes per item over the request's bands; an item matches with enough of them.
    std::array<std::pair<uint32_t, int>, detect::kCorpusBands * 4> votes{};
    int n = 0;
    for (uint32_t band : keys.item.band) {
      auto it = bands_.find(hasher_->Hash(IndicatorKind::kWorkQueueItem, band));
      if (it == bands_.end()) continue;
      for (uint32_t i : it->second) {
        int k = 0;
        while (k < n && votes[k].first != i) ++k;
        if (k == n) {
          if (n == static_cast<int>(votes.size())) continue;
          votes[n++] = {i, 0};
        }
        if (++votes[k].second == indicators_[i].min_band_matches) Consider(i, now_ns, &best);
      }
    }
  }
  return best;
}

std::optional<float> IndicatorSet::WeightAt(uint32_t key, int64_t now_ns) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  const ImportedIndicator& ind = indicators_[it->second];
  if (now_ns >= ind.valid_until_ns) return std::nullopt;
  return ind.weight;
}

std::string IndicatorSet::Describe(uint32_t key) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return "";
  const ImportedIndicator& ind = indicators_[it->second];
  return ind.stix_id + " (" + std::string(KindName(ind.kind)) + (ind.name.empty() ? "" : ": " + ind.name) + ")";
}

StatusOr<std::string> ImportBundle(const std::string& dir, const std::string& bundle_text,
                                   const ImportOptions& options) {
  json::value bundle;
  try {
    bundle = json::parse(bundle_text);
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("indicator bundle is not JSON: ") + e.what());
  }
  MOAT_RETURN_IF_ERROR(ValidateBundle(bundle));
  if (!(options.weight >= 0 && options.weight <= 20)) return InvalidArgumentError("weight must be in [0, 20]");
  if (!(options.expiry_days > 0 && options.expiry_days <= 3650)) return InvalidArgumentError("expiry must be 0-3650 days");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return UnavailableError("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  const std::string id(bundle.as_object().at("id").as_string());
  const fs::path base = fs::path(dir) / id;
  json::object settings{{"weight", options.weight},
                        {"expiry_days", options.expiry_days},
                        {"imported", StixTimestamp(options.imported_ns)}};
  // The settings first: a bundle without them is not loaded, so a crash between the two
  // writes leaves nothing half-imported.
  MOAT_RETURN_IF_ERROR(CreateNewFile(base.string() + ".import.json", json::serialize(settings), 0600));
  MOAT_RETURN_IF_ERROR(CreateNewFile(base.string() + ".json", bundle_text, 0600));
  return id;
}

std::string IndicatorDirFingerprint(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code e1, e2;
    const auto size = entry.file_size(e1);
    const auto mtime = entry.last_write_time(e2).time_since_epoch().count();
    entries.push_back(entry.path().filename().string() + "/" + std::to_string(e1 ? 0 : size) + "/" +
                      std::to_string(e2 ? 0 : mtime));
  }
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const std::string& e : entries) out += e + "\n";
  return out;
}

StatusOr<std::vector<ImportedIndicator>> LoadIndicatorDir(const std::string& dir, const std::string& salt_id,
                                                          int64_t now_ns, ImportSummary* summary) {
  std::vector<ImportedIndicator> all;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return all;
  std::vector<fs::path> bundles;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 5 && name.ends_with(".json") && !name.ends_with(".import.json")) bundles.push_back(entry.path());
  }
  if (ec) return UnavailableError("cannot list " + dir + ": " + ec.message());
  std::sort(bundles.begin(), bundles.end());
  for (const fs::path& p : bundles) {
    fs::path settings_path = p;
    settings_path.replace_extension(".import.json");
    auto settings_text = ReadFileContents(settings_path.string(), "import settings");
    if (!settings_text.ok() || settings_text->empty()) continue;  // an interrupted import: ignored
    MOAT_ASSIGN_OR_RETURN(const std::string text, ReadFileContents(p.string(), "indicator bundle"));
    json::value bundle, settings;
    try {
      bundle = json::parse(text);
      settings = json::parse(*settings_text);
    } catch (const std::exception& e) {
      return InvalidArgumentError(p.string() + ": " + e.what());
    }
    if (Status s = ValidateBundle(bundle); !s.ok()) return InvalidArgumentError(p.string() + ": " + s.message());
    ImportOptions options;
    try {
      options.weight = json::value_to<double>(settings.at("weight"));
      options.expiry_days = json::value_to<double>(settings.at("expiry_days"));
      MOAT_ASSIGN_OR_RETURN(options.imported_ns, ParseStixTimestamp(settings.at("imported").as_string()));
    } catch (const std::exception& e) {
      return InvalidArgumentError(settings_path.string() + ": " + e.what());
    }
    auto part = ReadIndicators(bundle, salt_id, options, now_ns, summary);
    for (auto& ind : part) all.push_back(std::move(ind));
  }
  return all;
}

}  // namespace moat::indicators
