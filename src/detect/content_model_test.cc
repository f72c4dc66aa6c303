// Tests of the learned content model, its trainer and evaluation, the known-corpus index and
// the detection model file, on the synthetic corpus (test_corpus.h).

#include "detect/content_model.h"

#include <gtest/gtest.h>

#include <set>

#include "detect/content_trainer.h"
#include "detect/corpus_index.h"
#include "detect/detection_model.h"
#include "detect/test_corpus.h"

namespace moat::detect {
namespace {

using testing::SyntheticExamples;
using testing::SyntheticModel;
using testing::SyntheticTexts;

TEST(ContentFeaturesTest, DeterministicBoundedAndCaseInsensitiveWords) {
  ContentFeatures a, a2, b, c;
  ExtractContentFeatures("Solve this step by step: Tom has 3 apples.", &a);
  ExtractContentFeatures("Solve this step by step: Tom has 3 apples.", &a2);
  ExtractContentFeatures("solve THIS step by step: tom has 3 apples.", &b);
  ASSERT_GT(a.count, 20);
  ASSERT_EQ(a.count, a2.count);
  for (int i = 0; i < a.count; ++i) EXPECT_EQ(a.hash[i], a2.hash[i]);
  // Words are lower-cased: only the casing shape feature differs.
  ASSERT_EQ(a.count, b.count);
  int differ = 0;
  for (int i = 0; i < a.count; ++i) differ += a.hash[i] != b.hash[i];
  EXPECT_EQ(differ, 1);
  // A long text is read within the head and tail windows, and the feature count is bounded.
  std::string long_text(200000, 'x');
  for (size_t i = 0; i < long_text.size(); i += 7) long_text[i] = ' ';
  ExtractContentFeatures(long_text, &c);
  EXPECT_LE(c.count, kMaxContentFeatures);
  ContentFeatures empty;
  ExtractContentFeatures("", &empty);
  EXPECT_LE(empty.count, 8);  // only shape features
}

// ExtractWordHashes gives the word hashes ExtractContentFeatures gives, on texts of every kind
// (numbers, punctuation, non-ASCII bytes, the windows of a long text, more words than kept).
TEST(ContentFeaturesTest, WordHashesAloneAreTheFeaturePassWords) {
  std::vector<std::string> texts = {"", "  ", "Solve this step by step: Tom has 3 apples, 12.5 pears?",
                                    "naïve café — don't stop_me now\n(a) 1\n(b) 22"};
  for (int head = LabeledText::kOrganic; head < kNumHeads; ++head) {
    for (std::string& t : SyntheticTexts(head, 20, 9)) texts.push_back(std::move(t));
  }
  std::string long_text;
  for (int i = 0; long_text.size() < 20000; ++i) long_text += "word" + std::to_string(i) + (i % 9 == 0 ? ". " : " ");
  texts.push_back(long_text);
  std::string short_words;  // more words in the window than WordHashes keeps
  while (short_words.size() < 4000) short_words += "x ";
  texts.push_back(short_words);
  for (const std::string& t : texts) {
    ContentFeatures features;
    WordHashes want, got;
    ExtractContentFeatures(t, &features, &want);
    ExtractWordHashes(t, &got);
    ASSERT_EQ(got.count, want.count) << t.substr(0, 80);
    if (t == short_words) EXPECT_EQ(got.count, WordHashes::kMax);
    for (int i = 0; i < got.count; ++i) EXPECT_EQ(got.hash[i], want.hash[i]) << t.substr(0, 80) << " word " << i;
  }
}

TEST(ContentModelTest, LearnsEachHeadAgainstOrganicOnHeldOutTexts) {
  auto model = SyntheticModel();
  ASSERT_FALSE(model->content.empty());
  // Held-out texts (another seed): every campaign class scores above organic on average, each
  // on its own head.
  for (int head = 0; head < kNumHeads; ++head) {
    double pos = 0, neg = 0;
    for (const auto& t : SyntheticTexts(head, 50, 9)) pos += model->content.Score(t).llr[head];
    for (const auto& t : SyntheticTexts(LabeledText::kOrganic, 50, 9)) neg += model->content.Score(t).llr[head];
    EXPECT_GT(pos / 50, 1.0) << ContentHeadName(head);
    EXPECT_LT(neg / 50, -1.0) << ContentHeadName(head);
  }
  const ContentScores s = model->content.Score(SyntheticTexts(kHeadReasoning, 1, 11)[0]);
  EXPECT_EQ(s.top_head, kHeadReasoning);
  EXPECT_GT(s.combined, 0);
  EXPECT_EQ(ContentModel().Score("anything").combined, 0);  // no model: no evidence
}

TEST(ContentModelTest, EvaluationReportsRocPerHead) {
  auto model = SyntheticModel();
  const ContentEvaluation ev = EvaluateContentModel(model->content, SyntheticExamples(40, 5));
  for (int head = 0; head < kNumHeads; ++head) {
    EXPECT_EQ(ev.heads[head].positives, 40u);
    EXPECT_EQ(ev.heads[head].negatives, 40u);
    EXPECT_GT(ev.heads[head].auc, 0.95) << ContentHeadName(head);
    ASSERT_EQ(ev.heads[head].points.size(), kRocTargets.size());
  }
  EXPECT_EQ(ev.combined.positives, 160u);
}

TEST(ContentTrainerTest, SameExamplesGiveTheSameBytes) {
  ContentTrainOptions opts;
  opts.buckets_log2 = 12;
  opts.epochs = 2;
  auto a = TrainContentModel(SyntheticExamples(60, 3), SyntheticExamples(20, 4), opts);
  auto b = TrainContentModel(SyntheticExamples(60, 3), SyntheticExamples(20, 4), opts);
  ASSERT_TRUE(a.ok() && b.ok());
  std::string sa, sb;
  a->AppendTo(&sa);
  b->AppendTo(&sb);
  EXPECT_EQ(sa, sb);
  opts.seed = 2;  // another example order: another model
  auto c = TrainContentModel(SyntheticExamples(60, 3), SyntheticExamples(20, 4), opts);
  std::string sc;
  c->AppendTo(&sc);
  EXPECT_NE(sa, sc);
}

// An example's weight counts in training as that many copies would: a few organic examples that
// read like instructions, weighed heavily, pull the instruction head down on texts like them.
TEST(ContentTrainerTest, ExampleWeightsCountInTraining) {
  ContentTrainOptions opts;
  opts.buckets_log2 = 12;
  auto instruction_score = [&](float weight) {
    std::vector<LabeledText> train = SyntheticExamples(100, 3);
    for (auto& t : SyntheticTexts(kHeadInstruction, 10, 12)) train.push_back({t, LabeledText::kOrganic, weight});
    auto m = TrainContentModel(train, SyntheticExamples(30, 4), opts);
    EXPECT_TRUE(m.ok());
    double sum = 0;
    for (const auto& t : SyntheticTexts(kHeadInstruction, 50, 13)) sum += m->RawLogits([&] {
      ContentFeatures f;
      ExtractContentFeatures(t, &f);
      return f;
    }())[kHeadInstruction];
    return sum / 50;
  };
  EXPECT_LT(instruction_score(20.0f), instruction_score(1.0f) - 0.5);
}

TEST(ContentTrainerTest, RefusesAMissingClass) {
  std::vector<LabeledText> only_organic;
  for (auto& t : SyntheticTexts(LabeledText::kOrganic, 20, 1)) only_organic.push_back({t, LabeledText::kOrganic});
  auto m = TrainContentModel(only_organic, only_organic, {});
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  ContentTrainOptions bad;
  bad.buckets_log2 = 40;
  EXPECT_EQ(TrainContentModel(SyntheticExamples(5, 1), SyntheticExamples(5, 2), bad).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(RocTest, HandComputed) {
  // Positives 1..10, negatives 0..9 (offset by 0.5): AUC = P(pos > neg).
  std::vector<float> pos, neg;
  for (int i = 1; i <= 10; ++i) pos.push_back(static_cast<float>(i));
  for (int i = 0; i < 10; ++i) neg.push_back(static_cast<float>(i) + 0.5f);
  const RocSummary r = SummariseRoc(pos, neg);
  EXPECT_NEAR(r.auc, 55.0 / 100.0, 1e-9);
  // At a 10 % false-positive rate one negative (9.5) may score above the threshold (8.5):
  // positives 9 and 10 are above it.
  EXPECT_NEAR(r.points[3].fpr, 0.1, 1e-9);
  EXPECT_NEAR(r.points[3].tpr, 0.2, 1e-9);
}

TEST(CorpusIndexTest, FindsRewordedItemsAndNothingElse) {
  CorpusIndex index;
  const std::vector<std::string> items = {
      "Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with four. "
      "How much does she make selling the remainder at two dollars each?",
      "Which gas do plants absorb from the atmosphere during photosynthesis in bright sunlight?",
      "Write a Python function that returns the longest palindromic substring of a given string."};
  std::vector<std::string_view> views(items.begin(), items.end());
  EXPECT_EQ(index.AddCorpus("bench", "benchmark", views), 0);
  EXPECT_EQ(index.items(), 3u);
  // The same item wrapped in another voice.
  const CorpusMatch m = index.Lookup(
      "hey quick one: Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins "
      "with four. How much does she make selling the remainder at two dollars each? thanks");
  EXPECT_TRUE(m.found);
  EXPECT_EQ(m.item, 0u);
  EXPECT_FALSE(index.Lookup("Plan a weekend road trip through the mountains with my two kids and a dog.").found);
  EXPECT_FALSE(SketchItem("too short").valid);
  // Duplicates are one item; the index round-trips through its file section.
  index.AddCorpus("again", "benchmark", views);
  EXPECT_EQ(index.items(), 3u);
  std::string bytes;
  index.AppendTo(&bytes);
  std::string_view in(bytes);
  auto back = CorpusIndex::ParseFrom(&in);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(back->items(), 3u);
  EXPECT_EQ(back->Lookup(items[1]).item, 1u);
  std::string_view truncated(bytes.data(), bytes.size() - 5);
  EXPECT_FALSE(CorpusIndex::ParseFrom(&truncated).ok());
}

TEST(DetectionModelTest, FileRoundTripAndCorruption) {
  auto model = SyntheticModel();
  const std::string bytes = model->Serialize();
  auto back = DetectionModel::Parse(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Serialize(), bytes);
  EXPECT_EQ(back->metadata_json, model->metadata_json);
  const std::string text = SyntheticTexts(kHeadBenchmark, 1, 3)[0];
  EXPECT_EQ(back->content.Score(text).combined, model->content.Score(text).combined);
  // A flipped byte fails the checksum; a truncated file too; something else is not a model.
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  EXPECT_EQ(DetectionModel::Parse(flipped).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DetectionModel::Parse(bytes.substr(0, bytes.size() - 100)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DetectionModel::Parse("not a model at all").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DetectionModel::Load("/nonexistent/model.bin").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace moat::detect
