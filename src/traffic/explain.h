#pragma once
// Explainer: why a detector restricted whom. It records, for every labelled subject, the
// reasons of its first restricted verdict, and summarises them per campaign variant and
// organic persona (which rule and which evidence stage restricted them, and each stage's mean
// contribution at that verdict), with a few sample reason lines and each group's peak own
// evidence. The tuning aid behind `moat-bench traffic run --explain`.

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "moat/detect_engine.h"
#include "traffic/generator.h"

namespace moat::traffic {

class Explainer {
 public:
  // Keeps every verdict of campaign subjects never restricted, to print a few traces.
  explicit Explainer(bool trace = false) : trace_(trace) {}
  void AddLabel(const SubjectLabel& label);
  void Record(const detect::RequestEvent& event, const detect::Verdict& verdict);
  // The summary, with up to `samples` reason lines per group.
  std::string Summary(int samples = 3) const;

 private:
  struct Group {
    int restricted = 0;
    std::map<std::string, int> rules, stages;
    std::map<std::string, std::pair<double, int>> contribution;  // stage.reason -> sum, count
    std::vector<std::string> samples;
  };
  std::unordered_map<std::string, std::string> group_of_;  // subject key -> group name
  std::unordered_map<std::string, bool> flagged_;
  // Campaign subjects not (yet) restricted: their most suspicious verdict so far.
  struct Missed {
    double score = -1;
    std::string reasons;
    std::vector<std::string> trace;  // every verdict, when tracing
  };
  std::unordered_map<std::string, Missed> missed_;
  // Every labelled subject's peak own evidence E (read from its verdicts' reasons; verdicts
  // below the engine's explain_posterior carry none).
  std::unordered_map<std::string, double> peak_evidence_;
  bool trace_ = false;
  std::map<std::string, Group> groups_;
};

}  // namespace moat::traffic
