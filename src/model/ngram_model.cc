#include "model/ngram_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace moat::model {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'A', 'T', 'L', 'M', '0', '1'};
constexpr uint32_t kFormatVersion = 1;

uint64_t Push(uint64_t key, uint32_t token) { return (key << 16) | (token & 0xffffu); }

// Absolute discount from the counts-of-counts (Ney et al.), clamped to a sane range.
double DiscountFromCounts(const std::vector<std::pair<uint64_t, uint32_t>>& grams) {
  double n1 = 0, n2 = 0;
  for (const auto& [key, c] : grams) {
    if (c == 1) ++n1;
    if (c == 2) ++n2;
  }
  double d = (n1 + 2 * n2) > 0 ? n1 / (n1 + 2 * n2) : 0.5;
  return std::clamp(d, 0.1, 0.95);
}

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    buf_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void PutBytes(std::string_view s) { buf_.append(s); }
  const std::string& data() const { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  bool Get(T* v) {
    if (data_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool GetBytes(size_t n, std::string* out) {
    if (data_.size() - pos_ < n) return false;
    out->assign(data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool GetArray(size_t n, std::vector<T>* out) {
    if (n > (data_.size() - pos_) / sizeof(T)) return false;
    out->resize(n);
    std::memcpy(out->data(), data_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<NGramModel>> NGramModel::Train(std::span<const std::string> documents,
                                                        const NGramTrainOptions& options) {
  if (options.order < 2 || options.order > 4) {
    return InvalidArgumentError("n-gram order must be 2, 3 or 4");
  }
  if (documents.empty()) return InvalidArgumentError("empty training corpus");
  const int n = options.order;
  MOAT_ASSIGN_OR_RETURN(
      WordTokenizer tokenizer,
      WordTokenizer::Train(documents, options.max_vocab, options.min_piece_count));
  auto model = std::unique_ptr<NGramModel>(new NGramModel(std::move(tokenizer)));
  model->order_ = n;
  const int32_t vocab = model->tokenizer_.vocab_size();

  // Raw counts of the highest order over <s>-padded documents.
  std::vector<std::unordered_map<uint64_t, uint32_t>> counts(n + 1);
  std::vector<TokenId> seq;
  for (const std::string& doc : documents) {
    seq.assign(n - 1, WordTokenizer::kBos);
    std::vector<TokenId> toks = model->tokenizer_.Encode(doc);
    seq.insert(seq.end(), toks.begin(), toks.end());
    seq.push_back(WordTokenizer::kEos);
    for (size_t i = n - 1; i < seq.size(); ++i) {
      uint64_t key = 0;
      for (int j = n - 1; j >= 0; --j) key = Push(key, seq[i - j]);
      ++counts[n][key];
    }
  }
  // Kneser-Ney continuation counts for the lower orders: distinct left extensions.
  for (int k = n - 1; k >= 1; --k) {
    const uint64_t mask = k == 4 ? ~0ull : ((1ull << (16 * k)) - 1);
    for (const auto& [key, c] : counts[k + 1]) ++counts[k][key & mask];
  }

  model->discounts_.assign(n, 0);
  // Order 1: continuation unigram interpolated with the uniform distribution (no <s>).
  {
    std::vector<std::pair<uint64_t, uint32_t>> grams(counts[1].begin(), counts[1].end());
    const double d = DiscountFromCounts(grams);
    model->discounts_[0] = d;
    double total = 0;
    for (const auto& g : grams) total += g.second;
    const double gamma = d * static_cast<double>(grams.size()) / total;
    model->unigram_.assign(vocab, static_cast<float>(gamma / (vocab - 1)));
    model->unigram_[WordTokenizer::kBos] = 0;
    for (const auto& [key, c] : grams) {
      model->unigram_[key] += static_cast<float>(std::max(c - d, 0.0) / total);
    }
  }
  model->tables_.assign(n + 1, Table{});
  for (int k = 2; k <= n; ++k) {
    std::vector<std::pair<uint64_t, uint32_t>> grams(counts[k].begin(), counts[k].end());
    counts[k].clear();
    std::sort(grams.begin(), grams.end());
    const double d = DiscountFromCounts(grams);
    model->discounts_[k - 1] = d;
    // Only the highest order (raw counts) is pruned: lower orders hold continuation counts, where
    // 1 (a single distinct left context) is common and informative.
    const uint32_t min_count = (k == n && k >= 3) ? static_cast<uint32_t>(options.min_count_high) : 1;
    Table& table = model->tables_[k];
    for (size_t i = 0; i < grams.size();) {
      const uint64_t ctx = grams[i].first >> 16;
      size_t j = i;
      double total = 0;
      while (j < grams.size() && (grams[j].first >> 16) == ctx) total += grams[j++].second;
      Context c;
      c.first = static_cast<uint32_t>(table.entries.size());
      double kept = 0;
      for (size_t e = i; e < j; ++e) {
        if (grams[e].second < min_count) continue;
        const double p = std::max(grams[e].second - d, 0.0) / total;
        kept += p;
        table.entries.push_back({static_cast<uint32_t>(grams[e].first & 0xffffu),
                                 static_cast<float>(p)});
      }
      c.count = static_cast<uint32_t>(table.entries.size() - c.first);
      c.gamma = static_cast<float>(1.0 - kept);
      if (c.count > 0) {
        for (int t = k - 2; t >= 0; --t) {
          table.context_tokens.push_back(static_cast<uint32_t>((ctx >> (16 * t)) & 0xffffu));
        }
        table.contexts.push_back(c);
      }
      i = j;
    }
  }
  model->BuildIndex();
  return model;
}

void NGramModel::BuildIndex() {
  for (int k = 2; k <= order_; ++k) {
    Table& table = tables_[k];
    table.index.clear();
    table.index.reserve(table.contexts.size());
    for (size_t c = 0; c < table.contexts.size(); ++c) {
      uint64_t key = 0;
      for (int t = 0; t < k - 1; ++t) key = Push(key, table.context_tokens[c * (k - 1) + t]);
      table.index.emplace(key, static_cast<uint32_t>(c));
    }
  }
}

const NGramModel::Context* NGramModel::FindContext(int k, std::span<const TokenId> context) const {
  const Table& table = tables_[k];
  uint64_t key = 0;
  const ptrdiff_t size = static_cast<ptrdiff_t>(context.size());
  for (int j = k - 1; j >= 1; --j) {
    const ptrdiff_t pos = size - j;
    key = Push(key, pos >= 0 ? static_cast<uint32_t>(context[pos]) : WordTokenizer::kBos);
  }
  auto it = table.index.find(key);
  return it == table.index.end() ? nullptr : &table.contexts[it->second];
}

void NGramModel::NextTokenLogits(std::span<const TokenId> context, std::vector<float>* logits) const {
  std::vector<float>& p = *logits;
  p.assign(unigram_.begin(), unigram_.end());
  for (int k = 2; k <= order_; ++k) {
    const Context* c = FindContext(k, context);
    if (c == nullptr) continue;  // p_k = p_{k-1}; a longer context may still be stored
    const float g = c->gamma;
    for (float& v : p) v *= g;
    const Entry* e = tables_[k].entries.data() + c->first;
    for (uint32_t i = 0; i < c->count; ++i) p[e[i].token] += e[i].prob;
  }
  for (float& v : p) v = v > 0 ? std::log(v) : -std::numeric_limits<float>::infinity();
}

double NGramModel::LogProb(std::span<const TokenId> context, TokenId token) const {
  if (token < 0 || token >= static_cast<TokenId>(unigram_.size())) {
    return -std::numeric_limits<double>::infinity();
  }
  double p = unigram_[token];
  for (int k = 2; k <= order_; ++k) {
    const Context* c = FindContext(k, context);
    if (c == nullptr) continue;
    p *= c->gamma;
    const Entry* begin = tables_[k].entries.data() + c->first;
    const Entry* end = begin + c->count;
    const Entry* e = std::lower_bound(begin, end, static_cast<uint32_t>(token),
                                      [](const Entry& a, uint32_t t) { return a.token < t; });
    if (e != end && e->token == static_cast<uint32_t>(token)) p += e->prob;
  }
  return p > 0 ? std::log(p) : -std::numeric_limits<double>::infinity();
}

Status NGramModel::Save(const std::string& path) const {
  Writer w;
  w.PutBytes(std::string_view(kMagic, 8));
  w.Put<uint32_t>(kFormatVersion);
  w.Put<uint32_t>(static_cast<uint32_t>(order_));
  w.Put<uint32_t>(static_cast<uint32_t>(tokenizer_.pieces().size()));
  for (const std::string& piece : tokenizer_.pieces()) {
    w.Put<uint16_t>(static_cast<uint16_t>(piece.size()));
    w.PutBytes(piece);
  }
  for (double d : discounts_) w.Put<double>(d);
  for (float p : unigram_) w.Put<float>(p);
  for (int k = 2; k <= order_; ++k) {
    const Table& t = tables_[k];
    w.Put<uint64_t>(t.contexts.size());
    w.Put<uint64_t>(t.entries.size());
    for (size_t c = 0; c < t.contexts.size(); ++c) {
      for (int j = 0; j < k - 1; ++j) w.Put<uint32_t>(t.context_tokens[c * (k - 1) + j]);
      w.Put<uint32_t>(t.contexts[c].first);
      w.Put<uint32_t>(t.contexts[c].count);
      w.Put<float>(t.contexts[c].gamma);
    }
    for (const Entry& e : t.entries) {
      w.Put<uint32_t>(e.token);
      w.Put<float>(e.prob);
    }
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return UnavailableError("cannot write model file " + tmp);
    out.write(w.data().data(), static_cast<std::streamsize>(w.data().size()));
    if (!out) return UnavailableError("short write to " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return UnavailableError("cannot rename " + tmp + " to " + path);
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<NGramModel>> NGramModel::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open model file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  Reader r(data);
  auto bad = [&](const char* what) { return DataLossError(path + ": malformed model file (" + what + ")"); };
  std::string magic;
  if (!r.GetBytes(8, &magic) || magic != std::string_view(kMagic, 8)) return bad("magic");
  uint32_t version = 0, order = 0, num_pieces = 0;
  if (!r.Get(&version) || version != kFormatVersion) return bad("version");
  if (!r.Get(&order) || order < 2 || order > 4) return bad("order");
  if (!r.Get(&num_pieces) || num_pieces > 65535 - WordTokenizer::kFirstPiece) return bad("vocab");
  std::vector<std::string> pieces(num_pieces);
  for (auto& piece : pieces) {
    uint16_t len = 0;
    if (!r.Get(&len) || !r.GetBytes(len, &piece)) return bad("pieces");
  }
  auto model = std::unique_ptr<NGramModel>(new NGramModel(WordTokenizer(std::move(pieces))));
  model->order_ = static_cast<int>(order);
  const uint32_t vocab = static_cast<uint32_t>(model->tokenizer_.vocab_size());
  if (!r.GetArray(order, &model->discounts_)) return bad("discounts");
  if (!r.GetArray(vocab, &model->unigram_)) return bad("unigram");
  model->tables_.assign(order + 1, Table{});
  for (uint32_t k = 2; k <= order; ++k) {
    Table& t = model->tables_[k];
    uint64_t nc = 0, ne = 0;
    if (!r.Get(&nc) || !r.Get(&ne)) return bad("table header");
    if (nc > data.size() || ne > data.size()) return bad("table size");
    t.contexts.resize(nc);
    t.context_tokens.resize(nc * (k - 1));
    for (uint64_t c = 0; c < nc; ++c) {
      for (uint32_t j = 0; j < k - 1; ++j) {
        if (!r.Get(&t.context_tokens[c * (k - 1) + j])) return bad("context");
        if (t.context_tokens[c * (k - 1) + j] >= vocab) return bad("context token");
      }
      Context& ctx = t.contexts[c];
      if (!r.Get(&ctx.first) || !r.Get(&ctx.count) || !r.Get(&ctx.gamma)) return bad("context");
      if (static_cast<uint64_t>(ctx.first) + ctx.count > ne) return bad("context range");
    }
    t.entries.resize(ne);
    for (Entry& e : t.entries) {
      if (!r.Get(&e.token) || !r.Get(&e.prob) || e.token >= vocab) return bad("entry");
    }
  }
  if (!r.done()) return bad("trailing bytes");
  model->BuildIndex();
  return model;
}

}  // namespace moat::model
