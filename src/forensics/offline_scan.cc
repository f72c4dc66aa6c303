#include "forensics/offline_scan.h"

#include <algorithm>
#include <chrono>
#include <set>

namespace moat::forensics {
namespace {

int ScoreBin(double score) {
  return std::clamp(static_cast<int>(score * kScoreBins), 0, kScoreBins - 1);
}

// "cot_elicitation:4.50" -> "cot_elicitation"; "linked:a,b via x" -> "linked".
std::string ReasonCode(const std::string& reason) {
  return reason.substr(0, reason.find_first_of(":( "));
}

std::string SubjectOf(const detect::RequestEvent& e) {
  return e.end_user.empty() ? e.account_id : e.account_id + "/" + e.end_user;
}

bool LoggedRestricted(const std::string& action) { return !action.empty() && action != "allow"; }

}  // namespace

OfflineScanner::OfflineScanner(ScanOptions options)
    : options_(std::move(options)),
      engine_(std::make_unique<detect::DetectionEngine>(options_.detection)),
      started_(std::chrono::steady_clock::now()) {
  report_.timeline.assign(kTimelineBins, {});
}

OfflineScanner::~OfflineScanner() = default;

void OfflineScanner::Add(LogRecord record) {
  ++report_.records_read;
  (record.format == LogFormat::kAuditExport ? report_.audit_format : report_.generic_format)++;
  if (record.event.account_id.empty()) {
    ++report_.skipped_no_account;
    return;
  }
  const int64_t t = record.event.time_ns;
  window_.push(Pending{t, order_++, std::make_shared<LogRecord>(std::move(record))});
  while (window_.size() > std::max<size_t>(options_.reorder_window, 1)) {
    auto rec = window_.top().record;
    window_.pop();
    Observe(*rec);
  }
}

void OfflineScanner::AddBadLine(const std::string& source, uint64_t line,
                                const std::string& error) {
  ++report_.bad_lines;
  if (report_.bad_line_samples.size() < options_.max_bad_line_samples)
    report_.bad_line_samples.push_back(BadLine{source, line, error});
}

Status OfflineScanner::AddSource(LogSource& source,
                                 const std::function<void(const LogSource&)>& progress) {
  report_.sources.push_back(source.name());
  LogRecord rec;
  uint64_t n = 0;
  for (;;) {
    uint64_t bad = 0;
    StatusOr<bool> got = source.Next(&rec, &bad);
    if (!got.ok()) {
      if (got.status().code() != StatusCode::kInvalidArgument) return got.status();
      AddBadLine(source.name(), bad, got.status().message());
      continue;
    }
    if (!*got) break;
    Add(std::move(rec));
    if (progress && (++n & 1023) == 0) progress(source);
  }
  if (progress) progress(source);
  return Status::Ok();
}

void OfflineScanner::Observe(LogRecord& record) {
  detect::RequestEvent& e = record.event;
  if (e.time_ns < last_observed_ns_) {
    // Older than everything the window could reorder: the engine's decays need time to move
    // forward, so the record is judged at the latest time seen.
    ++report_.out_of_order;
    e.time_ns = last_observed_ns_;
  }
  last_observed_ns_ = e.time_ns;
  if (report_.records_scanned == 0) {
    report_.first_ns = e.time_ns;
    next_snapshot_ns_ = e.time_ns + options_.campaign_snapshot_ns;
  }
  report_.last_ns = e.time_ns;
  if (e.time_ns >= next_snapshot_ns_) {
    SnapshotCampaigns(false);
    next_snapshot_ns_ = e.time_ns + options_.campaign_snapshot_ns;
  }

  const detect::Verdict v = engine_->Observe(e);
  ++report_.records_scanned;
  if (!record.has_content) ++report_.no_content;
  ++report_.actions[static_cast<int>(v.action)];
  ++report_.request_scores[ScoreBin(v.account_score)];
  AddToTimeline(e.time_ns, v.action);

  std::string subject = SubjectOf(e);
  auto [it, inserted] = row_index_.try_emplace(subject, rows_.size());
  if (inserted) {
    AccountRow row;
    row.subject = std::move(subject);
    row.account = e.account_id;
    row.end_user = e.end_user;
    row.first_seen_ns = e.time_ns;
    rows_.push_back(std::move(row));
  }
  AccountRow& row = rows_[it->second];
  ++row.requests;
  if (!record.has_content) ++row.no_content;
  if (LoggedRestricted(record.logged_action)) ++row.logged_restricted;
  row.last_seen_ns = e.time_ns;
  row.last_score = v.account_score;
  row.max_score = std::max(row.max_score, v.account_score);
  row.final_action = v.action;
  row.worst_action = std::max(row.worst_action, v.action);
  if (v.action != detect::Action::kAllow) {
    // An allowed verdict may name the campaign its keys touch; only restricted subjects join one.
    if (!v.campaign_id.empty()) row.campaign_id = v.campaign_id;
    ++row.restricted_requests;
    if (row.first_flagged_ns == 0) row.first_flagged_ns = e.time_ns;
    for (const auto& r : v.reasons) {
      std::string code = ReasonCode(r);
      if (code != "score") ++row.reason_counts[code];
    }
    row.last_reasons = v.reasons;
  }
}

void OfflineScanner::AddToTimeline(int64_t t, detect::Action action) {
  if (report_.timeline_bin_ns == 0) {
    report_.timeline_start_ns = t;
    report_.timeline_bin_ns = 60LL * 1'000'000'000;  // one minute, doubled as the log grows
  }
  while (t - report_.timeline_start_ns >= report_.timeline_bin_ns * kTimelineBins) {
    auto& bins = report_.timeline;
    for (int i = 0; i < kTimelineBins; ++i) {
      std::array<uint64_t, kNumActions> merged{};
      if (2 * i < kTimelineBins) {
        for (int a = 0; a < kNumActions; ++a) {
          merged[a] = bins[2 * i][a] + (2 * i + 1 < kTimelineBins ? bins[2 * i + 1][a] : 0);
        }
      }
      bins[i] = merged;
    }
    report_.timeline_bin_ns *= 2;
  }
  const int64_t bin = (t - report_.timeline_start_ns) / report_.timeline_bin_ns;
  ++report_.timeline[static_cast<size_t>(bin)][static_cast<int>(action)];
}

void OfflineScanner::SnapshotCampaigns(bool at_end) {
  for (auto& info : engine_->Campaigns()) {
    CampaignRow& row = campaigns_[info.id];
    row.info = std::move(info);
    row.active_at_end = at_end;
  }
}

ScanReport OfflineScanner::Finish() {
  while (!window_.empty()) {
    auto rec = window_.top().record;
    window_.pop();
    Observe(*rec);
  }
  SnapshotCampaigns(true);
  // Campaigns that vanished before the end were either merged into another (their members now
  // report the survivor) or pruned as idle (kept: their members still name them).
  std::set<std::string> final_ids;
  for (const auto& [id, c] : campaigns_) {
    if (c.active_at_end) final_ids.insert(id);
  }

  for (AccountRow& row : rows_) {
    if (auto a = engine_->Account(row.subject)) {
      row.restricted = a->restricted;
      row.distinct_ips = a->distinct_ips;
      row.max_score = std::max(row.max_score, a->peak_score);
      if (!a->campaign_id.empty()) row.campaign_id = a->campaign_id;  // its union-find root
    }
    if (!row.campaign_id.empty() && !final_ids.count(row.campaign_id)) {
      // The campaign the row last named was merged away: find the surviving one that lists it.
      for (const auto& id : final_ids) {
        const auto& sample = campaigns_[id].info.sample_members;
        if (std::find(sample.begin(), sample.end(), row.subject) != sample.end()) {
          row.campaign_id = id;
          break;
        }
      }
    }
    if (row.restricted_requests > 0) ++report_.restricted_subjects;
    ++report_.account_max_scores[ScoreBin(row.max_score)];
    if (!row.campaign_id.empty()) {
      CampaignRow& c = campaigns_[row.campaign_id];
      if (c.info.id.empty()) c.info.id = row.campaign_id;  // named by a verdict, never snapshot
      c.members.push_back(row.subject);
      c.member_requests += row.requests;
    }
  }
  for (auto& [id, c] : campaigns_) {
    if (c.members.empty() && !c.active_at_end) continue;  // merged into another campaign
    report_.campaigns.push_back(std::move(c));
  }
  campaigns_.clear();
  std::sort(report_.campaigns.begin(), report_.campaigns.end(), [](const auto& a, const auto& b) {
    if (a.members.size() != b.members.size()) return a.members.size() > b.members.size();
    return a.info.score > b.info.score;
  });
  std::sort(rows_.begin(), rows_.end(), [](const AccountRow& a, const AccountRow& b) {
    if (a.max_score != b.max_score) return a.max_score > b.max_score;
    if (a.requests != b.requests) return a.requests > b.requests;
    return a.subject < b.subject;
  });
  row_index_.clear();
  report_.accounts = std::move(rows_);
  report_.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return std::move(report_);
}

}  // namespace moat::forensics
