#include "traffic/report.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

namespace moat::traffic {
namespace json = boost::json;

namespace {

std::string Pct(double x) { return fmt::format("{:.1f}%", 100.0 * x); }

std::string Duration(double seconds) {
  if (seconds < 0) return "never";
  if (seconds < 120) return fmt::format("{:.0f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.1f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

// Detection curves: fraction of each variant's subjects flagged vs hours into the campaign.
std::string CurvesSvg(const Report& r) {
  const double w = 640, h = 320, l = 50, b = 40, t = 15, rgt = 150;
  double max_h = 1e-9;
  for (const auto& v : r.variants) {
    if (!v.detection_curve.empty()) max_h = std::max(max_h, v.detection_curve.back().first);
  }
  std::string s = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-size='11'>", w + rgt,
      h + b + t);
  auto X = [&](double x) { return l + (w - l) * x / max_h; };
  auto Y = [&](double y) { return t + h - h * y; };
  for (int i = 0; i <= 4; ++i) {
    double y = i / 4.0;
    s += fmt::format("<line x1='{}' x2='{}' y1='{:.1f}' y2='{:.1f}' stroke='#ddd'/>", l, w,
                     Y(y), Y(y));
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{:.0f}%</text>", l - 4, Y(y) + 4,
                     y * 100);
  }
  for (int i = 0; i <= 4; ++i) {
    double x = max_h * i / 4;
    s += fmt::format("<text x='{:.1f}' y='{}' text-anchor='middle'>{:.1f} h</text>", X(x),
                     t + h + 15, x);
  }
  s += fmt::format("<text x='{}' y='{}' text-anchor='middle'>hours since the campaign's first "
                   "request</text>",
                   (l + w) / 2, t + h + 32);
  int i = 0;
  for (const auto& v : r.variants) {
    const char* color = kColors[i % 8];
    std::string pts;
    for (const auto& [x, y] : v.detection_curve) pts += fmt::format("{:.1f},{:.1f} ", X(x), Y(y));
    s += fmt::format("<polyline fill='none' stroke='{}' stroke-width='2' points='{}'/>", color,
                     pts);
    s += fmt::format("<rect x='{}' y='{}' width='10' height='10' fill='{}'/>", w + 10,
                     t + 16 * i, color);
    s += fmt::format("<text x='{}' y='{}'>{}</text>", w + 24, t + 16 * i + 9, Escape(v.variant));
    ++i;
  }
  return s + "</svg>";
}

// Leakage per variant as horizontal bars.
std::string LeakageSvg(const Report& r) {
  const double w = 640, row = 24, l = 130;
  double h = row * (r.variants.size() + 1);
  std::string s = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-size='11'>", w + 60, h);
  int i = 0;
  for (const auto& v : r.variants) {
    double y = row * i + 4;
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{}</text>", l - 6, y + 13,
                     Escape(v.variant));
    s += fmt::format("<rect x='{}' y='{:.1f}' width='{:.1f}' height='16' fill='{}'/>", l, y,
                     (w - l) * v.leakage, kColors[i % 8]);
    s += fmt::format("<text x='{:.1f}' y='{:.1f}'>{}</text>", l + (w - l) * v.leakage + 4, y + 13,
                     Pct(v.leakage));
    ++i;
  }
  return s + "</svg>";
}

}  // namespace

std::string FormatTable(const Report& r) {
  std::string s = fmt::format("scenario {}  seed {}  engine {}  events {}  simulated {:.1f} h\n",
                              r.scenario, r.seed, r.engine, r.events, r.simulated_hours);
  s += fmt::format("{:<16} {:>5} {:>8} {:>10} {:>8} {:>8} {:>12} {:>11} {:>9} {:>9}\n", "variant", "camp",
                   "subjects", "requests", "recall", "leakage", "req-to-det", "time-to-det", "ans/burn",
                   "own/burn");
  for (const auto& v : r.variants) {
    std::string rtd = v.campaigns_detected == v.campaigns
                          ? fmt::format("{:.0f}", v.requests_to_detection)
                          : fmt::format(">{:.0f}", v.requests_to_detection);
    const std::string per_burn = v.answers_per_flagged < 0 ? "-" : fmt::format("{:.1f}", v.answers_per_flagged);
    const std::string own = v.own_answers_per_flagged < 0 ? "-" : fmt::format("{:.1f}", v.own_answers_per_flagged);
    s += fmt::format("{:<16} {:>5} {:>8} {:>10} {:>8} {:>8} {:>12} {:>11} {:>9} {:>9}\n", v.variant,
                     v.campaigns, v.subjects, v.requests, Pct(v.recall), Pct(v.leakage), rtd,
                     Duration(v.seconds_to_detection), per_burn, own);
  }
  const OrganicScore& o = r.organic;
  s += fmt::format("organic: {} subjects, {} requests, false-positive rate {} ({} restricted), "
                   "collateral {} ({} requests)\n",
                   o.subjects, o.requests, Pct(o.false_positive_rate), o.restricted_subjects,
                   Pct(o.collateral), o.restricted_requests);
  for (const auto& [persona, p] : o.by_persona) {
    s += fmt::format("  organic {:<18} {:>7} subjects, {:>5} restricted\n", persona, p.first,
                     p.second);
  }
  if (r.unlabelled_events > 0) {
    s += fmt::format("WARNING: {} events had no label\n", r.unlabelled_events);
  }
  s += fmt::format("wall {:.2f} s, {:.0f} events/s\n", r.wall_seconds, r.events_per_second);
  return s;
}

std::string ReportToJson(const Report& r) {
  json::object o;
  o["scenario"] = r.scenario;
  o["engine"] = r.engine;
  o["seed"] = r.seed;
  o["events"] = r.events;
  o["unlabelled_events"] = r.unlabelled_events;
  o["wall_seconds"] = r.wall_seconds;
  o["events_per_second"] = r.events_per_second;
  o["simulated_hours"] = r.simulated_hours;
  json::object actions;
  for (const auto& [k, v] : r.actions) actions[k] = v;
  o["actions"] = std::move(actions);
  json::array variants;
  for (const auto& v : r.variants) {
    json::array curve;
    for (const auto& [x, y] : v.detection_curve) curve.push_back(json::array{x, y});
    variants.push_back(json::object{{"variant", v.variant},
                                    {"campaigns", v.campaigns},
                                    {"campaigns_detected", v.campaigns_detected},
                                    {"subjects", v.subjects},
                                    {"flagged", v.flagged},
                                    {"requests", v.requests},
                                    {"leaked", v.leaked},
                                    {"recall", v.recall},
                                    {"leakage", v.leakage},
                                    {"answers_per_flagged", v.answers_per_flagged},
                                    {"own_answers_per_flagged", v.own_answers_per_flagged},
                                    {"requests_to_detection", v.requests_to_detection},
                                    {"seconds_to_detection", v.seconds_to_detection},
                                    {"detection_curve", std::move(curve)}});
  }
  o["variants"] = std::move(variants);
  json::object personas;
  for (const auto& [k, p] : r.organic.by_persona) {
    personas[k] = json::object{{"subjects", p.first}, {"restricted", p.second}};
  }
  o["organic"] = json::object{{"subjects", r.organic.subjects},
                              {"restricted_subjects", r.organic.restricted_subjects},
                              {"requests", r.organic.requests},
                              {"restricted_requests", r.organic.restricted_requests},
                              {"false_positive_rate", r.organic.false_positive_rate},
                              {"collateral", r.organic.collateral},
                              {"by_persona", std::move(personas)}};
  return json::serialize(o);
}

std::string ReportToHtml(const Report& r) {
  std::string s =
      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>moat traffic benchmark</title>"
      "<style>body{font-family:sans-serif;margin:2em;max-width:960px}table{border-collapse:"
      "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
      "td:first-child{text-align:left}</style></head><body>";
  s += fmt::format("<h1>moat traffic benchmark: {}</h1><p>seed {} &middot; engine <b>{}</b> "
                   "&middot; {} events over {:.1f} simulated hours &middot; {:.2f} s wall, {:.0f} "
                   "events/s</p>",
                   Escape(r.scenario), r.seed, Escape(r.engine), r.events, r.simulated_hours,
                   r.wall_seconds, r.events_per_second);
  s += "<h2>Campaigns</h2><table><tr><th>variant</th><th>campaigns</th><th>subjects</th>"
       "<th>requests</th><th>recall</th><th>leakage</th><th>requests to detection</th>"
       "<th>time to detection</th><th>full answers per restricted subject</th>"
       "<th>... of which it got itself</th></tr>";
  for (const auto& v : r.variants) {
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{}{:.0f}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     Escape(v.variant), v.campaigns, v.subjects, v.requests, Pct(v.recall),
                     Pct(v.leakage), v.campaigns_detected == v.campaigns ? "" : "&gt;",
                     v.requests_to_detection, Duration(v.seconds_to_detection),
                     v.answers_per_flagged < 0 ? std::string("-") : fmt::format("{:.1f}", v.answers_per_flagged),
                     v.own_answers_per_flagged < 0 ? std::string("-") : fmt::format("{:.1f}", v.own_answers_per_flagged));
  }
  s += "</table>";
  const OrganicScore& o = r.organic;
  s += fmt::format("<h2>Organic traffic</h2><p>{} subjects, {} requests. False-positive rate "
                   "<b>{}</b> ({} subjects restricted); collateral <b>{}</b> ({} requests "
                   "degraded or refused).</p><table><tr><th>persona</th><th>subjects</th>"
                   "<th>restricted</th></tr>",
                   o.subjects, o.requests, Pct(o.false_positive_rate), o.restricted_subjects,
                   Pct(o.collateral), o.restricted_requests);
  for (const auto& [k, p] : o.by_persona) {
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", Escape(k), p.first, p.second);
  }
  s += "</table><h2>Detection over time</h2><p>Fraction of each variant's campaign subjects "
       "(accounts; end users for hydra) flagged, by time since the campaign began.</p>";
  s += CurvesSvg(r);
  s += "<h2>Leakage per variant</h2><p>Fraction of campaign requests answered at full "
       "fidelity.</p>";
  s += LeakageSvg(r);
  s += "<h2>Verdicts</h2><table><tr><th>action</th><th>requests</th></tr>";
  for (const auto& [k, v] : r.actions) s += fmt::format("<tr><td>{}</td><td>{}</td></tr>", k, v);
  s += "</table><p>Metric definitions: docs/traffic-benchmark.md.</p></body></html>\n";
  return s;
}

Status WriteReportFiles(const Report& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (const auto& [name, content] :
       {std::pair<std::string, std::string>{"report.json", ReportToJson(report) + "\n"},
        {"report.html", ReportToHtml(report)}}) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out << content;
    if (!out) return InternalError("cannot write " + dir + "/" + name);
  }
  return Status::Ok();
}

}  // namespace moat::traffic
