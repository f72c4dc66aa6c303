// DetectionEngine::SaveState and LoadState (engine.h): the engine's state file.
//
// Layout (every integer little-endian, binary_fields.h):
//   "MOATDST\n"                       8 bytes
//   u32 version (1)
//   u64 subject layout                sizeof(SubjectState) and its fields' offsets, hashed
//   u64 saved_at_ns
//   u32 length, bytes                 the organic baseline (OrganicBaseline::SaveTo)
//   u32 length, bytes                 the cohorts (CohortStage::SaveTo; empty without the stage)
//   u32 length, bytes                 the work-queue items (WorkQueueStage::SaveTo; empty without)
//   u64 n, n x SubjectState           live subjects, each its in-memory bytes
//   u64 n, n x SubjectState           evicted subjects (the SubjectStore)
//   u64 checksum                      Hash64 (XXH3) of everything before it
// Subjects are stored as their bytes: SubjectState is fixed-size and trivially copyable, and a
// build whose layout differs refuses the file rather than misreading it.

#include <cstddef>
#include <cstring>
#include <optional>
#include <type_traits>

#include "common/file_contents.h"
#include "detect/binary_fields.h"
#include "detect/engine.h"
#include "detect/sketches.h"

namespace moat::detect {
namespace {

constexpr std::string_view kStateMagic = "MOATDST\n";
constexpr uint32_t kStateVersion = 1;

static_assert(std::is_trivially_copyable_v<SubjectState>, "the state file stores subjects as bytes");

}  // namespace

static_assert(offsetof(SubjectState, template_candidate) ==
                  DetectionEngine::kSubjectBytesBeforeHarness,
              "the harness votes are appended to the layout older state files have");

uint64_t DetectionEngine::StateSubjectLayout(bool with_graduated, bool with_system_tag,
                                             bool with_harness) {
  const SubjectState s;
  const char* base = reinterpret_cast<const char*>(&s);
  auto at = [&](const void* field) { return static_cast<uint64_t>(static_cast<const char*>(field) - base); };
  std::string bytes;
  const uint64_t size = with_harness ? sizeof(SubjectState) : kSubjectBytesBeforeHarness;
  for (uint64_t v :
       {size, at(&s.first_seen_ns), at(&s.requests), at(&s.log_gap), at(&s.ips), at(&s.skeletons),
        at(&s.hours), at(&s.campaign_root), at(&s.seq_full), at(&s.value), at(&s.llr_hi),
        at(&s.co_askers), at(&s.co_asker_sketch), at(&s.tier), at(&s.indicator), at(&s.end_users),
        at(&s.history), at(&s.lru_next)}) {
    PutU64(&bytes, v);
  }
  if (with_graduated) PutU64(&bytes, at(&s.graduated));
  if (with_system_tag) PutU64(&bytes, at(&s.system_tag));
  if (with_harness) {
    PutU64(&bytes, at(&s.template_candidate));
    PutU64(&bytes, at(&s.harness_requests));
  }
  return Hash64(bytes);
}

namespace {

void PutSection(std::string* out, const std::string& section) {
  PutU32(out, static_cast<uint32_t>(section.size()));
  out->append(section);
}

bool GetSection(std::string_view* in, std::string_view* section) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || in->size() < n) return false;
  *section = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

// Which fields a state file's subjects have (those added since took padding bytes, or were
// appended), and how long each subject is.
struct SubjectLayoutFields {
  bool graduated = true;
  bool system_tag = true;
  size_t subject_bytes = sizeof(SubjectState);
};

// Slices off a list of subjects (its count, then the subjects' bytes); false when the bytes are
// short.
bool GetSubjectList(std::string_view* in, size_t subject_bytes, std::string_view* list) {
  uint64_t n = 0;
  if (!GetU64(in, &n) || n > in->size() / subject_bytes) return false;
  *list = in->substr(0, n * subject_bytes);
  in->remove_prefix(list->size());
  return true;
}

// Calls fn on each subject of a list GetSubjectList sliced; a field the file's layout did not
// have (padding there, or past its end) is cleared.
template <typename Fn>
void ForEachSubjectIn(std::string_view list, SubjectLayoutFields fields, Fn fn) {
  for (size_t at = 0; at + fields.subject_bytes <= list.size(); at += fields.subject_bytes) {
    SubjectState s;
    std::memcpy(&s, list.data() + at, fields.subject_bytes);
    s.id.back() = '\0';  // IdView stops inside the array
    if (!fields.graduated) s.graduated = 0;
    if (!fields.system_tag) s.system_tag = 0;
    fn(s);
  }
}

}  // namespace

StatusOr<DetectionEngine::StateCounts> DetectionEngine::SaveState(const std::string& path, int64_t now_ns) const {
  std::string baseline, cohorts, items;
  baseline_->SaveTo(&baseline);
  if (cohort_ != nullptr) cohort_->SaveTo(&cohorts);
  if (workqueue_ != nullptr) workqueue_->SaveTo(&items);

  // The file is built in memory once: subjects are appended straight from their shards (no
  // second copy), each count written in front of its list when the list is done.
  std::string out(kStateMagic);
  out.reserve(out.size() + 64 + baseline.size() + cohorts.size() + items.size() +
              (subjects_.size() + 1) * sizeof(SubjectState));
  PutU32(&out, kStateVersion);
  PutU64(&out, StateSubjectLayout());
  PutU64(&out, static_cast<uint64_t>(now_ns));
  PutSection(&out, baseline);
  PutSection(&out, cohorts);
  PutSection(&out, items);
  auto put_list = [&](auto for_each) {
    const size_t count_at = out.size();
    PutU64(&out, 0);
    uint64_t n = 0;
    for_each([&](const SubjectState& s) {
      out.append(reinterpret_cast<const char*>(&s), sizeof(SubjectState));
      ++n;
    });
    std::string count;
    PutU64(&count, n);
    out.replace(count_at, count.size(), count);
    return static_cast<size_t>(n);
  };
  StateCounts counts;
  counts.live_subjects = put_list([&](const auto& fn) { subjects_.ForEachLive(fn); });
  counts.evicted_subjects = put_list([&](const auto& fn) { subjects_.ForEachEvicted(fn); });
  PutU64(&out, Hash64(out));
  MOAT_RETURN_IF_ERROR(ReplaceFileContents(path, out, "the detection state file"));
  counts.cohorts = cohort_ != nullptr ? cohort_->Cohorts().size() : 0;
  counts.saved_at_ns = now_ns;
  return counts;
}

StatusOr<DetectionEngine::StateCounts> DetectionEngine::LoadState(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(std::string bytes, ReadFileContents(path, "the detection state file"));
  const std::string damaged = "the detection state file " + path + " is damaged";
  std::string_view in(bytes);
  if (in.size() < kStateMagic.size() + 8 || in.substr(0, kStateMagic.size()) != kStateMagic) {
    return DataLossError(damaged + " (not a state file)");
  }
  std::string_view trailer = in.substr(in.size() - 8);
  uint64_t checksum = 0;
  (void)GetU64(&trailer, &checksum);  // 8 bytes are there
  in.remove_suffix(8);
  if (Hash64(in) != checksum) return DataLossError(damaged + " (checksum)");
  in.remove_prefix(kStateMagic.size());

  uint32_t version = 0;
  uint64_t layout = 0, saved_at = 0;
  if (!GetU32(&in, &version) || !GetU64(&in, &layout) || !GetU64(&in, &saved_at)) return DataLossError(damaged);
  // The layouts this build reads: its own, and those of earlier builds.
  std::optional<SubjectLayoutFields> fields;
  if (layout == StateSubjectLayout()) {
    fields = SubjectLayoutFields{};
  } else if (layout == StateSubjectLayout(true, true, /*with_harness=*/false)) {
    fields = SubjectLayoutFields{true, true, kSubjectBytesBeforeHarness};
  } else if (layout == StateSubjectLayout(true, /*with_system_tag=*/false, false)) {
    fields = SubjectLayoutFields{true, false, kSubjectBytesBeforeHarness};
  } else if (layout == StateSubjectLayout(/*with_graduated=*/false, false, false)) {
    fields = SubjectLayoutFields{false, false, kSubjectBytesBeforeHarness};
  }
  if (version != kStateVersion || !fields) {
    return FailedPreconditionError("the detection state file " + path +
                                   " was written by another build of moat (format or subject layout differs)");
  }
  std::string_view baseline, cohorts, items, live, evicted;
  if (!GetSection(&in, &baseline) || !GetSection(&in, &cohorts) || !GetSection(&in, &items) ||
      !GetSubjectList(&in, fields->subject_bytes, &live) ||
      !GetSubjectList(&in, fields->subject_bytes, &evicted) || !in.empty()) {
    return DataLossError(damaged);
  }
  // Sections are checked before anything is replaced: a bad one loads nothing.
  OrganicBaseline baseline_check(config_.baseline_data, {}, 0.5);
  std::string_view b = baseline;
  if (!baseline_check.LoadFrom(&b) || !b.empty()) return DataLossError(damaged + " (baseline)");
  CohortStage cohorts_check(config_.cohort, baseline_);
  std::string_view c = cohorts;
  if (!cohorts.empty() && (!cohorts_check.LoadFrom(&c) || !c.empty())) return DataLossError(damaged + " (cohorts)");
  WorkQueueStageConfig small = config_.workqueue;
  small.max_entries = 0;  // checks the bytes, keeps (almost) nothing
  WorkQueueStage items_check(small);
  std::string_view w = items;
  if (!items.empty() && (!items_check.LoadFrom(&w) || !w.empty())) return DataLossError(damaged + " (work-queue items)");
  b = baseline;
  c = cohorts;
  w = items;
  (void)baseline_->LoadFrom(&b);  // the bytes checked above
  StateCounts counts;
  if (cohort_ != nullptr && !cohorts.empty()) {
    (void)cohort_->LoadFrom(&c);  // the bytes checked above
    counts.cohorts = cohort_->Cohorts().size();
  }
  if (workqueue_ != nullptr && !items.empty()) (void)workqueue_->LoadFrom(&w);  // the bytes checked above
  ForEachSubjectIn(evicted, *fields, [&](const SubjectState& s) { subjects_.RestoreEvicted(s); });
  ForEachSubjectIn(live, *fields, [&](const SubjectState& s) { subjects_.RestoreLive(s); });
  counts.live_subjects = live.size() / fields->subject_bytes;
  counts.evicted_subjects = evicted.size() / fields->subject_bytes;
  counts.saved_at_ns = static_cast<int64_t>(saved_at);
  return counts;
}

}  // namespace moat::detect
