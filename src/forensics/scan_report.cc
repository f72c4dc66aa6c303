#include "forensics/scan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace moat::forensics {
namespace json = boost::json;

namespace {

constexpr const char* kActionColors[kNumActions] = {"#9ecae1", "#fdae6b", "#e6550d", "#a63603",
                                                    "#54278f"};

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string ActionStr(detect::Action a) { return std::string(detect::ActionName(a)); }

json::array Counts(const uint64_t* v, size_t n) {
  json::array a;
  for (size_t i = 0; i < n; ++i) a.push_back(v[i]);
  return a;
}

json::object CampaignJson(const CampaignRow& c) {
  json::object o;
  o["id"] = c.info.id;
  o["active_at_end"] = c.active_at_end;
  o["engine_members"] = c.info.members;
  o["engine_requests"] = c.info.requests;
  o["score"] = c.info.score;
  o["shift"] = c.info.shift;
  o["member_mass"] = c.info.member_mass;
  o["first_seen"] = c.info.first_seen_ns ? FormatTime(c.info.first_seen_ns) : "";
  o["last_seen"] = c.info.last_seen_ns ? FormatTime(c.info.last_seen_ns) : "";
  json::object links;
  for (int k = 0; k < detect::kNumLinkKinds; ++k) links[detect::LinkKindName(k)] = c.info.links[k];
  o["links"] = std::move(links);
  json::array sample;
  for (const auto& s : c.info.sample_members) sample.push_back(json::string(s));
  o["sample_members"] = std::move(sample);
  json::array members;
  for (const auto& s : c.members) members.push_back(json::string(s));
  o["members"] = std::move(members);
  o["member_count"] = c.members.size();
  o["member_requests"] = c.member_requests;
  return o;
}

// Top reason codes of a row, most frequent first.
std::vector<std::pair<std::string, uint32_t>> TopReasons(const AccountRow& r, size_t n) {
  std::vector<std::pair<std::string, uint32_t>> v(r.reason_counts.begin(), r.reason_counts.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (v.size() > n) v.resize(n);
  return v;
}

json::object AccountJson(const AccountRow& r) {
  json::object o;
  o["subject"] = r.subject;
  o["account"] = r.account;
  o["end_user"] = r.end_user;
  o["requests"] = r.requests;
  o["no_content_requests"] = r.no_content;
  o["restricted_requests"] = r.restricted_requests;
  o["logged_restricted_requests"] = r.logged_restricted;
  o["max_score"] = r.max_score;
  o["last_score"] = r.last_score;
  o["final_action"] = ActionStr(r.final_action);
  o["worst_action"] = ActionStr(r.worst_action);
  o["restricted"] = r.restricted;
  o["campaign_id"] = r.campaign_id;
  o["first_seen"] = FormatTime(r.first_seen_ns);
  o["last_seen"] = FormatTime(r.last_seen_ns);
  o["first_flagged"] = r.first_flagged_ns ? FormatTime(r.first_flagged_ns) : "";
  o["distinct_ips"] = std::round(r.distinct_ips * 10) / 10;
  json::object top;
  for (const auto& [code, n] : TopReasons(r, 6)) top[code] = n;
  o["top_reasons"] = std::move(top);
  json::array last;
  for (const auto& s : r.last_reasons) last.push_back(json::string(s));
  o["last_reasons"] = std::move(last);
  return o;
}

std::string Pct(uint64_t a, uint64_t b) {
  return b == 0 ? "0.0%"
                : fmt::format("{:.1f}%", 100.0 * static_cast<double>(a) / static_cast<double>(b));
}

std::string Truncate(std::string_view s, size_t n) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n - 1)) + "~";
}

// Horizontal bars: one row per campaign, accounts on the left panel, requests on the right.
std::string CampaignBarsSvg(const ScanReport& r, size_t max_rows) {
  const size_t n = std::min(max_rows, r.campaigns.size());
  if (n == 0) return "<p>No campaigns were found.</p>";
  const double label_w = 150, panel_w = 300, gap = 40, row_h = 18, top = 24;
  const double height = top + row_h * static_cast<double>(n) + 10;
  double max_members = 1, max_requests = 1;
  for (size_t i = 0; i < n; ++i) {
    max_members = std::max(max_members, static_cast<double>(r.campaigns[i].members.size()));
    max_requests = std::max(max_requests, static_cast<double>(r.campaigns[i].member_requests));
  }
  std::string s = fmt::format("<svg width='{}' height='{}' font-size='11'>",
                              label_w + 2 * panel_w + gap + 70, height);
  s += fmt::format("<text x='{}' y='14' font-weight='bold'>accounts</text>", label_w);
  s += fmt::format("<text x='{}' y='14' font-weight='bold'>requests</text>",
                   label_w + panel_w + gap);
  for (size_t i = 0; i < n; ++i) {
    const CampaignRow& c = r.campaigns[i];
    const double y = top + row_h * static_cast<double>(i);
    const double wm = (panel_w - 40) * static_cast<double>(c.members.size()) / max_members;
    const double wr = (panel_w - 40) * static_cast<double>(c.member_requests) / max_requests;
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{}</text>", label_w - 6, y + 12,
                     Escape(c.info.id));
    s += fmt::format("<rect x='{}' y='{:.1f}' width='{:.1f}' height='{}' fill='#d62728'/>", label_w,
                     y, std::max(1.0, wm), row_h - 4);
    s += fmt::format("<text x='{:.1f}' y='{:.1f}'>{}</text>", label_w + wm + 4, y + 12,
                     c.members.size());
    const double x2 = label_w + panel_w + gap;
    s += fmt::format("<rect x='{}' y='{:.1f}' width='{:.1f}' height='{}' fill='#1f77b4'/>", x2, y,
                     std::max(1.0, wr), row_h - 4);
    s += fmt::format("<text x='{:.1f}' y='{:.1f}'>{}</text>", x2 + wr + 4, y + 12,
                     c.member_requests);
  }
  return s + "</svg>";
}

// A histogram over [0, 1] with a log10(1 + count) vertical axis (restricted tails are small).
std::string HistogramSvg(const std::array<uint64_t, kScoreBins>& bins, const std::string& title,
                         const std::string& color) {
  const double w = 420, h = 200, l = 45, b = 35, t = 22;
  double max_log = 1;
  for (uint64_t v : bins) max_log = std::max(max_log, std::log10(1.0 + static_cast<double>(v)));
  std::string s = fmt::format("<svg width='{}' height='{}' font-size='11'>", w + 10, h + b + t);
  s += fmt::format("<text x='{}' y='14' font-weight='bold'>{}</text>", l, Escape(title));
  const double bw = (w - l) / kScoreBins;
  for (int p = 0; p <= static_cast<int>(std::ceil(max_log)); ++p) {
    const double y = t + h - h * p / max_log;
    if (y < t - 0.5) break;
    s += fmt::format("<line x1='{}' x2='{}' y1='{:.1f}' y2='{:.1f}' stroke='#eee'/>", l, w, y, y);
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{}</text>", l - 4, y + 4,
                     p == 0 ? std::string("0") : fmt::format("1e{}", p));
  }
  for (int i = 0; i < kScoreBins; ++i) {
    const double bh = h * std::log10(1.0 + static_cast<double>(bins[i])) / max_log;
    s += fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' "
        "fill='{}'><title>{:.2f}-{:.2f}: "
        "{}</title></rect>",
        l + bw * i + 1, t + h - bh, bw - 2, bh, color, i / double(kScoreBins),
        (i + 1) / double(kScoreBins), bins[i]);
  }
  for (int i = 0; i <= 4; ++i) {
    s += fmt::format("<text x='{:.1f}' y='{}' text-anchor='middle'>{:.2f}</text>",
                     l + (w - l) * i / 4, t + h + 14, i / 4.0);
  }
  s += fmt::format("<text x='{}' y='{}' text-anchor='middle'>score (count on a log scale)</text>",
                   (l + w) / 2, t + h + 30);
  return s + "</svg>";
}

// Stacked bars of verdicts per time bin.
std::string TimelineSvg(const ScanReport& r) {
  int used = 0;
  uint64_t max_total = 1;
  for (int i = 0; i < static_cast<int>(r.timeline.size()); ++i) {
    uint64_t tot = 0;
    for (uint64_t v : r.timeline[i]) tot += v;
    if (tot > 0) used = i + 1;
    max_total = std::max(max_total, tot);
  }
  if (used == 0) return "<p>No requests.</p>";
  const double w = 860, h = 220, l = 55, b = 40, t = 10, legend = 110;
  std::string s = fmt::format("<svg width='{}' height='{}' font-size='11'>", w + legend, h + b + t);
  const double bw = (w - l) / used;
  for (int p = 0; p <= 4; ++p) {
    const double y = t + h - h * p / 4;
    s += fmt::format("<line x1='{}' x2='{}' y1='{:.1f}' y2='{:.1f}' stroke='#eee'/>", l, w, y, y);
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{:.0f}</text>", l - 4, y + 4,
                     static_cast<double>(max_total) * p / 4);
  }
  for (int i = 0; i < used; ++i) {
    double y = t + h;
    for (int a = 0; a < kNumActions; ++a) {
      const uint64_t v = r.timeline[i][a];
      if (v == 0) continue;
      const double bh = h * static_cast<double>(v) / static_cast<double>(max_total);
      y -= bh;
      s += fmt::format(
          "<rect x='{:.1f}' y='{:.1f}' width='{:.2f}' height='{:.2f}' fill='{}'><title>{}: {} "
          "{}</title></rect>",
          l + bw * i, y, std::max(0.5, bw - 0.5), bh, kActionColors[a],
          FormatTime(r.timeline_start_ns + r.timeline_bin_ns * i), v,
          ActionStr(static_cast<detect::Action>(a)));
    }
  }
  for (int i = 0; i <= 3; ++i) {
    const int bin = used * i / 3;
    s += fmt::format("<text x='{:.1f}' y='{}' text-anchor='{}'>{}</text>", l + bw * bin, t + h + 14,
                     i == 0   ? "start"
                     : i == 3 ? "end"
                              : "middle",
                     FormatTime(r.timeline_start_ns + r.timeline_bin_ns * bin));
  }
  s += fmt::format(
      "<text x='{}' y='{}' text-anchor='middle'>requests per {:.0f} s bin, by verdict (UTC)</text>",
      (l + w) / 2, t + h + 32, static_cast<double>(r.timeline_bin_ns) / 1e9);
  for (int a = 0; a < kNumActions; ++a) {
    s += fmt::format("<rect x='{}' y='{}' width='10' height='10' fill='{}'/>", w + 10, t + 16 * a,
                     kActionColors[a]);
    s += fmt::format("<text x='{}' y='{}'>{}</text>", w + 24, t + 16 * a + 9,
                     ActionStr(static_cast<detect::Action>(a)));
  }
  return s + "</svg>";
}

}  // namespace

std::string FormatTime(int64_t ns) {
  const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json::object ReportToJson(const ScanReport& r, size_t max_accounts) {
  json::object o;
  json::array sources;
  for (const auto& s : r.sources) sources.push_back(json::string(s));
  o["sources"] = std::move(sources);
  json::object rec;
  rec["read"] = r.records_read;
  rec["scanned"] = r.records_scanned;
  rec["bad_lines"] = r.bad_lines;
  rec["skipped_no_account"] = r.skipped_no_account;
  rec["no_content"] = r.no_content;
  rec["out_of_order"] = r.out_of_order;
  rec["audit_export_format"] = r.audit_format;
  rec["generic_format"] = r.generic_format;
  o["records"] = std::move(rec);
  json::array bad;
  for (const auto& b : r.bad_line_samples) {
    bad.push_back(json::object{{"source", b.source}, {"line", b.line}, {"error", b.error}});
  }
  o["bad_line_samples"] = std::move(bad);
  o["first_time"] = r.records_scanned ? FormatTime(r.first_ns) : "";
  o["last_time"] = r.records_scanned ? FormatTime(r.last_ns) : "";
  o["first_time_ns"] = r.first_ns;
  o["last_time_ns"] = r.last_ns;
  o["elapsed_s"] = r.elapsed_s;
  json::object actions;
  for (int a = 0; a < kNumActions; ++a)
    actions[ActionStr(static_cast<detect::Action>(a))] = r.actions[a];
  o["actions"] = std::move(actions);
  o["subjects"] = r.accounts.size();
  o["restricted_subjects"] = r.restricted_subjects;
  json::object hist;
  hist["bins"] = kScoreBins;
  hist["requests"] = Counts(r.request_scores.data(), kScoreBins);
  hist["accounts_max"] = Counts(r.account_max_scores.data(), kScoreBins);
  o["score_histogram"] = std::move(hist);
  json::object tl;
  tl["start"] = FormatTime(r.timeline_start_ns);
  tl["start_ns"] = r.timeline_start_ns;
  tl["bin_ns"] = r.timeline_bin_ns;
  json::array bins;
  for (const auto& b : r.timeline) bins.push_back(Counts(b.data(), kNumActions));
  while (!bins.empty() &&
         std::all_of(bins.back().as_array().begin(), bins.back().as_array().end(),
                     [](const json::value& v) { return v.to_number<uint64_t>() == 0; }))
    bins.pop_back();
  tl["actions"] = json::array{"allow", "throttle", "degrade", "step_up", "block"};
  tl["bins"] = std::move(bins);
  o["timeline"] = std::move(tl);
  json::array camps;
  for (const auto& c : r.campaigns) camps.push_back(CampaignJson(c));
  o["campaigns"] = std::move(camps);
  json::array accts;
  for (const auto& a : r.accounts) {
    if (max_accounts != 0 && accts.size() >= max_accounts) break;
    accts.push_back(AccountJson(a));
  }
  o["accounts"] = std::move(accts);
  return o;
}

std::string ReportToHtml(const ScanReport& r, size_t max_accounts) {
  std::string h =
      "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>moat offline audit"
      "</title><style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:"
      "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:"
      "left}th{background:#f3f3f3}.r{text-align:right}.flag{color:#b00;font-weight:bold}small{"
      "color:#666}</style></head><body>\n<h1>moat offline audit</h1>\n";
  h += "<p>Sources: ";
  for (size_t i = 0; i < r.sources.size(); ++i) h += (i ? ", " : "") + Escape(r.sources[i]);
  h += fmt::format(". Log time {} to {}.</p>\n", FormatTime(r.first_ns), FormatTime(r.last_ns));
  h += "<table>";
  auto row = [&](const std::string& k, const std::string& v) {
    h += "<tr><th>" + k + "</th><td class='r'>" + v + "</td></tr>";
  };
  row("records read", std::to_string(r.records_read));
  row("records scanned", std::to_string(r.records_scanned));
  row("bad lines (skipped)", std::to_string(r.bad_lines));
  row("records without an account (skipped)", std::to_string(r.skipped_no_account));
  row("records without prompt text (content features unavailable)",
      fmt::format("{} ({})", r.no_content, Pct(r.no_content, r.records_scanned)));
  row("out-of-order records (time clamped)", std::to_string(r.out_of_order));
  row("accounts / end users", std::to_string(r.accounts.size()));
  row("restricted at least once",
      fmt::format("{} ({})", r.restricted_subjects, Pct(r.restricted_subjects, r.accounts.size())));
  row("campaigns", std::to_string(r.campaigns.size()));
  for (int a = 0; a < kNumActions; ++a) {
    row("verdict " + ActionStr(static_cast<detect::Action>(a)),
        fmt::format("{} ({})", r.actions[a], Pct(r.actions[a], r.records_scanned)));
  }
  h += "</table>\n";
  if (r.no_content > 0) {
    h += "<p><small>Records kept under the hash-only or none retention modes carry no prompt "
         "text: for them only the timing, network, client and sampling features were "
         "available.</small></p>\n";
  }

  h += "<h2>Campaigns: accounts and volume</h2>\n" + CampaignBarsSvg(r, 25) + "\n";
  h += "<h2>Score distributions</h2>\n" +
       HistogramSvg(r.request_scores, "account score at each request", "#1f77b4") +
       HistogramSvg(r.account_max_scores, "highest score of each account", "#d62728") + "\n";
  h += "<h2>Verdicts over time</h2>\n" + TimelineSvg(r) + "\n";

  h += "<h2>Campaigns</h2>\n<table><tr><th>campaign</th><th>members</th><th>requests</th><th>score"
       "</th><th>shift</th><th>first seen</th><th>last seen</th><th>linked via</th><th>members "
       "(first 30)</th></tr>\n";
  for (const auto& c : r.campaigns) {
    std::string via;
    for (int k = 0; k < detect::kNumLinkKinds; ++k) {
      if (c.info.links[k] == 0) continue;
      via +=
          fmt::format("{}{} {}", via.empty() ? "" : ", ", detect::LinkKindName(k), c.info.links[k]);
    }
    std::string members;
    for (size_t i = 0; i < c.members.size() && i < 30; ++i)
      members += (i ? ", " : "") + Escape(c.members[i]);
    if (c.members.size() > 30) members += fmt::format(" ... (+{})", c.members.size() - 30);
    h += fmt::format(
        "<tr><td>{}{}</td><td class='r'>{}</td><td class='r'>{}</td><td class='r'>{:.2f}</td><td "
        "class='r'>{:.2f}</td><td>{}</td><td>{}</td><td>{}</td><td><small>{}</small></td></tr>\n",
        Escape(c.info.id), c.active_at_end ? "" : " <small>(idle, pruned)</small>",
        c.members.size(), c.member_requests, c.info.score, c.info.shift,
        c.info.first_seen_ns ? FormatTime(c.info.first_seen_ns) : "",
        c.info.last_seen_ns ? FormatTime(c.info.last_seen_ns) : "", Escape(via), members);
  }
  h += "</table>\n";

  h += fmt::format("<h2>Accounts (highest scores first; {} of {})</h2>\n",
                   std::min(max_accounts, r.accounts.size()), r.accounts.size());
  h += "<table><tr><th>account / end user</th><th>requests</th><th>max score</th><th>final "
       "action</th><th>restricted</th><th>restricted requests</th><th>campaign</th><th>top "
       "reasons</th><th>first seen</th><th>last seen</th></tr>\n";
  for (size_t i = 0; i < r.accounts.size() && i < max_accounts; ++i) {
    const AccountRow& a = r.accounts[i];
    std::string reasons;
    for (const auto& [code, n] : TopReasons(a, 4)) {
      reasons += fmt::format("{}{} ({})", reasons.empty() ? "" : ", ", Escape(code), n);
    }
    h += fmt::format(
        "<tr><td>{}</td><td class='r'>{}</td><td class='r'>{:.2f}</td><td>{}</td><td{}>{}</td><td "
        "class='r'>{}</td><td>{}</td><td><small>{}</small></td><td>{}</td><td>{}</td></tr>\n",
        Escape(a.subject), a.requests, a.max_score, ActionStr(a.final_action),
        a.restricted ? " class='flag'" : "", a.restricted ? "yes" : "no", a.restricted_requests,
        Escape(a.campaign_id), reasons, FormatTime(a.first_seen_ns), FormatTime(a.last_seen_ns));
  }
  h += "</table>\n";
  if (!r.bad_line_samples.empty()) {
    h += fmt::format(
        "<h2>Bad lines ({} skipped; first {})</h2>\n<table><tr><th>source</th><th>line"
        "</th><th>problem</th></tr>\n",
        r.bad_lines, r.bad_line_samples.size());
    for (const auto& b : r.bad_line_samples) {
      h += fmt::format("<tr><td>{}</td><td class='r'>{}</td><td>{}</td></tr>\n", Escape(b.source),
                       b.line, Escape(b.error));
    }
    h += "</table>\n";
  }
  h +=
      fmt::format("<p><small>Scanned in {:.1f} s by moat audit scan.</small></p>\n</body></html>\n",
                  r.elapsed_s);
  return h;
}

std::string SummaryText(const ScanReport& r, size_t max_rows) {
  std::string s;
  s += fmt::format(
      "records: {} read, {} scanned, {} bad lines, {} without account, {} without "
      "prompt text, {} out of order\n",
      r.records_read, r.records_scanned, r.bad_lines, r.skipped_no_account, r.no_content,
      r.out_of_order);
  if (r.records_scanned > 0)
    s += fmt::format("log time: {} .. {}\n", FormatTime(r.first_ns), FormatTime(r.last_ns));
  s += fmt::format("verdicts:");
  for (int a = 0; a < kNumActions; ++a)
    s += fmt::format(" {} {}", ActionStr(static_cast<detect::Action>(a)), r.actions[a]);
  s += fmt::format("\naccounts: {}, restricted at least once: {} ({}), campaigns: {}\n\n",
                   r.accounts.size(), r.restricted_subjects,
                   Pct(r.restricted_subjects, r.accounts.size()), r.campaigns.size());
  if (!r.campaigns.empty()) {
    s += fmt::format("{:<22} {:>8} {:>9} {:>6} {:>6}  {}\n", "CAMPAIGN", "MEMBERS", "REQUESTS",
                     "SCORE", "SHIFT", "SAMPLE MEMBERS");
    for (size_t i = 0; i < r.campaigns.size() && i < max_rows; ++i) {
      const CampaignRow& c = r.campaigns[i];
      std::string sample;
      for (size_t k = 0; k < c.members.size() && k < 4; ++k)
        sample += (k ? "," : "") + c.members[k];
      s += fmt::format("{:<22} {:>8} {:>9} {:>6.2f} {:>6.2f}  {}\n", Truncate(c.info.id, 22),
                       c.members.size(), c.member_requests, c.info.score, c.info.shift,
                       Truncate(sample, 60));
    }
    s += "\n";
  }
  s += fmt::format("{:<28} {:>8} {:>6} {:<9} {:<5} {:<22} {}\n", "ACCOUNT", "REQUESTS", "MAX",
                   "ACTION", "RESTR", "CAMPAIGN", "TOP REASONS");
  for (size_t i = 0; i < r.accounts.size() && i < max_rows; ++i) {
    const AccountRow& a = r.accounts[i];
    std::string reasons;
    for (const auto& [code, n] : TopReasons(a, 3)) reasons += (reasons.empty() ? "" : ",") + code;
    s += fmt::format("{:<28} {:>8} {:>6.2f} {:<9} {:<5} {:<22} {}\n", Truncate(a.subject, 28),
                     a.requests, a.max_score, ActionStr(a.final_action),
                     a.restricted ? "yes" : "no", Truncate(a.campaign_id, 22), reasons);
  }
  return s;
}

Status WriteReport(const ScanReport& r, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  {
    std::ofstream out(dir + "/report.json", std::ios::binary | std::ios::trunc);
    out << json::serialize(ReportToJson(r)) << '\n';
    if (!out) return InternalError("cannot write " + dir + "/report.json");
  }
  std::ofstream out(dir + "/report.html", std::ios::binary | std::ios::trunc);
  out << ReportToHtml(r);
  if (!out) return InternalError("cannot write " + dir + "/report.html");
  return Status::Ok();
}

}  // namespace moat::forensics
