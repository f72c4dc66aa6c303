#include "traffic/explain.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

#include "traffic/scorer.h"

namespace moat::traffic {

void Explainer::AddLabel(const SubjectLabel& l) {
  group_of_[SubjectKey(l.account, l.end_user)] = l.campaign ? "campaign " + l.variant : "organic " + l.persona;
}

void Explainer::Record(const detect::RequestEvent& e, const detect::Verdict& v) {
  // The labelled subject: the end user when it is labelled, else its account.
  std::string key = SubjectKey(e.account_id, e.end_user);
  auto g = group_of_.find(key);
  if (g == group_of_.end()) {
    key = SubjectKey(e.account_id, "");
    g = group_of_.find(key);
    if (g == group_of_.end()) return;
  }
  for (const std::string& r : v.reasons) {
    if (r.rfind("evidence:", 0) != 0) continue;
    auto it = peak_evidence_.try_emplace(key, -1e9).first;
    it->second = std::max(it->second, std::strtod(r.c_str() + 9, nullptr));
  }
  if (v.action == detect::Action::kAllow) {
    if (trace_ && !flagged_.count(key)) {
      char head[48];
      std::snprintf(head, sizeof(head), "t=%.2fh p=%.2f ", (e.time_ns % 86'400'000'000'000LL) / 3.6e12, v.account_score);
      std::string line = head;
      for (const std::string& r : v.reasons) line += r + " ";
      missed_[key].trace.push_back(line);
    }
    if (g->second.rfind("campaign", 0) != 0) return;
    Missed& m = missed_[key];
    if (v.account_score > m.score) {
      m.score = v.account_score;
      m.reasons.clear();
      for (const std::string& r : v.reasons) m.reasons += r + " ";
    }
    return;
  }
  if (!flagged_.emplace(key, true).second) return;
  Group& group = groups_[g->second];
  ++group.restricted;
  std::string line;
  if (trace_ && group.samples.size() < 8) {
    auto m = missed_.find(key);
    if (m != missed_.end()) {
      for (const std::string& t : m->second.trace) line += "\n        " + t;
      line += "\n        ";
    }
  }
  missed_.erase(key);
  bool top_counted = false;
  for (const std::string& r : v.reasons) {
    if (r.rfind("rule:", 0) == 0) ++group.rules[r.substr(5)];
    if (!line.empty()) line += ' ';
    line += r;
    const size_t colon = r.find(':');
    if (colon == std::string::npos) continue;
    const std::string head = r.substr(0, colon);
    // Every "stage.reason:+x" adds to its mean contribution ...
    if (head.find('.') != std::string::npos) {
      auto& [sum, n] = group.contribution[head];
      sum += std::strtod(r.c_str() + colon + 1, nullptr);
      ++n;
    }
    // ... and the first stage's reason is the largest contribution.
    if (!top_counted && head != "posterior" && head != "rule" && head != "value" && head != "pool_value" &&
        head != "ref" && head != "evidence" && head != "campaign") {
      ++group.stages[head];
      top_counted = true;
    }
  }
  if (group.samples.size() < 8) group.samples.push_back(line);
}

std::string Explainer::Summary(int samples) const {
  std::string out = "restricted subjects by group (first restriction): rule counts; top stage counts\n";
  char buf[256];
  for (const auto& [name, g] : groups_) {
    std::snprintf(buf, sizeof(buf), "%-34s %6d  rules:", name.c_str(), g.restricted);
    out += buf;
    for (const auto& [rule, n] : g.rules) out += " " + rule + "=" + std::to_string(n);
    out += "  top:";
    std::vector<std::pair<int, std::string>> top;
    for (const auto& [stage, n] : g.stages) top.emplace_back(n, stage);
    std::sort(top.rbegin(), top.rend());
    for (size_t i = 0; i < top.size() && i < 4; ++i) out += " " + top[i].second + "=" + std::to_string(top[i].first);
    out += "\n    mean contribution (subjects):";
    for (const auto& [reason, c] : g.contribution) {
      std::snprintf(buf, sizeof(buf), " %s %+.2f (%d)", reason.c_str(), c.first / c.second, c.second);
      out += buf;
    }
    out += "\n";
    for (int i = 0; i < samples && i < static_cast<int>(g.samples.size()); ++i) out += "    " + g.samples[i] + "\n";
  }
  // Peak own evidence of every group's subjects (those that ever reached explain_posterior).
  std::map<std::string, std::array<int, 6>> peaks;
  for (const auto& [key, x] : peak_evidence_) {
    auto g = group_of_.find(key);
    if (g == group_of_.end()) continue;
    ++peaks[g->second][x < 3 ? 0 : x < 6 ? 1 : x < 9 ? 2 : x < 12 ? 3 : x < 16 ? 4 : 5];
  }
  out += "peak own evidence E of subjects that reached the explain posterior: <3 3-6 6-9 9-12 12-16 >=16\n";
  for (const auto& [name, h] : peaks) {
    std::snprintf(buf, sizeof(buf), "  %-34s %6d %6d %6d %6d %6d %6d\n", name.c_str(), h[0], h[1], h[2], h[3], h[4], h[5]);
    out += buf;
  }
  // Campaign subjects never restricted: how suspicious they got.
  std::map<std::string, std::vector<const Missed*>> missed_by_group;
  for (const auto& [key, m] : missed_) {
    const std::string& group = group_of_.at(key);
    if (group.rfind("campaign", 0) == 0) missed_by_group[group].push_back(&m);
  }
  for (auto& [name, list] : missed_by_group) {
    std::array<int, 5> hist{};  // max posterior in [0,.2) [.2,.5) [.5,.8) [.8,.95) [.95,1]
    for (const Missed* m : list) {
      const double p = m->score;
      ++hist[p < 0.2 ? 0 : p < 0.5 ? 1 : p < 0.8 ? 2 : p < 0.95 ? 3 : 4];
    }
    std::snprintf(buf, sizeof(buf), "never restricted %-26s %6zu  max posterior <.2:%d <.5:%d <.8:%d <.95:%d >=.95:%d\n",
                  name.c_str(), list.size(), hist[0], hist[1], hist[2], hist[3], hist[4]);
    out += buf;
    std::array<int, 5> shown{};
    for (const Missed* m : list) {
      const double p = m->score;
      const int b = p < 0.2 ? 0 : p < 0.5 ? 1 : p < 0.8 ? 2 : p < 0.95 ? 3 : 4;
      if (shown[b]++ < 2) {
        char head[32];
        std::snprintf(head, sizeof(head), "    [max %.2f] ", p);
        out += head + m->reasons + "\n";
        for (const std::string& t : m->trace) out += "        " + t + "\n";
      }
    }
  }
  return out;
}

}  // namespace moat::traffic
