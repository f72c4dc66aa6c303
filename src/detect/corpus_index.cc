#include "detect/corpus_index.h"

// xxHash's header-only mode: the band hashes inline (the same XXH3 as the library's).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "detect/binary_fields.h"
#include "detect/content_model.h"
#include "detect/hash_batch.h"
#include "detect/sketches.h"

namespace moat::detect {
namespace {

constexpr int kPerms = kCorpusBands * kCorpusRows;
constexpr uint64_t kPresentBits = uint64_t{1} << 22;  // 512 KiB
constexpr uint32_t kNone = UINT32_MAX;

// Function words carry no item identity; dropping them makes a reworded wrapper cheap to see
// through.
constexpr std::string_view kFunctionWords[] = {
    "a",     "about", "after", "all",   "also",  "am",    "an",    "and",   "any",   "are",
    "as",    "at",    "be",    "been",  "but",   "by",    "can",   "could", "did",   "do",
    "does",  "each",  "for",   "from",  "had",   "has",   "have",  "he",    "her",   "him",
    "his",   "how",   "i",     "if",    "in",    "into",  "is",    "it",    "its",   "just",
    "me",    "more",  "most",  "my",    "no",    "not",   "of",    "on",    "one",   "or",
    "other", "our",   "out",   "over",  "please", "she",  "should", "so",   "some",  "such",
    "than",  "that",  "the",   "their", "them",  "then",  "there", "these", "they",  "this",
    "those", "to",    "up",    "us",    "very",  "was",   "we",    "were",  "what",  "when",
    "where", "which", "who",   "why",   "will",  "with",  "would", "you",   "your"};

// The function words' hashes in an open-addressing table: a word is tested by its hash (which
// the sketch needs anyway), not by string comparisons.
class FunctionWordSet {
 public:
  FunctionWordSet() {
    for (std::string_view w : kFunctionWords) {
      const uint64_t h = XXH3_64bits(w.data(), w.size());
      size_t slot = Slot(h);
      while (slots_[slot].used && slots_[slot].hash != h) slot = (slot + 1) % kSlots;
      slots_[slot] = {h, true};
    }
  }
  bool Contains(uint64_t h) const {
    for (size_t slot = Slot(h); slots_[slot].used; slot = (slot + 1) % kSlots) {
      if (slots_[slot].hash == h) return true;
    }
    return false;
  }

 private:
  static constexpr size_t kSlots = 512;  // > 5 x the words: most lookups probe one slot
  static size_t Slot(uint64_t h) { return static_cast<size_t>(h >> 55); }  // XXH3: uniform bits
  struct Entry {
    uint64_t hash = 0;
    bool used = false;
  };
  std::array<Entry, kSlots> slots_{};
};

const FunctionWordSet& FunctionWords() {
  static const FunctionWordSet set;
  return set;
}

// Odd multipliers of the multiply-shift permutations.
constexpr std::array<uint64_t, kPerms> kMultipliers = [] {
  std::array<uint64_t, kPerms> m{};
  uint64_t x = 0x6d6f6174636f7270ULL;
  for (auto& v : m) v = SplitMix64Next(x) | 1;
  return m;
}();

uint64_t Key(int band, uint32_t hash) { return (static_cast<uint64_t>(band) << 32) | hash; }

// Lookup reads at most this many items of one band's chain, and keeps at most this many
// candidates (a band shared by many items is a weak one).
constexpr int kMaxChain = 24;

}  // namespace

ItemSketch SketchItem(std::string_view text) {
  ContentFeatures features;
  WordHashes words;
  ExtractContentFeatures(text, &features, &words);
  return SketchWords(words);
}

bool IsFunctionWord(uint64_t word_hash) { return FunctionWords().Contains(word_hash); }

ItemSketch SketchWords(const WordHashes& words) {
  ItemSketch s;
  std::array<uint32_t, kPerms> mins;
  mins.fill(UINT32_MAX);
  const FunctionWordSet& function_words = FunctionWords();
  int content_words = 0;
  for (int i = 0; i < words.count; ++i) {
    const uint64_t h = words.hash[i];
    if (function_words.Contains(h)) continue;
    ++content_words;
    MultiplyShiftMinUpdate(h, kMultipliers.data(), mins.data(), kPerms);
  }
  if (content_words < kCorpusMinContentWords) return s;
  for (int b = 0; b < kCorpusBands; ++b) {
    s.band[b] = static_cast<uint32_t>(
        XXH3_64bits_withSeed(&mins[b * kCorpusRows], sizeof(uint32_t) * kCorpusRows, b + 1));
  }
  s.valid = true;
  return s;
}

uint16_t CorpusIndex::AddCorpus(std::string name, std::string role,
                                const std::vector<std::string_view>& texts) {
  const uint16_t corpus = static_cast<uint16_t>(corpora_.size());
  corpora_.push_back({std::move(name), std::move(role), 0});
  for (std::string_view t : texts) {
    const ItemSketch s = SketchItem(t);
    if (!s.valid) continue;
    // Exact sketch duplicates (the same item twice in the data) are one item.
    bool duplicate = true;
    const CorpusMatch m = Lookup(s);
    if (m.found) {
      for (int b = 0; b < kCorpusBands; ++b) duplicate = duplicate && bands_[m.item][b] == s.band[b];
    } else {
      duplicate = false;
    }
    if (duplicate) continue;
    const uint32_t item = static_cast<uint32_t>(item_corpus_.size());
    item_corpus_.push_back(corpus);
    bands_.push_back(s.band);
    IndexItem(item);
    ++corpora_.back().items;
  }
  Seal();
  return corpus;
}

void CorpusIndex::IndexItem(uint32_t item) {
  slots_.clear();  // the chains change: Lookup reads them until the next Seal()
  postings_.clear();
  next_.emplace_back();
  next_.back().fill(kNone);
  if (present_.empty()) present_.assign(kPresentBits / 64, 0);
  for (int b = 0; b < kCorpusBands; ++b) {
    const uint64_t bit = Mix64(Key(b, bands_[item][b])) & (kPresentBits - 1);
    present_[bit >> 6] |= 1ULL << (bit & 63);
    // Prepend: the chain of a band runs from the newest item to the oldest.
    auto [it, inserted] = lookup_.try_emplace(Key(b, bands_[item][b]), item);
    if (inserted) continue;
    next_[item][b] = it->second;
    it->second = item;
  }
}

CorpusMatch CorpusIndex::Lookup(std::string_view text) const {
  if (empty()) return {};
  return Lookup(SketchItem(text));
}

size_t CorpusIndex::SlotOf(uint64_t key, uint64_t mixed) const {
  const size_t mask = slots_.size() - 1;
  size_t i = static_cast<size_t>(mixed >> 32) & mask;
  while (slots_[i].count != 0 && slots_[i].key != key) i = (i + 1) & mask;
  return i;
}

void CorpusIndex::Seal() {
  size_t n = 16;
  while (n < 2 * lookup_.size()) n *= 2;
  slots_.assign(n, Slot{});
  postings_.clear();
  for (const auto& [key, newest] : lookup_) {
    const int band = static_cast<int>(key >> 32);
    Slot& slot = slots_[SlotOf(key, Mix64(key))];
    slot.key = key;
    slot.begin = static_cast<uint32_t>(postings_.size());
    for (uint32_t x = newest; x != kNone && slot.count < kMaxChain; x = next_[x][band]) {
      postings_.push_back(x);
      ++slot.count;
    }
  }
}

template <typename Fn>
void CorpusIndex::ForEachChainItem(uint64_t key, uint64_t mixed, int band, Fn&& vote) const {
  if (!slots_.empty()) {
    const Slot& slot = slots_[SlotOf(key, mixed)];
    for (uint32_t i = 0; i < slot.count; ++i) vote(postings_[slot.begin + i]);
    return;
  }
  auto it = lookup_.find(key);
  if (it == lookup_.end()) return;
  int chain = 0;
  for (uint32_t x = it->second; x != kNone && chain < kMaxChain; x = next_[x][band], ++chain) vote(x);
}

CorpusMatch CorpusIndex::Lookup(const ItemSketch& s) const {
  CorpusMatch m;
  if (!s.valid || empty()) return m;
  // Candidates from each band's chain.
  std::array<uint32_t, kMaxChain> cand;
  std::array<uint8_t, kMaxChain> votes{};
  int ncand = 0;
  // Bit (x % 256) of every candidate x: an item whose bit is clear is new without a scan.
  std::array<uint64_t, 4> seen{};
  auto vote = [&](uint32_t x) {
    const uint64_t bit = uint64_t{1} << (x & 63);
    uint64_t& seen_word = seen[(x >> 6) & 3];
    int k = ncand;
    if (seen_word & bit) {
      k = 0;
      while (k < ncand && cand[k] != x) ++k;
    }
    if (k == ncand) {
      if (ncand == kMaxChain) return;
      cand[ncand++] = x;
      seen_word |= bit;
    }
    ++votes[k];
  };
  for (int b = 0; b < kCorpusBands; ++b) {
    const uint64_t key = Key(b, s.band[b]);
    const uint64_t mixed = Mix64(key);
    const uint64_t bit = mixed & (kPresentBits - 1);
    if (!((present_[bit >> 6] >> (bit & 63)) & 1)) continue;
    ForEachChainItem(key, mixed, b, vote);
  }
  for (int k = 0; k < ncand; ++k) {
    if (votes[k] >= kCorpusMinBandMatches && (!m.found || cand[k] < m.item)) {
      m.found = true;
      m.item = cand[k];
      m.corpus = item_corpus_[cand[k]];
    }
  }
  return m;
}

void CorpusIndex::AppendTo(std::string* out) const {
  PutU32(out, static_cast<uint32_t>(corpora_.size()));
  for (const Corpus& c : corpora_) {
    PutString(out, c.name);
    PutString(out, c.role);
    PutU32(out, c.items);
  }
  // Items are stored corpus by corpus, in order, so the item -> corpus map is implicit.
  for (const auto& bands : bands_) {
    for (uint32_t b : bands) PutU32(out, b);
  }
}

StatusOr<CorpusIndex> CorpusIndex::ParseFrom(std::string_view* in) {
  CorpusIndex index;
  uint32_t ncorpora = 0;
  if (!GetU32(in, &ncorpora) || ncorpora > 4096) return DataLossError("corpus index header corrupt");
  uint64_t total = 0;
  for (uint32_t i = 0; i < ncorpora; ++i) {
    Corpus c;
    if (!GetString(in, &c.name) || !GetString(in, &c.role) || !GetU32(in, &c.items)) {
      return DataLossError("corpus index table truncated");
    }
    total += c.items;
    index.corpora_.push_back(std::move(c));
  }
  if (in->size() < total * kCorpusBands * 4) return DataLossError("corpus index items truncated");
  index.bands_.resize(total);
  index.item_corpus_.reserve(total);
  index.lookup_.reserve(total * kCorpusBands);
  for (uint16_t c = 0; c < index.corpora_.size(); ++c) {
    for (uint32_t k = 0; k < index.corpora_[c].items; ++k) index.item_corpus_.push_back(c);
  }
  for (uint32_t item = 0; item < total; ++item) {
    for (int b = 0; b < kCorpusBands; ++b) GetU32(in, &index.bands_[item][b]);
    index.IndexItem(item);
  }
  index.Seal();
  return index;
}

}  // namespace moat::detect
