#include "watermark/radioactivity.h"

#include <boost/json.hpp>
#include <fstream>

namespace moat::watermark {

StatusOr<std::vector<std::string>> ReadPrompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open prompts file " + path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    boost::system::error_code ec;
    boost::json::value v = line[0] == '{' ? boost::json::parse(line, ec) : boost::json::value();
    if (!ec && v.is_object()) {
      for (const char* f : {"text", "prompt", "content"}) {
        if (const auto* t = v.as_object().if_contains(f); t != nullptr && t->is_string()) {
          out.emplace_back(t->as_string());
          break;
        }
      }
      continue;
    }
    out.push_back(line);
  }
  if (out.empty()) return InvalidArgumentError("no prompts in " + path);
  return out;
}

StatusOr<std::vector<SuspectSample>> QuerySuspect(const SuspectClient& client,
                                                 const std::vector<std::string>& prompts,
                                                 const RadioactivityOptions& options) {
  if (prompts.empty()) return InvalidArgumentError("no prompts");
  std::vector<SuspectSample> out;
  int failures = 0;
  for (int i = 0; i < options.samples; ++i) {
    ChatRequest r;
    r.model = options.model;
    r.prompt = prompts[static_cast<size_t>(i) % prompts.size()];
    r.max_tokens = options.max_tokens;
    r.temperature = options.temperature;
    r.seed = options.seed + static_cast<uint64_t>(i);
    auto text = client.ChatCompletion(r);
    if (!text.ok()) {
      if (++failures > options.max_failures) return text.status();
      continue;
    }
    out.push_back({std::move(r.prompt), std::move(text).value()});
  }
  return out;
}

ScoringUnits UnitsOfTexts(const std::vector<std::string>& texts, const model::Tokenizer& tokenizer,
                          int h) {
  ScoringUnits units(h);
  for (const auto& t : texts) units.AddSequence(tokenizer.Encode(t));
  return units;
}

StatusOr<ScoringUnits> UpstreamUnitsOfTexts(const std::vector<std::string>& texts,
                                            const SuspectClient& tokenizer,
                                            std::string_view model, int32_t vocab_size, int h) {
  ScoringUnits units(h);
  for (const auto& t : texts) {
    MOAT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Tokenize(model, t));
    if (vocab_size > 0) std::erase_if(ids, [&](int32_t id) { return id >= vocab_size; });
    units.AddSequence(ids);
  }
  return units;
}

RadioactivityReport TestRadioactivity(const std::vector<SuspectSample>& samples,
                                      const model::Tokenizer& tokenizer,
                                      std::span<const WatermarkKey> keys,
                                      const WatermarkConfig& config, const TraceOptions& options) {
  std::vector<std::string> texts;
  texts.reserve(samples.size());
  for (const auto& s : samples) texts.push_back(s.completion);
  RadioactivityReport report;
  report.samples = static_cast<int64_t>(samples.size());
  report.trace = Trace(UnitsOfTexts(texts, tokenizer, config.h()), keys, config, options);
  report.detected = report.trace.significant > 0;
  return report;
}

}  // namespace moat::watermark
