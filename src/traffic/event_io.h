#pragma once
// JSONL encodings of the benchmark's event stream and label file, and sinks that write them.
//   event: {"t": ns, "account", "key", "ip", "user", "headers": {...}, "endpoint", "body": {...}}
//   label: {"account", "user", "kind": "organic"|"campaign", "variant", "campaign_id",
//           "persona", "created_t": ns}

#include <cstdio>
#include <string>
#include <string_view>

#include "moat/detect_engine.h"
#include "moat/status.h"
#include "traffic/generator.h"

namespace moat::traffic {

// One line, without the newline. The body is embedded verbatim (it is JSON already).
std::string EventToJson(const detect::RequestEvent& event);
// Returns InvalidArgument on malformed lines.
StatusOr<detect::RequestEvent> EventFromJson(std::string_view line);

std::string LabelToJson(const SubjectLabel& label);
StatusOr<SubjectLabel> LabelFromJson(std::string_view line);

// Writes events.jsonl and labels.jsonl into a folder, streaming.
class JsonlTrafficWriter final : public TrafficSink {
 public:
  // Creates the folder if needed. Check status() before use.
  explicit JsonlTrafficWriter(const std::string& dir);
  ~JsonlTrafficWriter() override;
  const Status& status() const { return status_; }
  void OnLabel(const SubjectLabel& label) override;
  void OnEvent(const detect::RequestEvent& event) override;
  // Flushes and closes both files; returns the first write error.
  Status Close();

 private:
  std::FILE* events_ = nullptr;
  std::FILE* labels_ = nullptr;
  Status status_;
  std::string line_;
};

// Calls `fn(line)` for every non-empty line of a (possibly gzip) file, streaming.
template <typename Fn>
Status ForEachLine(const std::string& path, Fn&& fn);

Status ForEachLineImpl(const std::string& path, void* ctx,
                       Status (*fn)(void*, std::string_view));
template <typename Fn>
Status ForEachLine(const std::string& path, Fn&& fn) {
  return ForEachLineImpl(path, &fn, [](void* c, std::string_view l) -> Status {
    return (*static_cast<std::remove_reference_t<Fn>*>(c))(l);
  });
}

}  // namespace moat::traffic
