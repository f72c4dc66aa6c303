#pragma once
// OfflineScanner: runs the online DetectionEngine over a historical request log in time order
// and aggregates what an investigator needs (per-account rows, campaigns, score distributions,
// actions over time) into a ScanReport. Memory: the per-account rows (they are the report), a
// bounded reorder window of events and fixed-size histograms; events are not kept.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "detect/engine.h"
#include "forensics/log_reader.h"
#include "moat/status.h"

namespace moat::forensics {

inline constexpr int kNumActions = 5;  // detect::Action values
inline constexpr int kScoreBins = 20;  // [0, 0.05), ..., [0.95, 1]
inline constexpr int kTimelineBins = 96;

// One subject (an account, or "account/end_user" when requests name an end user).
struct AccountRow {
  std::string subject;  // the engine's subject id
  std::string account, end_user;
  uint64_t requests = 0;
  uint64_t no_content = 0;           // requests whose prompt text was unavailable
  uint64_t restricted_requests = 0;  // requests whose verdict was not allow
  uint64_t logged_restricted = 0;    // requests the gateway itself restricted at the time
  double max_score = 0, last_score = 0;
  detect::Action final_action = detect::Action::kAllow;  // verdict on its last request
  detect::Action worst_action = detect::Action::kAllow;
  bool restricted = false;  // still restricted by the engine at the end of the log
  std::string campaign_id;  // its campaign at the end ("" none)
  int64_t first_seen_ns = 0, last_seen_ns = 0, first_flagged_ns = 0;
  double distinct_ips = 0;
  std::map<std::string, uint32_t> reason_counts;  // reason code -> restricted verdicts naming it
  std::vector<std::string> last_reasons;          // full reasons of its last restricted verdict
};

struct CampaignRow {
  detect::CampaignInfo info;         // the engine's view at the end (or when last seen)
  bool active_at_end = false;        // false: pruned by the engine as idle before the end
  std::vector<std::string> members;  // subjects of the report whose campaign this is
  uint64_t member_requests = 0;      // all requests of those members
};

struct BadLine {
  std::string source;
  uint64_t line = 0;
  std::string error;
};

struct ScanReport {
  std::vector<std::string> sources;
  uint64_t records_read = 0;     // parsed records
  uint64_t records_scanned = 0;  // observed by the engine
  uint64_t bad_lines = 0;
  std::vector<BadLine> bad_line_samples;  // the first ScanOptions::max_bad_line_samples
  uint64_t skipped_no_account = 0;        // e.g. failed authentication in an audit log
  uint64_t no_content = 0;                // scanned without prompt text (retention)
  uint64_t out_of_order = 0;              // older than the reorder window allowed; time clamped
  uint64_t audit_format = 0, generic_format = 0;
  int64_t first_ns = 0, last_ns = 0;
  double elapsed_s = 0;
  std::array<uint64_t, kNumActions> actions{};            // verdicts by action
  std::array<uint64_t, kScoreBins> request_scores{};      // account score at each request
  std::array<uint64_t, kScoreBins> account_max_scores{};  // per subject max score
  int64_t timeline_start_ns = 0, timeline_bin_ns = 0;
  std::vector<std::array<uint64_t, kNumActions>> timeline;  // verdicts per time bin
  std::vector<AccountRow> accounts;    // sorted by max score, then requests (descending)
  std::vector<CampaignRow> campaigns;  // sorted by members, then score (descending)
  uint64_t restricted_subjects = 0;    // subjects with any restricted verdict
};

struct ScanOptions {
  detect::DetectionConfig detection;
  size_t reorder_window = 4096;  // events buffered to fix local disorder
  size_t max_bad_line_samples = 100;
  int64_t campaign_snapshot_ns = 3600LL * 1'000'000'000;  // log time between campaign snapshots
};

class OfflineScanner {
 public:
  explicit OfflineScanner(ScanOptions options = {});
  ~OfflineScanner();

  // Buffers one record; observes the oldest buffered ones once the window is full.
  void Add(LogRecord record);
  // Counts a malformed input line (kept as a sample up to max_bad_line_samples).
  void AddBadLine(const std::string& source, uint64_t line, const std::string& error);
  // Reads every record of `source`, calling `progress(source)` about every 1024 records.
  // Bad lines are counted and skipped; other read errors are returned.
  Status AddSource(LogSource& source, const std::function<void(const LogSource&)>& progress = {});
  // Drains the window and builds the report. Call once.
  ScanReport Finish();

  uint64_t records_scanned() const { return report_.records_scanned; }
  uint64_t records_read() const { return report_.records_read; }
  const detect::DetectionEngine& engine() const { return *engine_; }

 private:
  struct Pending {
    int64_t time_ns;
    uint64_t order;
    std::shared_ptr<LogRecord> record;
    bool operator>(const Pending& o) const {
      return time_ns != o.time_ns ? time_ns > o.time_ns : order > o.order;
    }
  };
  void Observe(LogRecord& record);
  void AddToTimeline(int64_t t, detect::Action action);
  void SnapshotCampaigns(bool at_end);

  ScanOptions options_;
  std::unique_ptr<detect::DetectionEngine> engine_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> window_;
  uint64_t order_ = 0;
  int64_t last_observed_ns_ = INT64_MIN;
  int64_t next_snapshot_ns_ = INT64_MIN;
  std::unordered_map<std::string, size_t> row_index_;
  std::vector<AccountRow> rows_;
  std::map<std::string, CampaignRow> campaigns_;  // by id, every snapshot merged
  ScanReport report_;
  std::chrono::steady_clock::time_point started_;  // when the scan began (report_.elapsed_s)
};

}  // namespace moat::forensics
