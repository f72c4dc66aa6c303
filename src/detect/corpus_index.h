#pragma once
// CorpusIndex: known-corpus membership. A paraphrase-tolerant near-duplicate index of public
// instruction, reasoning and benchmark items: "this prompt is a (reworded) item of public
// corpus C, item i". Detection uses it as content evidence and, above all, to see how the
// accounts that ask a corpus's items together cover it (src/detect/evidence_stages.h).
//
// An item's sketch is a MinHash of the set of its *content words* (the lower-cased word and
// number tokens of the content model's tokenizer, minus a short list of function words), cut
// into kBands bands of kRows minima. A prompt
// matches an item when at least kMinBandMatches bands are equal. Measured on eval-split items
// of the shared datasets, each rewritten in two different voices by the traffic generator
// (a greeting, a context sentence, "can you ...", casing): 70 % of such pairs match, and none
// of 3,020 pairs of unrelated items (two matching bands: 83 % and 0.07 %). Texts with fewer
// than kMinContentWords content words are neither indexed nor looked up.
//
// Immutable after building; Lookup() is thread-safe and allocation-free.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "moat/status.h"

namespace moat::detect {

inline constexpr int kCorpusBands = 8;
inline constexpr int kCorpusRows = 3;
inline constexpr int kCorpusMinBandMatches = 3;
inline constexpr int kCorpusMinContentWords = 6;

// The band hashes of one text; `valid` is false for texts too short to sketch.
struct ItemSketch {
  std::array<uint32_t, kCorpusBands> band{};
  bool valid = false;
};
ItemSketch SketchItem(std::string_view text);
// The same from a text's word hashes (content_model.h), when they are already at hand.
struct WordHashes;
ItemSketch SketchWords(const WordHashes& words);
// Whether a word hash (WordHashes) is one of the function words that sketches leave out.
bool IsFunctionWord(uint64_t word_hash);

struct CorpusMatch {
  bool found = false;
  uint16_t corpus = 0;  // index into CorpusIndex::corpora()
  uint32_t item = 0;    // item number, unique across all corpora
};

class CorpusIndex {
 public:
  struct Corpus {
    std::string name;  // dataset name from the MANIFEST
    std::string role;  // its role (distill, cot, benchmark)
    uint32_t items = 0;
  };

  CorpusIndex() = default;
  CorpusIndex(CorpusIndex&&) = default;
  CorpusIndex& operator=(CorpusIndex&&) = default;

  // Adds one corpus's items (texts too short to sketch and exact duplicates are skipped);
  // returns its index.
  uint16_t AddCorpus(std::string name, std::string role, const std::vector<std::string_view>& texts);

  // The item `text` is a near-duplicate of, if any (the lowest-numbered on ties).
  CorpusMatch Lookup(std::string_view text) const;
  CorpusMatch Lookup(const ItemSketch& sketch) const;

  const std::vector<Corpus>& corpora() const { return corpora_; }
  size_t items() const { return item_corpus_.size(); }
  bool empty() const { return item_corpus_.empty(); }

  // The index's section of the detection model file, and its parser.
  void AppendTo(std::string* out) const;
  static StatusOr<CorpusIndex> ParseFrom(std::string_view* in);

 private:
  void IndexItem(uint32_t item);

  std::vector<Corpus> corpora_;
  std::vector<uint16_t> item_corpus_;                // item -> corpus
  std::vector<std::array<uint32_t, kCorpusBands>> bands_;  // item -> band hashes
  // (band number, band hash) -> the newest item with it; older items with the same band are
  // chained through next_.
  std::unordered_map<uint64_t, uint32_t> lookup_;
  // One bit per (band, hash) key present, so that most lookups (prompts that are no known
  // item) cost no map probe.
  std::vector<uint64_t> present_;
  std::vector<std::array<uint32_t, kCorpusBands>> next_;  // item, band -> next item or kNone

  // The read path, built by Seal() once the corpora are in (AddCorpus, ParseFrom): each key's
  // chain, as far as Lookup reads it, stored as one run of postings_, found through an
  // open-addressing table. One slot and one run instead of a map node and a hop through next_
  // per item: the same candidates in the same order, so the same answer as the chains.
  struct Slot {
    uint64_t key = 0;
    uint32_t begin = 0;  // into postings_
    uint32_t count = 0;  // 0: an empty slot
  };
  void Seal();
  // The slot where `key` (whose Mix64 is `mixed`) is or would be: linear probing from the
  // high half of `mixed`.
  size_t SlotOf(uint64_t key, uint64_t mixed) const;
  // Calls vote(item) for the items of `key`'s chain (key = band << 32 | band hash, `mixed` its
  // Mix64), newest first, at most as many as Lookup reads: from postings_ when sealed, else
  // by walking the chain.
  template <typename Fn>
  void ForEachChainItem(uint64_t key, uint64_t mixed, int band, Fn&& vote) const;
  std::vector<Slot> slots_;  // a power of two of them, at most half used; empty: not sealed
  std::vector<uint32_t> postings_;
};

}  // namespace moat::detect
