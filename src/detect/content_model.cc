#include "detect/content_model.h"

// xxHash's header-only mode, so that the per-token hashes below inline (the same XXH3 as the
// library's: the hash is a fixed function of the bytes).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "detect/ascii.h"
#include "detect/binary_fields.h"
#include "detect/hash_batch.h"
#include "detect/sketches.h"

namespace moat::detect {
namespace {

// Feature namespaces: a token as a unigram, a bigram, a character 4-gram, ... never collide.
constexpr uint64_t kUnigram = 0x756e690000000001ULL;
constexpr uint64_t kBigram = 0x6269670000000002ULL;
constexpr uint64_t kCharGram = 0x6368720000000003ULL;
constexpr uint64_t kFirst = 0x6669720000000004ULL;
constexpr uint64_t kFirstPair = 0x6670720000000005ULL;
constexpr uint64_t kLast = 0x6c61730000000006ULL;
constexpr uint64_t kShape = 0x7368700000000007ULL;

// Character 4-grams only for the first words of a text (they are the costliest features).
constexpr int kCharGramWords = 64;

enum ByteClass : uint8_t { kSpace = 0, kWord, kDigit, kPunct };

struct ByteTable {
  std::array<uint8_t, 256> cls{};
  constexpr ByteTable() {
    for (int c = 0; c < 256; ++c) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '\'' || c >= 0x80) {
        cls[c] = kWord;
      } else if (c >= '0' && c <= '9') {
        cls[c] = kDigit;
      } else if (c == ' ' || c == '\t' || c == '\r' || c < 0x20) {
        cls[c] = c == '\n' ? kPunct : kSpace;
      } else {
        cls[c] = kPunct;
      }
    }
  }
};
constexpr ByteTable kTable;

uint64_t TokenHash(std::string_view tok) { return XXH3_64bits(tok.data(), tok.size()); }

int Log2Bucket(int x) {
  int b = 0;
  while (x > 0 && b < 15) {
    x >>= 1;
    ++b;
  }
  return b;
}

// Collects a text's features. Every feature hash is Mix64 of a value built from the tokens
// (HashCombine(a, b) = Mix64(HashCombineInput(a, b))): the values are collected first and
// mixed in one batch at the end (hash_batch.h), which vector units do several at a time.
class Emitter {
 public:
  explicit Emitter(ContentFeatures* out) : out_(*out) {}
  // Adds the feature Mix64(x).
  void AddMixOf(uint64_t x) {
    if (count_ < kMaxContentFeatures) out_.hash[count_++] = x;
  }
  // Adds the feature HashCombine(a, b).
  void AddCombined(uint64_t a, uint64_t b) { AddMixOf(HashCombineInput(a, b)); }
  void Shape(uint64_t kind, int value) { AddMixOf(kShape ^ (kind << 16) ^ static_cast<uint64_t>(value)); }
  // Mixes the collected values into the features.
  void Finish() {
    Mix64Batch(out_.hash.data(), 0, out_.hash.data(), static_cast<size_t>(count_));
    out_.count = count_;
  }

 private:
  ContentFeatures& out_;
  int count_ = 0;
};

// The token of each punctuation byte: Mix64(0x7075000000000000 ^ c), computed once.
const std::array<uint64_t, 256>& PunctTokens() {
  static const std::array<uint64_t, 256> tokens = [] {
    std::array<uint64_t, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = Mix64(0x7075000000000000ULL ^ static_cast<uint64_t>(c));
    return t;
  }();
  return tokens;
}

// Copies the scanned window of `text` (head and tail of long texts) into buf, lower-cased, and
// counts its upper-case letters.
std::string_view Window(std::string_view text, char* buf, int* upper) {
  if (text.size() <= kContentScanChars) {
    *upper = static_cast<int>(LowerAscii(text.data(), text.size(), buf));
    return {buf, text.size()};
  }
  size_t n = LowerAscii(text.data(), kContentHeadChars, buf);
  buf[kContentHeadChars - 1] = '\n';  // the cut is a boundary
  n += LowerAscii(text.data() + text.size() - kContentTailChars, kContentTailChars, buf + kContentHeadChars);
  *upper = static_cast<int>(n);
  return {buf, kContentScanChars};
}

}  // namespace

int LlrBin(float llr) {
  const float x = (llr + kLlrRange) / (2 * kLlrRange) * kLlrBins;
  return std::clamp(static_cast<int>(std::floor(x)), 0, kLlrBins - 1);
}

float LlrBinFloor(int bin) { return -kLlrRange + 2 * kLlrRange * bin / kLlrBins; }

std::string_view ContentHeadName(int head) {
  static constexpr std::string_view kNames[kNumHeads] = {"instruction", "reasoning", "benchmark",
                                                         "jailbreak"};
  return head >= 0 && head < kNumHeads ? kNames[head] : "unknown";
}

void ExtractContentFeatures(std::string_view text, ContentFeatures* out, WordHashes* words_out) {
  Emitter emit(out);
  // Word hashes go to a scratch list when the caller wants none.
  WordHashes unused_words;
  WordHashes& word_list = words_out != nullptr ? *words_out : unused_words;
  int nwords = 0;
  const std::array<uint64_t, 256>& punct_tokens = PunctTokens();
  char buf[kContentScanChars];
  int upper = 0;
  const std::string_view s = Window(text, buf, &upper);

  uint64_t prev = 0x626f730000000000ULL;  // beginning of text
  uint64_t first = 0, first_pair = 0, last = 0;
  int tokens = 0, words = 0, digits = 0, lines = 1, questions = 0, code_chars = 0, options = 0;
  bool line_start = true;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const uint8_t cls = kTable.cls[c];
    if (cls == kSpace) {
      ++i;
      continue;
    }
    // A lettered option at the start of a line: "a)", "(b)", "c.", "d:".
    if (line_start) {
      size_t j = i + (s[i] == '(' ? 1 : 0);
      if (j + 1 < s.size() && s[j] >= 'a' && s[j] <= 'e' &&
          (s[j + 1] == ')' || s[j + 1] == '.' || s[j + 1] == ':') &&
          (j + 2 >= s.size() || s[j + 2] == ' ')) {
        ++options;
      }
      line_start = false;
    }
    size_t j = i + 1;
    uint64_t tok;
    if (cls == kWord || cls == kDigit) {
      bool all_digits = cls == kDigit;
      while (j < s.size()) {
        const uint8_t k = kTable.cls[static_cast<unsigned char>(s[j])];
        if (k != kWord && k != kDigit) break;
        all_digits = all_digits && k == kDigit;
        ++j;
      }
      const std::string_view word = s.substr(i, j - i);
      if (all_digits) {
        ++digits;
        const char cls_name[2] = {'#', static_cast<char>('0' + std::min<size_t>(word.size(), 4))};
        tok = TokenHash(std::string_view(cls_name, 2));
        if (words_out != nullptr && nwords < WordHashes::kMax) word_list.hash[nwords++] = TokenHash(word);
      } else {
        tok = TokenHash(word);
        if (nwords < WordHashes::kMax) word_list.hash[nwords++] = tok;
        ++words;
        if (words <= kCharGramWords && word.size() >= 4) {
          // 4-grams of "<word>" with boundary bytes: morphology (reason, reasoning, reasoned).
          char padded[80];
          const size_t n = std::min<size_t>(word.size(), sizeof(padded) - 2);
          padded[0] = '<';
          std::memcpy(padded + 1, word.data(), n);
          padded[n + 1] = '>';
          for (size_t k = 0; k + 4 <= n + 2; ++k) {
            uint32_t g;
            std::memcpy(&g, padded + k, 4);
            emit.AddMixOf(kCharGram ^ g);
          }
        }
      }
    } else {
      if (c == '\n') {
        ++lines;
        line_start = true;
      }
      questions += c == '?';
      code_chars += c == '{' || c == '}' || c == ';' || c == '=' || c == '<' || c == '>' || c == '`';
      tok = punct_tokens[c];
    }
    emit.AddMixOf(kUnigram ^ tok);
    emit.AddCombined(kBigram ^ prev, tok);
    if (tokens == 0) first = tok;
    if (tokens == 1) first_pair = HashCombine(first, tok);
    last = tok;
    prev = tok;
    ++tokens;
    i = j;
  }
  if (tokens > 0) {
    emit.AddMixOf(kFirst ^ first);
    emit.AddMixOf(kLast ^ last);
    emit.AddCombined(kBigram ^ prev, 0x656f730000000000ULL);  // end of text
  }
  if (tokens > 1) emit.AddMixOf(kFirstPair ^ first_pair);
  emit.Shape(1, Log2Bucket(words));
  emit.Shape(2, std::min(lines, 12));
  emit.Shape(3, std::min(questions, 4));
  emit.Shape(4, Log2Bucket(digits));
  emit.Shape(5, std::min(options, 6));
  emit.Shape(6, Log2Bucket(code_chars));
  const int letters = static_cast<int>(s.size());
  emit.Shape(7, letters == 0 ? 0 : std::min(10, upper * 40 / letters));
  emit.Finish();
  if (words_out != nullptr) words_out->count = nwords;
}

void ExtractWordHashes(std::string_view text, WordHashes* out) {
  char buf[kContentScanChars];
  int upper = 0;
  const std::string_view s = Window(text, buf, &upper);
  int n = 0;
  size_t i = 0;
  while (i < s.size() && n < WordHashes::kMax) {
    const uint8_t cls = kTable.cls[static_cast<unsigned char>(s[i])];
    if (cls != kWord && cls != kDigit) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < s.size()) {
      const uint8_t k = kTable.cls[static_cast<unsigned char>(s[j])];
      if (k != kWord && k != kDigit) break;
      ++j;
    }
    out->hash[n++] = TokenHash(s.substr(i, j - i));
    i = j;
  }
  out->count = n;
}

ContentModel ContentModel::FromWeights(uint32_t buckets_log2, const std::vector<float>& weights,
                                       const std::array<HeadInfo, kNumHeads>& heads) {
  ContentModel m;
  m.buckets_log2_ = buckets_log2;
  m.heads_ = heads;
  const size_t buckets = size_t{1} << buckets_log2;
  m.weights_.assign(buckets * kNumHeads, 0);
  for (int h = 0; h < kNumHeads; ++h) {
    float max_abs = 0;
    for (size_t b = 0; b < buckets; ++b) max_abs = std::max(max_abs, std::abs(weights[b * kNumHeads + h]));
    const float scale = max_abs > 0 ? max_abs / 127.0f : 1.0f;
    m.heads_[h].scale = scale;
    for (size_t b = 0; b < buckets; ++b) {
      const float q = std::nearbyint(weights[b * kNumHeads + h] / scale);
      m.weights_[b * kNumHeads + h] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
  return m;
}

std::array<float, kNumHeads> ContentModel::RawLogits(const ContentFeatures& f) const {
  static_assert(kNumHeads == 4, "one accumulator per head below");
  std::array<float, kNumHeads> raw{};
  if (empty() || f.count == 0) return raw;
  // Plain local accumulators: the compiler keeps them in registers (an array indexed in the
  // loop was reloaded and stored for every feature).
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  const int8_t* weights = weights_.data();
  const int shift = 64 - static_cast<int>(buckets_log2_);
  std::array<uint64_t, kMaxContentFeatures> mixed;  // Mix64 of each feature: its bucket's bits
  Mix64Batch(f.hash.data(), 0, mixed.data(), static_cast<size_t>(f.count));
  for (int i = 0; i < f.count; ++i) {
    const int8_t* w = weights + (mixed[i] >> shift) * kNumHeads;
    a0 += w[0];
    a1 += w[1];
    a2 += w[2];
    a3 += w[3];
  }
  const std::array<int32_t, kNumHeads> acc = {a0, a1, a2, a3};
  const float norm = 1.0f / std::sqrt(static_cast<float>(f.count));
  for (int h = 0; h < kNumHeads; ++h) raw[h] = heads_[h].bias + heads_[h].scale * acc[h] * norm;
  return raw;
}

ContentScores ContentModel::FromRaw(const std::array<float, kNumHeads>& raw) const {
  ContentScores s;
  float max_llr = -1e30f;
  for (int h = 0; h < kNumHeads; ++h) {
    s.llr[h] = heads_[h].calib_a * raw[h] + heads_[h].calib_b;
    if (s.llr[h] > max_llr) {
      max_llr = s.llr[h];
      s.top_head = h;
    }
  }
  double sum = 0;
  for (int h = 0; h < kNumHeads; ++h) sum += std::exp(static_cast<double>(s.llr[h] - max_llr));
  s.combined = max_llr + static_cast<float>(std::log(sum / static_cast<double>(kNumHeads)));
  return s;
}

ContentScores ContentModel::Score(std::string_view text) const {
  if (empty() || text.empty()) return {};
  ContentFeatures f;
  ExtractContentFeatures(text, &f);
  return FromRaw(RawLogits(f));
}

namespace {

void PutF32(std::string* out, float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  PutU32(out, v);
}
bool GetF32(std::string_view* in, float* f) {
  uint32_t v;
  if (!GetU32(in, &v)) return false;
  std::memcpy(f, &v, 4);
  return std::isfinite(*f);
}

}  // namespace

void ContentModel::AppendTo(std::string* out) const {
  PutU32(out, kContentFeatureVersion);
  PutU32(out, buckets_log2_);
  PutU32(out, kNumHeads);
  for (const HeadInfo& h : heads_) {
    PutF32(out, h.scale);
    PutF32(out, h.bias);
    PutF32(out, h.calib_a);
    PutF32(out, h.calib_b);
  }
  for (float v : organic_dist_) PutF32(out, v);
  for (float v : campaign_dist_) PutF32(out, v);
  out->append(reinterpret_cast<const char*>(weights_.data()), weights_.size());
}

StatusOr<ContentModel> ContentModel::ParseFrom(std::string_view* in) {
  uint32_t version = 0, log2 = 0, heads = 0;
  if (!GetU32(in, &version) || !GetU32(in, &log2) || !GetU32(in, &heads)) {
    return DataLossError("content model section truncated");
  }
  if (version != kContentFeatureVersion) {
    return FailedPreconditionError("content model uses feature version " + std::to_string(version) +
                                   ", this build extracts version " +
                                   std::to_string(kContentFeatureVersion) + ": retrain it");
  }
  if (log2 < 10 || log2 > 24 || heads != kNumHeads) {
    return DataLossError("content model header out of range");
  }
  ContentModel m;
  m.buckets_log2_ = log2;
  for (HeadInfo& h : m.heads_) {
    if (!GetF32(in, &h.scale) || !GetF32(in, &h.bias) || !GetF32(in, &h.calib_a) ||
        !GetF32(in, &h.calib_b)) {
      return DataLossError("content model head table truncated or not finite");
    }
  }
  for (auto* dist : {&m.organic_dist_, &m.campaign_dist_}) {
    for (float& v : *dist) {
      if (!GetF32(in, &v) || v < 0 || v > 1) return DataLossError("content model distributions corrupt");
    }
  }
  const size_t n = (size_t{1} << log2) * kNumHeads;
  if (in->size() < n) return DataLossError("content model weights truncated");
  m.weights_.resize(n);
  std::memcpy(m.weights_.data(), in->data(), n);
  in->remove_prefix(n);
  return m;
}

}  // namespace moat::detect
