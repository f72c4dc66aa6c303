#pragma once
// Shared by watermark_bench's labs: a non-owning LanguageModel view and the student of the
// distillation labs.

#include <memory>
#include <string>
#include <vector>

#include "model/builtin_engine.h"
#include "model/ngram_model.h"

namespace moat::bench {

// A non-owning LanguageModel view so several engines can share one model.
class Borrowed final : public model::LanguageModel {
 public:
  explicit Borrowed(const model::LanguageModel& m) : m_(m) {}
  const model::Tokenizer& tokenizer() const override { return m_.tokenizer(); }
  void NextTokenLogits(std::span<const model::TokenId> c, std::vector<float>* l) const override {
    m_.NextTokenLogits(c, l);
  }

 private:
  const model::LanguageModel& m_;
};

// The student of the distillation labs: an n-gram model of order `order` (default 3, with its
// own tokenizer) trained on the first f share of `harvested` topped up with clean `heldout`
// documents to the harvest's volume.
inline std::unique_ptr<model::BuiltinEngine> TrainStudent(const std::vector<std::string>& harvested,
                                                          const std::vector<std::string>& heldout,
                                                          double f, const watermark::WatermarkConfig& off,
                                                          int order = 3) {
  std::vector<std::string> mix;
  const size_t n_marked = static_cast<size_t>(f * static_cast<double>(harvested.size()));
  mix.insert(mix.end(), harvested.begin(), harvested.begin() + static_cast<ptrdiff_t>(n_marked));
  size_t bytes = 0, target = 0;
  for (const auto& t : harvested) target += t.size();
  for (size_t i = 0; i < n_marked; ++i) bytes += harvested[i].size();
  for (size_t i = 0; bytes < target && i < heldout.size(); ++i) {
    mix.push_back(heldout[i]);
    bytes += heldout[i].size();
  }
  model::NGramTrainOptions opt;
  opt.order = order;
  opt.min_count_high = 1;
  auto student = std::move(model::NGramModel::Train(mix, opt)).value();
  return std::move(model::BuiltinEngine::FromModel(std::move(student), off)).value();
}

}  // namespace moat::bench
