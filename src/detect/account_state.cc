#include "detect/account_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "detect/shards.h"

namespace moat::detect {

std::string_view SubjectState::IdView() const {
  return std::string_view(id.data(), strnlen(id.data(), id.size()));
}

void SubjectState::SetId(std::string_view subject_id) {
  id.fill(0);
  std::memcpy(id.data(), subject_id.data(), std::min(subject_id.size(), id.size()));
}

double SubjectState::RatePerHour() const {
  // n_hour is a 1-hour half-life sum: its steady state is rate / ln 2.
  return n_hour * std::log(2.0);
}

double SubjectState::TemplateShare() const {
  if (harness_requests == 0) return 0;
  const double votes = *std::max_element(template_votes.begin(), template_votes.end());
  return (harness_requests + votes) / (2.0 * harness_requests);
}

double SubjectState::KnownSetShare() const {
  return harness_requests == 0 ? 0 : static_cast<double>(known_set_votes) / harness_requests;
}

namespace {

// A 16-bit digest of a hash; 0 stays 0 (nothing to vote for).
uint16_t Digest16(uint64_t hash) { return hash == 0 ? 0 : static_cast<uint16_t>(hash % 65535 + 1); }

// One Boyer-Moore majority vote; `digest` 0 votes against the candidate.
void Vote(uint16_t digest, uint16_t& candidate, uint8_t& votes) {
  if (digest != 0 && digest == candidate) {
    ++votes;
  } else if (votes == 0) {
    candidate = digest;
    votes = digest != 0 ? 1 : 0;
  } else {
    --votes;
  }
}

// What a request says about whether its subject is a harness (SubjectState::harness_requests).
void VoteHarness(SubjectState& s, const RequestFeatures& f) {
  if (s.harness_requests == 255) {
    s.harness_requests /= 2;
    for (uint8_t& v : s.template_votes) v /= 2;
    s.known_set_votes /= 2;
  }
  ++s.harness_requests;
  const std::array<uint64_t, 3> hashes = {f.prefix_hash, f.suffix_hash, f.ends_hash};
  for (size_t k = 0; k < hashes.size(); ++k)
    Vote(Digest16(hashes[k]), s.template_candidate[k], s.template_votes[k]);
  if (f.corpus.found)
    Vote(static_cast<uint16_t>(f.corpus.corpus + 1), s.known_set_candidate, s.known_set_votes);
}

}  // namespace

void SubjectState::PushHistory(int64_t now_ns, float s, uint8_t action) {
  ScorePoint& p = history[history_pos % kScoreHistory];
  p.minute = static_cast<uint32_t>(now_ns / 60'000'000'000LL);
  p.score = static_cast<uint8_t>(std::clamp(s, 0.0f, 1.0f) * 255.0f + 0.5f);
  p.action = action;
  history_pos = static_cast<uint8_t>((history_pos + 1) % kScoreHistory);
}

void ObserveRequest(SubjectState& s, const RequestFeatures& f, std::string_view ip, int64_t now_ns,
                    const DecayConfig& decay) {
  const bool first = s.requests == 0;
  const int64_t dt = first ? 0 : now_ns - s.last_seen_ns;
  const float d = DecayFactor(dt, decay.signal_half_life_ns);
  s.n = s.n * d + 1.0f;
  for (int k = 0; k < kNumSignals; ++k) s.signal[k] = s.signal[k] * d + f.signal[k];
  s.n_hour = s.n_hour * DecayFactor(dt, decay.rate_half_life_ns) + 1.0f;
  if (!first) {
    const double gap_s = std::max(1e-3, static_cast<double>(dt) / 1e9);
    s.log_gap.Add(std::log10(gap_s), d);
  } else {
    s.first_seen_ns = now_ns;
  }
  s.ips.Add(Hash64(ip));
  s.prefixes.Add(Hash64(NetworkPrefix(ip)));
  s.skeletons.Add(f.skeleton_hash);
  VoteHarness(s, f);
  const int hour = static_cast<int>((now_ns / 3'600'000'000'000LL) % 24);
  if (s.hours[hour] == 255) {
    for (auto& h : s.hours) h /= 2;
  }
  ++s.hours[hour];
  if (s.requests < UINT32_MAX) ++s.requests;
  s.last_seen_ns = std::max(s.last_seen_ns, now_ns);
}

// ---- InMemorySubjectStore -------------------------------------------------------------------

void InMemorySubjectStore::Put(const SubjectState& state) {
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.size() >= max_ && !map_.contains(state.id_hash)) return;
  map_[state.id_hash] = state;
}

bool InMemorySubjectStore::Take(uint64_t id_hash, SubjectState* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id_hash);
  if (it == map_.end()) return false;
  *out = it->second;
  map_.erase(it);
  return true;
}

bool InMemorySubjectStore::Peek(uint64_t id_hash, SubjectState* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id_hash);
  if (it == map_.end()) return false;
  *out = it->second;
  return true;
}

void InMemorySubjectStore::ForEach(const std::function<void(const SubjectState&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [hash, state] : map_) fn(state);
}

size_t InMemorySubjectStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

// ---- SubjectTable ---------------------------------------------------------------------------

SubjectTable::SubjectTable(size_t capacity, std::shared_ptr<SubjectStore> store, int shards)
    : capacity_(std::max<size_t>(capacity, static_cast<size_t>(shards))),
      per_shard_(std::max<size_t>(1, capacity_ / static_cast<size_t>(std::max(1, shards)))),
      store_(std::move(store)) {
  shards_.reserve(static_cast<size_t>(std::max(1, shards)));
  for (int i = 0; i < std::max(1, shards); ++i) shards_.push_back(std::make_unique<Shard>());
}

void SubjectTable::Unlink(Shard& s, uint32_t i) {
  SubjectState& st = s.slots[i];
  if (st.lru_prev != kNil) s.slots[st.lru_prev].lru_next = st.lru_next; else s.head = st.lru_next;
  if (st.lru_next != kNil) s.slots[st.lru_next].lru_prev = st.lru_prev; else s.tail = st.lru_prev;
  st.lru_prev = st.lru_next = kNil;
}

void SubjectTable::PushFront(Shard& s, uint32_t i) {
  SubjectState& st = s.slots[i];
  st.lru_prev = kNil;
  st.lru_next = s.head;
  if (s.head != kNil) s.slots[s.head].lru_prev = i;
  s.head = i;
  if (s.tail == kNil) s.tail = i;
}

void SubjectTable::EvictSlot(Shard& s, uint32_t i) {
  Unlink(s, i);
  SubjectState& st = s.slots[i];
  if (store_) store_->Put(st);
  s.index.erase(st.id_hash);
  s.free.push_back(i);
  ++s.evictions;
}

void SubjectTable::With(uint64_t id_hash, std::string_view id,
                        const std::function<void(SubjectState&, bool)>& fn) {
  Shard& s = ShardOf(id_hash);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.index.find(id_hash);
  if (it != s.index.end()) {
    const uint32_t i = it->second;
    if (s.head != i) {
      Unlink(s, i);
      PushFront(s, i);
    }
    fn(s.slots[i], false);
    return;
  }
  if (s.index.size() >= per_shard_ && s.tail != kNil) EvictSlot(s, s.tail);
  uint32_t i;
  if (!s.free.empty()) {
    i = s.free.back();
    s.free.pop_back();
  } else {
    i = static_cast<uint32_t>(s.slots.size());
    s.slots.emplace_back();
  }
  SubjectState& st = s.slots[i];
  bool created = true;
  if (store_ && store_->Take(id_hash, &st)) {
    created = false;
  } else {
    st = SubjectState();
    st.id_hash = id_hash;
    st.SetId(id);
  }
  st.lru_prev = st.lru_next = kNil;
  s.index.emplace(id_hash, i);
  PushFront(s, i);
  fn(st, created);
}

void SubjectTable::ForEachLive(const std::function<void(const SubjectState&)>& fn) const {
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    for (const auto& [hash, slot] : shard->index) fn(shard->slots[slot]);
  }
}

void SubjectTable::ForEachEvicted(const std::function<void(const SubjectState&)>& fn) const {
  if (store_) store_->ForEach(fn);
}

void SubjectTable::RestoreEvicted(const SubjectState& saved) {
  if (store_) store_->Put(saved);
}

void SubjectTable::RestoreLive(const SubjectState& saved) {
  With(saved.id_hash, saved.IdView(), [&](SubjectState& st, bool) {
    const uint32_t prev = st.lru_prev, next = st.lru_next;
    st = saved;
    st.lru_prev = prev;
    st.lru_next = next;
  });
}

bool SubjectTable::Read(uint64_t id_hash, SubjectState* out) const {
  Shard& s = ShardOf(id_hash);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.index.find(id_hash);
    if (it != s.index.end()) {
      *out = s.slots[it->second];
      return true;
    }
  }
  return store_ && store_->Peek(id_hash, out);
}

size_t SubjectTable::EvictIdle(int64_t cutoff_ns) {
  size_t evicted = 0;
  for (auto& sp : shards_) {
    Shard& s = *sp;
    std::lock_guard<std::mutex> lock(s.mu);
    while (s.tail != kNil && s.slots[s.tail].last_seen_ns < cutoff_ns) {
      EvictSlot(s, s.tail);
      ++evicted;
    }
  }
  return evicted;
}

size_t SubjectTable::size() const {
  return SumOverShards(shards_, [](const auto& shard) { return shard.index.size(); });
}

uint64_t SubjectTable::evictions() const {
  return SumOverShards(shards_, [](const auto& shard) { return uint64_t{shard.evictions}; });
}

}  // namespace moat::detect
